"""The analyst path (`ea sql`, warehouse.analyst): only the published, masked `analytics` tables,
read-only, bounded in memory, threads and time, and never in the pipeline's way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import duckdb
import pytest

from warehouse.analyst import AnalystLimits, AnalystSession, QueryTimeoutError
from warehouse.analytics import VIEWS, publish_analyst_database
from warehouse.sql import main as sql_main

from .conftest import REPO, all_text


@pytest.fixture()
def analyst_db(world, tmp_path):
    con = duckdb.connect(str(world))
    publish_analyst_database(con, tmp_path / "analyst.duckdb", "test")
    con.close()
    return tmp_path / "analyst.duckdb"


def _raw_emails(world) -> set[str]:
    con = duckdb.connect(str(world), read_only=True)
    emails = {r[0] for r in con.execute("select email from raw.users").fetchall() if r[0]}
    emails |= {
        r[0]
        for r in con.execute(
            "select csm_email from marts.dim_accounts union select recipient from ops.outbox"
        ).fetchall()
    }
    con.close()
    return emails


def test_the_analyst_database_holds_only_the_masked_analytics_tables(world, analyst_db):
    con = duckdb.connect(str(analyst_db), read_only=True)
    schemas = {r[0] for r in con.execute("select schema_name from duckdb_tables()").fetchall()}
    tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    con.close()
    assert schemas == {"analytics"}
    assert tables <= {v.name for v in VIEWS} | {"snapshot"}
    assert {"accounts", "alerts", "deliveries", "snapshot"} <= tables
    # Every text value in the file: no address in clear, masked ones only.
    text = all_text(analyst_db)
    emails = _raw_emails(world)
    assert emails and not [e for e in emails if e in text]
    assert "user_" in text


def test_raw_tables_through_the_analyst_path_fail_with_a_clear_message(analyst_db, capsys):
    assert sql_main(["--database", str(analyst_db), "select * from raw.users"]) == 1
    err = capsys.readouterr().err
    assert "holds only the curated `analytics` schema" in err and "ea sql --full" in err
    assert sql_main(["--database", str(analyst_db), "select count(*) from analytics.accounts"]) == 0
    assert "(1 row)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "statement",
    [
        "drop table analytics.accounts",
        "attach 'other.duckdb' as o",
        "copy analytics.accounts to 'leak.csv'",
        "select * from read_csv('/etc/passwd')",
        "set memory_limit = '20GB'",
        "set threads = 8",
    ],
)
def test_analyst_path_refuses_writes_and_raising_its_limits(
    analyst_db, statement, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    before = analyst_db.read_bytes()
    assert sql_main(["--database", str(analyst_db), statement]) == 1
    assert "error:" in capsys.readouterr().err
    assert analyst_db.read_bytes() == before
    assert not (tmp_path / "leak.csv").exists() and not (tmp_path / "other.duckdb").exists()


def test_a_runaway_query_is_stopped_by_the_timeout(analyst_db, capsys, monkeypatch):
    monkeypatch.setenv("EA_ANALYST_TIMEOUT_SECONDS", "1")
    started = time.monotonic()
    code = sql_main(["--database", str(analyst_db), "select count(*) from range(100000000000)"])
    assert code == 1 and time.monotonic() - started < 15
    assert "stopped after 1 s, the analyst statement timeout" in capsys.readouterr().err


def test_a_query_needing_more_memory_than_the_limit_fails_and_spills_nothing(analyst_db):
    session = AnalystSession(analyst_db, AnalystLimits(memory_limit="64MB", timeout_seconds=60))
    assert session.query("select current_setting('threads')")[1] == [(1,)]
    with pytest.raises(duckdb.OutOfMemoryException):
        session.query(
            "select count(*) from (select range, md5(range::varchar) as h "
            "from range(5000000) order by h)"
        )
    assert session.query("select count(*) from analytics.accounts")[1] == [(5,)]
    session.close()
    assert not list(analyst_db.parent.glob("*.tmp"))  # nothing written beside the file


def test_a_session_keeps_its_snapshot_until_it_refreshes(world, analyst_db):
    session = AnalystSession(analyst_db, AnalystLimits(timeout_seconds=30))
    before = session.query("select published_at from analytics.snapshot")[1]
    con = duckdb.connect(str(world))
    con.execute("update marts.dim_accounts set arr = arr + 1")
    publish_analyst_database(con, analyst_db, "second run")
    con.close()
    # The open session still reads the snapshot it opened, whole.
    assert session.query("select published_at from analytics.snapshot")[1] == before
    session.refresh()
    assert session.query("select published_by from analytics.snapshot")[1] == [("second run",)]
    session.close()


def test_an_open_analyst_session_does_not_stop_the_warehouse_being_written(world, analyst_db):
    """The analyst holds the published file, never the warehouse: a writer opens it freely and
    publishes over the analyst's open file."""
    code = (
        "import sys, time; from warehouse.analyst import connect; s = connect(sys.argv[1]); "
        "print(s.query('select count(*) from analytics.accounts')[1][0][0], flush=True); "
        "sys.stdin.read(); print(s.query('select count(*) from analytics.accounts')[1][0][0])"
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", code, str(analyst_db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        assert reader.stdout.readline().strip() == "5"
        con = duckdb.connect(str(world))  # would fail with a lock error if the reader held it
        con.execute("insert into marts.dim_accounts (account_id) values ('a_new')")
        publish_analyst_database(con, analyst_db, "while an analyst is connected")
        con.close()
        reader.stdin.close()
        assert reader.stdout.readline().strip() == "5"  # the snapshot it opened, unchanged
    finally:
        reader.wait(timeout=30)
    session = AnalystSession(analyst_db, AnalystLimits())
    assert session.query("select count(*) from analytics.accounts")[1] == [(6,)]
    session.close()


def test_limits_come_from_the_environment_with_a_clear_error():
    limits = AnalystLimits.from_env(
        {"EA_ANALYST_MEMORY_LIMIT": "256MB", "EA_ANALYST_THREADS": "2",
         "EA_ANALYST_TIMEOUT_SECONDS": "30"}
    )  # fmt: skip
    assert limits == AnalystLimits("256MB", 2, 30.0)
    with pytest.raises(ValueError, match="EA_ANALYST_THREADS must be a whole number"):
        AnalystLimits.from_env({"EA_ANALYST_THREADS": "many"})


def test_query_timeout_error_is_raised_by_the_library(analyst_db):
    with AnalystSession(analyst_db, AnalystLimits(timeout_seconds=0.5)) as session:
        with pytest.raises(QueryTimeoutError, match="EA_ANALYST_TIMEOUT_SECONDS"):
            session.df("select count(*) from range(100000000000)")
        assert session.df("select 1 as x")["x"].tolist() == [1]


def _storage_version(path) -> int:
    head = path.read_bytes()[:64]
    at = head.index(b"DUCK")
    return int.from_bytes(head[at + 4 : at + 12], "little")


def test_the_analyst_database_is_readable_by_duckdb_1_5_clients(analyst_db):
    # DuckDB 1.5 (the pip `duckdb-cli` is 1.5.6) reads storage versions 64-68; 2.0 writes 69+.
    assert 64 <= _storage_version(analyst_db) <= 68


@pytest.mark.skipif(shutil.which("duckdb") is None, reason="no duckdb CLI on PATH")
def test_the_duckdb_cli_reads_the_analyst_database(analyst_db):
    out = subprocess.run(
        ["duckdb", "-readonly", "-csv", str(analyst_db), "-c",
         "select count(*) as n from analytics.accounts"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert out.split() == ["n", "5"]


def test_pandas_and_arrow_frames_from_a_session(analyst_db):
    with AnalystSession(analyst_db, AnalystLimits()) as session:
        frame = session.df("select account_id, csm_email from analytics.accounts order by 1")
        table = session.arrow("select account_id from analytics.accounts order by 1")
    assert frame["account_id"].tolist() == table.column("account_id").to_pylist()
    assert frame["csm_email"].str.startswith("user_").all()


def test_the_prompt_lists_tables_queries_and_refreshes(world, analyst_db, monkeypatch, capsys):
    from warehouse.sql import _prompt

    session = AnalystSession(analyst_db, AnalystLimits())
    lines = iter(
        [
            ".tables",
            "select published_by",
            "from analytics.snapshot;",
            "select * from raw.users;",
            ".refresh",
            "select published_by from analytics.snapshot;",
            ".quit",
        ]
    )

    def answer(prompt):
        line = next(lines)
        if line == ".refresh":  # a run publishes while the prompt is open
            con = duckdb.connect(str(world))
            publish_analyst_database(con, analyst_db, "the next run")
            con.close()
        return line

    monkeypatch.setattr("builtins.input", answer)
    assert _prompt(session, "table", "analyst database") == 0
    session.close()
    out, err = capsys.readouterr()
    assert "analytics | account_health" in out or "analytics | accounts" in out
    assert out.index("test") < out.index("the next run")  # the old snapshot, then the new
    assert "holds only the curated `analytics` schema" in err


def test_kpi_dimension_values_that_are_addresses_are_masked(world, tmp_path):
    con = duckdb.connect(str(world))
    con.execute("create schema kpis")
    con.execute(
        "create table kpis.kpi_alerts_weekly as select * from (values "
        "(date '2025-03-03', 'csm', 'ana@example.com', 3), "
        "(date '2025-03-03', 'rule', 'churn_risk', 2)) t(week_start, dimension, "
        "dimension_value, alerts_raised)"
    )
    publish_analyst_database(con, tmp_path / "kpi.duckdb", "test")
    con.close()
    with AnalystSession(tmp_path / "kpi.duckdb", AnalystLimits()) as session:
        rows = session.query(
            "select dimension, dimension_value from analytics.kpi_alerts_weekly order by 1"
        )[1]
    assert rows[0][0] == "csm" and rows[0][1].startswith("user_") and "ana@" not in rows[0][1]
    assert rows[1] == ("rule", "churn_risk")


def test_a_small_run_rebuilds_only_what_it_changed(world, analyst_db):
    from warehouse.analytics import ALWAYS_REFRESHED, tables_changed_by

    assert tables_changed_by({"ops.critical_alerts"}) == set(ALWAYS_REFRESHED)
    assert "account_health" in tables_changed_by({"marts.account_health"})
    con = duckdb.connect(str(world))
    con.execute("update marts.dim_accounts set account_name = 'Renamed'")
    con.execute("update alerts.alerts set status = 'acknowledged'")
    result = publish_analyst_database(con, analyst_db, "small run", set(ALWAYS_REFRESHED))
    con.close()
    assert set(result.rows) == {f"analytics.{t}" for t in ALWAYS_REFRESHED} | {"analytics.snapshot"}
    with AnalystSession(analyst_db, AnalystLimits()) as session:
        assert session.query("select distinct status from analytics.alerts")[1] == [
            ("acknowledged",)
        ]
        # Kept from the last full publish: this run did not write the accounts.
        renamed = "select count(*) from analytics.accounts where account_name = 'Renamed'"
        names = session.query(renamed)
        assert names[1] == [(0,)]
        assert session.query("select published_by from analytics.snapshot")[1] == [("small run",)]
    assert 64 <= _storage_version(analyst_db) <= 68
