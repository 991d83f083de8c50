"""A tiny hand-made alert history (alerts, audit log, outbox, outcomes) and a dbt runner."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

import alerts
from notifications.schema import ensure_schema as ensure_ops_schema

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
AS_OF = dt.date(2025, 6, 30)


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def add_alert(
    con,
    alert_id,
    rule_id,
    alert_type,
    account_id,
    raised_on,
    severity="high",
    sla_hours=72,
    arr=50_000.0,
    is_holdout=False,
    **extra,
) -> None:
    """One alerts.alerts row plus its `raised` audit event, as the engine would write them."""
    raised_on = dt.date.fromisoformat(raised_on)
    at = dt.datetime.combine(raised_on + dt.timedelta(days=1), dt.time())
    row = {
        "alert_id": alert_id,
        "rule_id": rule_id,
        "alert_type": alert_type,
        "title": rule_id,
        "account_id": account_id,
        "account_name": account_id,
        "episode_start_date": raised_on,
        "first_raised_on": raised_on,
        "last_seen_on": raised_on,
        "status": "open",
        "severity": severity,
        "priority": 1.0,
        "probability": 0.3,
        "arr": arr,
        "owner_email": "csm1@example.com",
        "escalation_email": "mgr@example.com",
        "sla_due_at": at + dt.timedelta(hours=sla_hours),
        "in_digest_summary": False,
        "updated_at": at,
        "is_holdout": is_holdout,
        **extra,
    }
    cols = ", ".join(row)
    con.execute(
        f"insert into alerts.alerts ({cols}) values ({', '.join('?' * len(row))})",
        list(row.values()),
    )
    audit(con, alert_id, "raised", None, "open", "system:alert-engine", at)


def audit(con, alert_id, event, from_status, to_status, actor, at, reason=None) -> None:
    con.execute(
        "insert into alerts.audit_log values (?, ?, ?, ?, ?, ?, ?, ?, null, ?)",
        [f"ev_{alert_id}_{event}", alert_id, event, from_status, to_status, actor, reason, at, at],
    )


def build_world(db: Path) -> None:
    """Four accounts, five alerts, their actions, deliveries and outcomes (as of 2025-06-30)."""
    con = duckdb.connect(str(db))
    alerts.ensure_schema(con)
    ensure_ops_schema(con)
    for schema in ("raw", "marts", "staging"):
        con.execute(f"create schema if not exists {schema}")
    con.execute(
        "create table raw.outcomes (account_id string, outcome string, effective_date date, "
        "arr_delta decimal(14, 2), landing_date date)"
    )
    # The marts stage's staging view over raw.outcomes (not part of this stage's dbt selection).
    con.execute(
        "create view staging.stg_raw__outcomes as "
        "select account_id, outcome, effective_date, arr_delta, landing_date from raw.outcomes"
    )
    # Dormancy episodes (marts stage); none here: dormancy is unit-tested in dbt.
    con.execute(
        "create table marts.account_dormancy (account_id string, inactive_since_date date, "
        "is_current boolean)"
    )
    con.execute(
        """insert into raw.outcomes values
        ('A1', 'churned', '2025-04-10', -50000, '2025-04-10'),
        ('A4', 'expanded', '2025-03-20', 12000, '2025-03-20'),
        ('A5', 'churned', '2025-05-01', -20000, '2025-05-01')"""
    )
    con.execute(
        """create table marts.dim_accounts as select * from (values
        ('A1', 'csm1@example.com', 'mgr@example.com', true),
        ('A2', 'csm1@example.com', 'mgr@example.com', true),
        ('A3', 'csm2@example.com', 'mgr@example.com', true),
        ('A4', 'csm2@example.com', 'mgr@example.com', true),
        ('A5', 'csm2@example.com', 'mgr@example.com', false))
        t(account_id, csm_email, manager_email, tracking_consent)"""
    )
    build_condition_days(con)
    # A1: churn risk raised 40 days before it churned -> a true positive with a 40-day lead.
    add_alert(con, "al_tp", "churn_risk_high", "churn_risk", "A1", "2025-03-01")
    # A2: acknowledged 10 h after raising, resolved (useful) 36 h after -> SLA met.
    add_alert(
        con,
        "al_res",
        "engagement_drop",
        "engagement_drop",
        "A2",
        "2025-03-03",
        status="resolved",
        acknowledged_at=_ts("2025-03-04 10:00"),
        resolved_at=_ts("2025-03-05 12:00"),
        resolution_reason="called",
        feedback="useful",
    )
    audit(
        con,
        "al_res",
        "acknowledged",
        "open",
        "acknowledged",
        "csm1@example.com",
        _ts("2025-03-04 10:00"),
    )
    audit(
        con,
        "al_res",
        "resolved",
        "acknowledged",
        "resolved",
        "csm1@example.com",
        _ts("2025-03-05 12:00"),
        "called",
    )
    # A3: critical, 24 h SLA, acknowledged 30 h after raising -> SLA missed; its mail went out.
    add_alert(
        con,
        "al_crit",
        "renewal_at_risk",
        "renewal_risk",
        "A3",
        "2025-03-01",
        severity="critical",
        sla_hours=24,
        acknowledged_at=_ts("2025-03-03 06:00"),
        status="acknowledged",
    )
    audit(
        con,
        "al_crit",
        "acknowledged",
        "open",
        "acknowledged",
        "csm2@example.com",
        _ts("2025-03-03 06:00"),
    )
    con.execute(
        """insert into ops.outbox (delivery_id, idempotency_key, channel, alert_id, account_id,
        recipient, payload_json, status, created_at, updated_at, sent_at) values
        ('d1', 'critical:al_crit', 'email', 'al_crit', 'A3', 'csm2@example.com', '{}', 'sent',
         '2025-03-02', '2025-03-02', '2025-03-02 00:01')"""
    )
    # A3 again, a week later: a critical alert that never got its mail -> a missed critical.
    add_alert(
        con,
        "al_crit_missed",
        "renewal_at_risk",
        "renewal_risk",
        "A3",
        "2025-03-10",
        severity="critical",
        sla_hours=24,
    )
    # A4: expansion alert followed by an expansion of 12k.
    add_alert(
        con,
        "al_exp",
        "expansion_ready",
        "expansion_opportunity",
        "A4",
        "2025-03-05",
        severity="low",
        sla_hours=168,
    )
    # A5 churned with no alert at all: a miss for recall.
    # The warehouse-wide data alert is not an account alert and must not be attributed.
    add_alert(con, "al_data", "data_not_landed", "data_freshness", "*", "2025-03-02")
    con.close()


def build_condition_days(con) -> None:
    """The marts and scores the reconciliation recomputes renewal_at_risk from (renewal within
    90 days, churn band high or very high, not healthy), on a few days:
    A3 03-01 holds (al_crit covers it, mailed); A2 03-04 holds and no alert was raised (missed);
    A3 03-10 holds (al_crit_missed covers it, never mailed: missed); A4 03-05 holds on a day
    that did not land (not counted); A5 03-04 holds without tracking consent (exempt); A1 03-04
    is healthy (does not hold).
    """
    con.execute("create schema if not exists ml")
    con.execute(
        """create table marts.account_health as select * from (values
        ('A3', date '2025-03-01', true, false, 60, 'at_risk'),
        ('A2', date '2025-03-04', true, false, 30, 'critical'),
        ('A3', date '2025-03-10', true, false, 51, 'at_risk'),
        ('A4', date '2025-03-05', true, false, 20, 'at_risk'),
        ('A5', date '2025-03-04', true, false, 20, 'at_risk'),
        ('A1', date '2025-03-04', true, false, 20, 'healthy'))
        t(account_id, as_of_date, is_data_complete, is_dormant, days_to_renewal, health_tier)"""
    )
    con.execute(
        """create table marts.data_freshness as select * from (values
        (date '2025-03-01', true), (date '2025-03-04', true), (date '2025-03-05', false),
        (date '2025-03-10', true)) t(activity_date, is_landed)"""
    )
    con.execute(
        "create table ml.account_scores as select account_id, as_of_date, 'churn' as model_name,"
        " 0.7 as probability, 90.0 as percentile, 'high' as band from marts.account_health"
    )
    con.execute(
        "create table ml.anomalies (account_id string, activity_date date, metric string, "
        "robust_z double)"
    )


@pytest.fixture(scope="session")
def kpi_run(tmp_path_factory):
    """The world above with the outcome marts materialized by the real Dagster assets (dbt
    build in-process), once per session: (database path, materialization metadata by key)."""
    import dagster as dg
    from dagster_dbt import DbtCliResource
    from dagster_duckdb import DuckDBResource

    from orchestration.defs.kpis import kpis_dbt
    from orchestration.defs.marts import DBT_DIR, DBT_EXECUTABLE
    from orchestration.resources import PathsResource

    db = tmp_path_factory.mktemp("kpis") / "warehouse.duckdb"
    build_world(db)
    # The dbt profile reads DUCKDB_DATABASE; set only while this build runs.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DUCKDB_DATABASE", str(db))
        result = dg.materialize(
            [kpis_dbt],
            resources={
                "dbt": DbtCliResource(
                    project_dir=str(DBT_DIR),
                    profiles_dir=str(DBT_DIR),
                    dbt_executable=DBT_EXECUTABLE,
                ),
                "duckdb": DuckDBResource(database=str(db)),
                "paths": PathsResource(
                    data_dir=str(db.parent), landing_dir=str(db.parent), config_dir=str(CONFIG)
                ),
            },
            run_config={"ops": {"kpis_dbt": {"config": {"as_of_date": AS_OF.isoformat()}}}},
            instance=dg.DagsterInstance.ephemeral(),
        )
    assert result.success
    metadata = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        metadata[materialization.asset_key.to_user_string()] = materialization.metadata
    return db, metadata


@pytest.fixture(scope="session")
def outcome_marts(kpi_run) -> Path:
    return kpi_run[0]
