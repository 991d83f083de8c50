"""Opt-out end to end: a simulated portal through the Dagster graph; opted-out users vanish."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import dagster as dg
import duckdb
import pytest

from .conftest import all_text

pytestmark = pytest.mark.slow


def _opted_out(landing) -> tuple[set[str], set[str]]:
    """Users the latest users.csv marks opted out, and their emails (read from the files)."""
    import csv

    latest = sorted(landing.glob("*/users.csv"))[-1]
    with latest.open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["opted_out"] == "true"]
    return {r["user_id"] for r in rows}, {r["email"] for r in rows if r["email"]}


def _events_of(landing, users: set[str]) -> int:
    n = 0
    for path in landing.glob("*/events-*.jsonl.gz"):
        for line in gzip.decompress(path.read_bytes()).decode(errors="replace").splitlines():
            try:
                n += json.loads(line).get("userId") in users
            except (ValueError, AttributeError):
                pass
    return n


def test_opted_out_users_appear_nowhere(ea_env, tmp_path, monkeypatch):
    from notifications.capture import CaptureServer
    from orchestration.demo import Demo
    from simulator import SimConfig, simulate

    landing = ea_env["EA_LANDING_DIR"]
    simulate(
        SimConfig(accounts=60, start=dt.date(2024, 10, 1), end=dt.date(2025, 6, 30), seed=11),
        landing,
        ea_env["EA_DATA_DIR"] / "ground_truth",
    )
    users, emails = _opted_out(landing)
    assert users and _events_of(landing, users) > 0  # they really were active in the portal
    capture = CaptureServer(tmp_path / "mail").start()
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(capture.port))
    try:
        from orchestration.definitions import defs

        instance = dg.DagsterInstance.get()
        demo = Demo(defs, instance)
        demo.ingest(sorted(dt.date.fromisoformat(p.name) for p in landing.iterdir()))
        job = defs.resolve_job_def("full_pipeline_job")
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        steps = {e.step_key: e.event_type_value for e in result.all_events if e.is_step_event
                 and (e.is_step_success or e.is_step_failure or e.is_step_skipped)}  # fmt: skip
        print(json.dumps(steps, indent=0))
        # The marts must have been built for the search below to mean anything; later stages
        # (training needs enough churn in a small world) are searched when they ran.
        assert steps.get("marts_dbt") == "STEP_SUCCESS", steps
    finally:
        capture.stop()
    db = ea_env["DUCKDB_DATABASE"]
    con = duckdb.connect(str(db), read_only=True)
    # raw.users keeps the opt-out record itself (ingestion needs it to keep dropping them).
    stored = con.execute(
        "select count(*) from raw.users where user_id in (select unnest(?)) and not opted_out "
        "and snapshot_date = (select max(snapshot_date) from raw.users)",
        [sorted(users)],
    ).fetchone()[0]
    assert stored == 0
    con.close()
    rw = duckdb.connect(str(db))
    rw.execute("delete from raw.users where user_id in (select unnest(?))", [sorted(users)])
    rw.close()
    text = all_text(db)
    for who in sorted(users | emails):
        assert who not in text, f"opted-out {who} is stored in the warehouse"
    mail = " ".join(p.read_text(errors="replace") for p in (tmp_path / "mail").glob("*.eml"))
    for who in sorted(users | emails):
        assert who not in mail, f"opted-out {who} is named in an email"
    # The analyst database, published from this warehouse, names none of them either.
    from warehouse.analytics import publish_analyst_database

    rw = duckdb.connect(str(db))
    publish_analyst_database(rw, tmp_path / "analyst.duckdb", "test")
    rw.close()
    published = all_text(tmp_path / "analyst.duckdb")
    assert "account_health" in " ".join(
        r[0] for r in duckdb.connect(str(tmp_path / "analyst.duckdb"), read_only=True)
        .execute("select table_name from duckdb_tables()").fetchall()
    )  # fmt: skip
    for who in sorted(users | emails):
        assert who not in published, f"opted-out {who} is in the analyst database"
