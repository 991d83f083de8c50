"""The alerts assets materialize in-process on hand-made inputs; the rules check gates them."""

from __future__ import annotations

import datetime as dt
import shutil

import dagster as dg
from dagster_duckdb import DuckDBResource

from orchestration.defs import alerts as stage
from orchestration.resources import PathsResource
from tests.alerts.conftest import CONFIG, days


def _resources(wh, config_dir):
    return {
        "duckdb": DuckDBResource(database=str(wh.path)),
        "paths": PathsResource(
            data_dir=str(wh.path.parent),
            landing_dir=str(wh.path.parent),
            config_dir=str(config_dir),
        ),
    }


def test_alerts_asset_materializes_with_metadata_and_passing_check(wh, ea_env):
    d = days(1)[0]
    wh.add_accounts(["a1", "a2"])
    wh.day(d, {"a1": {"active_users_28d": 2}, "a2": {}}, churn={"a1": 0.9})
    # No as-of date in the run config: the latest landed events day is used.
    wh.con.execute("create schema raw")
    wh.con.execute(
        "create table raw.landed_partitions as select ?::date as landing_date, 'events' as source",
        [d],
    )
    wh.con.close()
    result = dg.materialize(
        [stage.alerts_alerts, stage.rules_file_validates], resources=_resources(wh, CONFIG)
    )
    assert result.success
    meta = result.asset_materializations_for_node("alerts__alerts")[0].metadata
    assert meta["as_of_date"].value == str(d)
    assert meta["new"].value == 2  # churn_risk_high + engagement_drop for a1
    assert meta["open_by_severity"].value == {"high": 2}
    assert meta["seconds"].value > 0
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["enabled"].value == 8


def test_broken_rules_file_fails_the_run_with_the_problem(wh, ea_env, tmp_path):
    d = days(1)[0]
    wh.day(d, {"a1": {}})
    wh.con.close()
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    text = (
        (config / "rules.yml")
        .read_text()
        .replace("seats >= 10 and", "seats >= 10 and revenue > 5 and")
    )
    (config / "rules.yml").write_text(text)
    result = dg.materialize(
        [stage.alerts_alerts],
        resources=_resources(wh, config),
        run_config={"ops": {"alerts__alerts": {"config": {"as_of_date": str(d)}}}},
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node("alerts__alerts")
    assert "rule 'adoption_gap'" in str(failure.error) and "unknown column 'revenue'" in str(
        failure.error
    )


def test_sla_sensor_requests_escalation_job_which_escalates_once(wh, ea_env):
    from alerts.engine import evaluate
    from alerts.rules import columns_from_connection, load_routing, load_rules
    from warehouse.ops_state import ops_state_path, publish_ops_state

    d = days(1)[0]
    wh.day(d, {"a1": {"active_users_28d": 2}}, percentile={"a1": 80})
    templates = CONFIG / "templates" / "recommendations"
    rules = load_rules(CONFIG / "rules.yml", columns_from_connection(wh.con), templates)
    evaluate(wh.con, rules, load_routing(CONFIG / "routing.yml"), d, templates)
    publish_ops_state(wh.con, ops_state_path(wh.path.parent), "test")  # as the alerts step does
    wh.con.close()
    resources = _resources(wh, CONFIG)
    instance = dg.DagsterInstance.ephemeral()
    # The alert (raised for 2025-03-03) is long past its SLA by the wall clock.
    with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
        request = stage.sla_breach_sensor(ctx)
    assert isinstance(request, dg.RunRequest)
    run_config = {"ops": {"escalate_sla_breaches": {"config": {"now": "2025-03-20T00:00:00"}}}}
    for _ in range(2):
        result = stage.sla_escalation_job.execute_in_process(
            resources=resources, run_config=run_config
        )
        assert result.success
    import duckdb

    con = duckdb.connect(str(wh.path), read_only=True)
    escalated = con.execute("select alert_id, escalated_to from alerts.escalations").fetchall()
    con.close()
    assert [e[1] for e in escalated] == ["mona@example.com"]
    # The job published the list again: nothing left to escalate, one escalation email owed
    # (the critical alert sensor requests it).
    with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
        assert isinstance(stage.sla_breach_sensor(ctx), dg.SkipReason)
    from warehouse.ops_state import due_work

    published = duckdb.connect(str(ops_state_path(wh.path.parent)), read_only=True)
    due = due_work(published, dt.datetime(2025, 3, 20))
    published.close()
    assert len(due["escalation"]) == 1 and "sla_breach" not in due


def test_backtest_asset_reports_overall_metrics(wh, ea_env):
    from tests.alerts.test_backtest import _history

    _history(wh, percentile=80)  # the shipped usage rules need a churn score of 75+
    wh.con.close()
    d = days(60)
    result = dg.materialize(
        [stage.alerts_backtest],
        resources=_resources(wh, CONFIG),
        run_config={
            "ops": {
                "alerts__backtest": {
                    "config": {"start_date": str(d[0]), "end_date": str(d[-1]), "horizon_days": 60}
                }
            }
        },
    )
    meta = result.asset_materializations_for_node("alerts__backtest")[0].metadata
    assert meta["recall"].value == 1.0 and meta["median_lead_days"].value == 20.0
    assert any(r["rule_id"] == "engagement_drop" for r in meta["by_rule"].value)


def test_policy_steps_of_a_critical_alert_wake_the_escalation_job(wh, ea_env):
    import duckdb

    from alerts.engine import evaluate
    from alerts.rules import columns_from_connection, load_routing, load_rules
    from warehouse.ops_state import due_work, ops_state_path, publish_ops_state

    d = days(1)[0]  # renewal risk on a1: the shipped critical rule
    wh.day(d, {"a1": {"health_tier": "at_risk", "days_to_renewal": 60}}, churn={"a1": 0.8})
    templates = CONFIG / "templates" / "recommendations"
    rules = load_rules(CONFIG / "rules.yml", columns_from_connection(wh.con), templates)
    evaluate(wh.con, rules, load_routing(CONFIG / "routing.yml"), d, templates)
    publish_ops_state(wh.con, ops_state_path(wh.path.parent), "test")
    raised = dt.datetime.combine(d + dt.timedelta(days=1), dt.time())
    wh.con.close()
    published = duckdb.connect(str(ops_state_path(wh.path.parent)), read_only=True)
    # Due at the first step (4 h after raising), not before; the SLA escalation stays out.
    assert "escalation_step" not in due_work(published, raised + dt.timedelta(hours=3))
    assert len(due_work(published, raised + dt.timedelta(hours=4))["escalation_step"]) == 1
    published.close()
    resources = _resources(wh, CONFIG)
    at = (raised + dt.timedelta(hours=5)).isoformat()
    run_config = {"ops": {"escalate_sla_breaches": {"config": {"now": at}}}}
    assert stage.sla_escalation_job.execute_in_process(
        resources=resources, run_config=run_config
    ).success
    con = duckdb.connect(str(wh.path), read_only=True)
    steps = con.execute(
        "select e.step, e.escalated_to, l.actor from alerts.escalations e "
        "join alerts.audit_log l on l.alert_id = e.alert_id and l.event = 'escalated' "
        "where e.severity = 'critical'"
    ).fetchall()
    next_at = con.execute(
        "select next_escalation_at from alerts.alerts where severity = 'critical'"
    ).fetchall()[0][0]
    con.close()
    assert steps == [("step:1", "mona@example.com", "system:escalation-policy")]
    assert next_at == raised + dt.timedelta(hours=24)  # the director's step is next
