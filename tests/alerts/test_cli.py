"""The `python -m alerts` command line: role-scoped listing and actions, evaluate, backtest."""

from __future__ import annotations

import subprocess
import sys

import duckdb

from alerts.cli import main
from tests.alerts.conftest import CONFIG, REPO, days
from tests.alerts.test_backtest import _history


def _cli(wh, capsys, *args):
    code = main(["--database", str(wh.path), "--config", str(CONFIG), *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_role_scoped_listing_and_actions(wh, capsys):
    d = days(1)[0]
    wh.add_accounts(["a1", "a2", "a3"])
    wh.day(
        d,
        {
            "a1": {"active_users_28d": 3},
            "a2": {"active_users_28d": 2, "csm_email": "bob@example.com"},
            "a3": {"active_users_28d": 1, "csm_email": "carl@example.com",
                   "manager_email": "max@example.com"},
        },
        percentile={"a1": 80, "a2": 80, "a3": 80},
    )  # fmt: skip
    wh.con.close()
    code, out = _cli(wh, capsys, "evaluate", "--as-of", str(d))
    assert code == 0 and "new_alerts: 3" in out
    code, out = _cli(wh, capsys, "list", "--as", "alice@example.com")
    assert "1 alert(s) visible to alice@example.com as csm" in out and "Account A1" in out
    code, out = _cli(wh, capsys, "list", "--as", "mona@example.com")  # manages alice and bob
    assert "2 alert(s) visible to mona@example.com as manager" in out and "Account A3" not in out
    code, out = _cli(wh, capsys, "list", "--as", "cs-director@example.com")
    assert "3 alert(s) visible to cs-director@example.com as admin" in out
    con = duckdb.connect(str(wh.path), read_only=True)
    ids = dict(con.execute("select account_id, alert_id from alerts.alerts").fetchall())
    con.close()
    code, out = _cli(wh, capsys, "ack", ids["a1"], "--as", "bob@example.com")
    assert code == 1 and "may not act on alert" in out
    code, out = _cli(wh, capsys, "ack", ids["a1"], "--as", "alice@example.com")
    assert code == 0 and "acknowledged" in out
    code, out = _cli(wh, capsys, "resolve", ids["a1"], "--as", "alice@example.com",
                     "--reason", "met the customer")  # fmt: skip
    assert code == 0 and "resolved" in out
    code, out = _cli(wh, capsys, "snooze", ids["a2"], "--as", "bob@example.com",
                     "--until", "2030-01-01")  # fmt: skip
    assert code == 0 and "snoozed until 2030-01-01" in out
    code, out = _cli(wh, capsys, "list", "--as", "alice@example.com", "--status", "resolved")
    assert "1 alert(s)" in out
    con = duckdb.connect(str(wh.path), read_only=True)
    actors = con.execute(
        "select event, actor from alerts.audit_log where actor != 'system:alert-engine' order by 1"
    ).fetchall()
    con.close()
    assert actors == [
        ("acknowledged", "alice@example.com"),
        ("resolved", "alice@example.com"),
        ("snoozed", "bob@example.com"),
    ]


def test_backtest_and_validate_commands(wh, capsys):
    _history(wh)
    wh.con.close()
    code, out = _cli(wh, capsys, "validate")
    assert code == 0 and "match the warehouse" in out
    code, out = _cli(wh, capsys, "backtest", "--start", str(days(60)[0]), "--end",
                     str(days(60)[-1]), "--horizon-days", "60")  # fmt: skip
    assert code == 0 and "__overall__" in out and "engagement_drop" in out


def test_missing_warehouse_file_is_reported_not_created(tmp_path, capsys):
    path = tmp_path / "nope.duckdb"
    code = main(["--database", str(path), "list", "--as", "x@example.com"])
    assert code == 2 and "no warehouse at" in capsys.readouterr().err
    assert not path.exists()


def test_module_entry_point_reports_missing_database():
    proc = subprocess.run(
        [sys.executable, "-m", "alerts", "list", "--as", "x@example.com"],
        cwd=REPO, capture_output=True, text=True, env={"PATH": ""},
    )  # fmt: skip
    assert proc.returncode == 2 and "give --database PATH or set DUCKDB_DATABASE" in proc.stderr
