"""The demo's simulated CSMs: deterministic, audited, never touch held-out alerts; saves rewrite
only churns that have not landed yet."""

from __future__ import annotations

import datetime as dt
import json

import duckdb

import alerts
from simulator.csm import CsmBehaviour, act_on_alerts, avert_next_churn

from .conftest import add_alert


def _world(path, n=40):
    con = duckdb.connect(str(path))
    alerts.ensure_schema(con)
    for i in range(n):
        add_alert(
            con,
            f"al_{i}",
            "churn_risk_high",
            "churn_risk",
            f"A{i}",
            "2025-03-01",
            is_holdout=i % 5 == 0,
            owner_email=f"csm{i % 4}@example.com",
        )
    return con


def _state(con):
    return con.execute(
        "select alert_id, status, feedback, acknowledged_at, resolved_at from alerts.alerts "
        "order by alert_id"
    ).fetchall()


def test_csms_act_with_delays_through_the_audited_lifecycle(tmp_path):
    con = _world(tmp_path / "a.duckdb")
    behaviour = CsmBehaviour(seed=1, engaged_csm_share=1.0, ack_share=1.0)
    for day in range(1, 12):
        act_on_alerts(con, dt.date(2025, 3, day), behaviour)
    held = {f"al_{i}" for i in range(0, 40, 5)}
    rows = {r[0]: r for r in _state(con)}
    assert all(rows[a][1] == "open" for a in held)  # nobody sees held-out alerts
    worked = [r for a, r in rows.items() if a not in held]
    assert all(r[1] == "resolved" and r[2] in ("useful", "not_useful", "saved") for r in worked)
    # Acknowledged after the alert was raised (midnight after 2025-03-01), resolved later still.
    assert all(dt.datetime(2025, 3, 2) < r[3] < r[4] for r in worked)
    actors = con.execute(
        "select distinct actor from alerts.audit_log where event in ('acknowledged', 'resolved')"
    ).fetchall()
    assert {a for (a,) in actors} <= {f"csm{i}@example.com" for i in range(4)}


def test_same_seed_same_actions_and_rerun_changes_nothing(tmp_path):
    behaviour = CsmBehaviour(seed=5)
    states = []
    for name in ("x", "y"):
        con = _world(tmp_path / f"{name}.duckdb")
        for day in (2, 3, 4, 4):  # the last day twice
            act_on_alerts(con, dt.date(2025, 3, day), behaviour)
        states.append(_state(con))
    assert states[0] == states[1]
    assert any(s[1] == "open" for s in states[0])  # some CSMs do not act (fatigue baseline)


def test_a_save_rewrites_only_a_future_churn_and_its_manifest(tmp_path):
    export = tmp_path / "export"
    for day, rows in (
        ("2025-03-05", "A1,churned,2025-03-05,-1000.00\n"),
        ("2025-04-01", "A1,churned,2025-04-01,-1000.00\nA2,expanded,2025-04-01,5.00\n"),
    ):
        folder = export / day
        folder.mkdir(parents=True)
        (folder / "outcomes.csv").write_text("account_id,outcome,effective_date,arr_delta\n" + rows)
        size = (folder / "outcomes.csv").stat().st_size
        (folder / "_manifest.json").write_text(json.dumps({"files": {"outcomes.csv": size}}))
    assert avert_next_churn(export, "A1", dt.date(2025, 3, 10)) == 1
    landed = (export / "2025-03-05" / "outcomes.csv").read_text()
    assert "A1,churned" in landed  # already landed: history is not rewritten
    future = export / "2025-04-01"
    text = (future / "outcomes.csv").read_text()
    assert "A1,renewed,2025-04-01,0.00" in text and "A2,expanded" in text
    manifest = json.loads((future / "_manifest.json").read_text())
    assert manifest["files"]["outcomes.csv"] == (future / "outcomes.csv").stat().st_size
    assert avert_next_churn(export, "A1", dt.date(2025, 3, 10)) == 0  # nothing left to avert
