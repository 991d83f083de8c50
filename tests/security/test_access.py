"""The data team's access (`ea sql --full`): masked analytics views in the warehouse and a
read-only SQL command that cannot write."""

from __future__ import annotations

import subprocess
import sys
import time

import dagster as dg
import duckdb
import pytest

from warehouse import create_analytics_views, open_read_only
from warehouse.sql import main as sql_main

from .conftest import EA, REPO


def _views(path):
    con = duckdb.connect(str(path))
    result = create_analytics_views(con)
    con.close()
    return result


def test_views_mask_every_email(world):
    result = _views(world)
    assert {"accounts", "alerts", "deliveries", "account_health"} <= set(result["created"])
    assert "ml.account_scores" in result["skipped"]  # not built in this warehouse: no view
    con = open_read_only(world)
    raw_emails = {r[0] for r in con.execute("select csm_email from marts.dim_accounts").fetchall()}
    shown = con.execute("select csm_email, manager_email from analytics.accounts").fetchall()
    for csm, manager in shown:
        assert csm not in raw_emails and csm.startswith("user_") and csm.endswith("@example.com")
        assert manager is None or manager.startswith("user_")
    # The same person is the same pseudonym everywhere, so analysts can still group by owner.
    owners = con.execute(
        "select count(distinct owner_email) from analytics.alerts where account_id in "
        "('a_001', 'a_002')"
    ).fetchone()[0]
    assert owners == 1
    cols = {d[0] for d in con.execute("select * from analytics.deliveries limit 0").description}
    assert "payload_json" not in cols and "subject" not in cols and "recipient" in cols
    text = str(con.execute("select * from analytics.alerts").fetchall())
    text += str(con.execute("select * from analytics.deliveries").fetchall())
    assert "@example.com" not in text.replace("@example.com'", "")  # only masked domains left
    assert "ana@example.com" not in text and "jane.doe@acme.example" not in text
    con.close()


def test_views_refresh_is_idempotent(world):
    first = _views(world)
    assert _views(world) == first


@pytest.mark.parametrize(
    "statement",
    [
        "insert into marts.dim_accounts (account_id) values ('x')",
        "delete from raw.users",
        "drop view analytics.accounts",
        "create table marts.evil as select 1",
        "update alerts.alerts set status = 'resolved'",
        "attach 'other.duckdb' as o",
        "copy raw.users to 'leak.csv'",
        "select * from read_csv('/etc/passwd')",
        "set enable_external_access = true",
    ],
)
def test_read_only_path_refuses_writes(world, statement, capsys, tmp_path, monkeypatch):
    _views(world)
    monkeypatch.chdir(tmp_path)
    before = world.read_bytes()
    assert sql_main(["--full", "--database", str(world), statement]) == 1
    assert "error:" in capsys.readouterr().err
    assert world.read_bytes() == before
    assert not (tmp_path / "leak.csv").exists() and not (tmp_path / "other.duckdb").exists()


def test_sql_command_reads_args_stdin_and_csv(world):
    _views(world)
    env_cmd = [EA, "sql", "--full", "--database", str(world)]
    out = subprocess.run(
        [*env_cmd, "--format", "csv", "select account_id from analytics.accounts order by 1"],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert out.splitlines() == ["account_id", "a_001", "a_002", "a_003", "a_004", "a_005"]
    out = subprocess.run(
        env_cmd, input="select count(*) as n from analytics.alerts;",
        capture_output=True, text=True, cwd=REPO, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert out.splitlines()[0].strip() == "n" and out.strip().endswith("(1 row)")


def test_sql_command_never_creates_a_warehouse(tmp_path, capsys):
    missing = tmp_path / "nope.duckdb"
    assert sql_main(["--full", "--database", str(missing), "select 1"]) == 2
    assert "DUCKDB_DATABASE" in capsys.readouterr().err
    assert sql_main(["--database", str(missing), "select 1"]) == 2
    assert "a pipeline run publishes it" in capsys.readouterr().err
    assert not missing.exists()


def test_analytics_asset_materializes(ea_env, world):
    from orchestration.defs import analytics
    from orchestration.resources import shared_resources

    ea_env["DUCKDB_DATABASE"].write_bytes(world.read_bytes())
    result = dg.materialize([analytics.analytics_views], resources=shared_resources())
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["view_count"].value >= 5
    con = open_read_only(ea_env["DUCKDB_DATABASE"])
    assert con.execute("select count(*) from analytics.accounts").fetchone()[0] == 5
    con.close()


def test_sql_command_says_when_a_run_holds_the_warehouse(world, capsys):
    hold = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); time.sleep(30)", str(world)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert hold.stdout.readline().strip() == "held"
        started = time.monotonic()
        assert sql_main(["--full", "--wait", "1", "--database", str(world), "select 1"]) == 2
        assert 1 <= time.monotonic() - started < 10  # it waited, then said so
        err = capsys.readouterr().err
        assert "waiting for the pipeline" in err and "try again" in err
    finally:
        hold.kill()
        hold.wait()
    assert sql_main(["--full", "--database", str(world), "select 1"]) == 0
