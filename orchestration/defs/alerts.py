"""Dagster definitions for the alerts stage: evaluate rules, check them, backtest, escalate SLAs."""

import datetime as dt
import time

import dagster as dg
from dagster_duckdb import DuckDBResource

from alerts.backtest import backtest
from alerts.engine import EvaluationError, evaluate
from alerts.escalation import apply_policy
from alerts.lifecycle import escalate_overdue
from alerts.recipients import People
from alerts.rules import RulesFileError, columns_from_connection, load_routing, load_rules
from alerts.schema import ensure_schema
from orchestration.asof import AsOfConfig, resolve_as_of
from orchestration.publishing import publish_analyst_database_op
from orchestration.resources import PathsResource, sensor_default
from orchestration.sensing import publish_state, request_when_due

ALERTS = dg.AssetKey(["alerts", "alerts"])
BACKTEST = dg.AssetKey(["alerts", "backtest"])
# Steps on the way to a critical email run before any other ready step of the same run (the
# in-process executor picks the highest dagster/priority first): segments, drift checks and the
# analytics views wait until the email is out.
CRITICAL_PATH = {"dagster/priority": "10"}
INPUTS = [
    dg.AssetKey(["marts", "account_health"]),
    dg.AssetKey(["marts", "data_freshness"]),
    dg.AssetKey(["ml", "account_scores"]),
    dg.AssetKey(["ml", "anomalies"]),
    # People's acknowledgements and snoozes reach the warehouse before the day is evaluated.
    dg.AssetKey(["alerts", "inbox_actions"]),
]


def _templates(paths: PathsResource):
    return paths.config / "templates" / "recommendations"


def _routing_only(paths: PathsResource):
    try:
        return load_routing(paths.config / "routing.yml")
    except RulesFileError as exc:
        raise dg.Failure(description=str(exc)) from exc


def _load(con, paths: PathsResource):
    """Rules validated against the live warehouse columns, and routing; Failure says what to fix."""
    try:
        rules = load_rules(
            paths.config / "rules.yml", columns_from_connection(con), _templates(paths)
        )
        routing = load_routing(paths.config / "routing.yml")
    except RulesFileError as exc:
        raise dg.Failure(description=str(exc)) from exc
    return rules, routing


@dg.asset(
    key=ALERTS,
    deps=INPUTS,
    group_name="alerts",
    kinds={"duckdb", "python"},
    op_tags=CRITICAL_PATH,
    description="Alerts for the run's as-of date from config/rules.yml: new episodes raised, "
    "continuing ones updated, cleared ones resolved, with priority, routing, explanation and "
    "recommendation. Accounts whose data has not fully landed get one data freshness alert.",
)
def alerts_alerts(
    context: dg.AssetExecutionContext,
    config: AsOfConfig,
    duckdb: DuckDBResource,
    paths: PathsResource,
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        as_of = resolve_as_of(con, config)
        rules, routing = _load(con, paths)
        try:
            result = evaluate(con, rules, routing, as_of, _templates(paths))
        except EvaluationError as exc:
            raise dg.Failure(description=str(exc)) from exc
        # New critical alerts are owed an email even if the run stops before its critical step.
        publish_state(con, paths, "alerts/alerts")
    context.log.info(f"alerts for {as_of}: {result.summary()}")
    return dg.MaterializeResult(
        metadata={
            "as_of_date": str(as_of),
            "rules_version": rules.digest,
            "accounts_evaluated": result.accounts_evaluated,
            "accounts_gated_by_freshness": result.accounts_gated,
            "new": result.new_alerts,
            "continued": result.continued_alerts,
            "resolved": result.resolved_alerts,
            "expired": result.expired_alerts,
            "suppressed_cooldown": result.suppressed_cooldown,
            "suppressed_snooze": result.suppressed_snooze,
            "escalations": result.escalations,
            "open_by_severity": dg.MetadataValue.json(result.open_by_severity),
            "open_by_type": dg.MetadataValue.json(result.open_by_type),
            "budget_overflow_total": sum(result.budget_overflow.values()),
            "budget_overflow_by_owner": dg.MetadataValue.json(result.budget_overflow),
            "examples": dg.MetadataValue.json(
                [{k: str(v) for k, v in e.items()} for e in result.examples]
            ),
            "seconds": result.seconds,
        }
    )


@dg.asset_check(
    asset=ALERTS,
    blocking=True,
    op_tags=CRITICAL_PATH,
    description="config/rules.yml, routing.yml and the templates validate against the live "
    "warehouse columns (a broken rules file stops deliveries).",
)
def rules_file_validates(duckdb: DuckDBResource, paths: PathsResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        try:
            rules = load_rules(
                paths.config / "rules.yml", columns_from_connection(con), _templates(paths)
            )
            load_routing(paths.config / "routing.yml")
        except RulesFileError as exc:
            return dg.AssetCheckResult(
                passed=False,
                metadata={"problems": dg.MetadataValue.json(exc.problems), "file": exc.path},
            )
    return dg.AssetCheckResult(
        passed=True,
        metadata={
            "rules": len(rules.rules),
            "enabled": len(rules.enabled),
            "rules_version": rules.digest,
        },
    )


class BacktestConfig(dg.Config):
    """Date range to replay; empty start/end = the 180 days up to the latest health date."""

    start_date: str = ""
    end_date: str = ""
    horizon_days: int = 90


@dg.asset(
    key=BACKTEST,
    deps=[INPUTS[0], INPUTS[2], dg.AssetKey(["raw", "outcomes"])],
    group_name="alerts",
    kinds={"duckdb", "python"},
    description="Replays the rules over past dates (point-in-time data only) and scores them "
    "against outcomes: alerts per CSM per week, precision, recall, lead time. On demand.",
)
def alerts_backtest(
    context: dg.AssetExecutionContext,
    config: BacktestConfig,
    duckdb: DuckDBResource,
    paths: PathsResource,
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        rules, _ = _load(con, paths)
        if config.end_date:
            end = dt.date.fromisoformat(config.end_date)
        else:
            end = con.execute("select max(as_of_date) from marts.account_health").fetchall()[0][0]
            if end is None:
                raise dg.Failure(description="marts.account_health is empty: build the marts first")
        start = (
            dt.date.fromisoformat(config.start_date)
            if config.start_date
            else end - dt.timedelta(days=179)
        )
        try:
            frame = backtest(con, rules, start, end, config.horizon_days)
        except EvaluationError as exc:
            raise dg.Failure(description=str(exc)) from exc
    overall = frame.set_index("rule_id").loc["__overall__"]
    return dg.MaterializeResult(
        metadata={
            "start_date": str(start),
            "end_date": str(end),
            "horizon_days": config.horizon_days,
            "alerts_raised": int(overall["alerts_raised"]),
            "alerts_per_csm_per_week": _num(overall["alerts_per_csm_per_week"]),
            "precision": _num(overall["precision"]),
            "recall": _num(overall["recall"]),
            "median_lead_days": _num(overall["median_lead_days"]),
            "by_rule": dg.MetadataValue.json(
                [
                    {k: (None if v != v else v) for k, v in row.items()}
                    for row in frame.drop(columns=["start_date", "end_date", "computed_at"])
                    .astype(object)
                    .to_dict("records")
                ]
            ),
            "seconds": frame.attrs.get("seconds", 0.0),
        }
    )


def _num(value) -> float:
    try:
        return float(value) if value is not None and value == value else float("nan")
    except (TypeError, ValueError):
        return float("nan")


class EscalationConfig(dg.Config):
    """`now` as an ISO timestamp (UTC) to escalate as of; empty = the current time."""

    now: str = ""


# An op job, not an asset: it acts on the wall clock, so it must stay out of the asset jobs that
# replay history (the daily evaluation already escalates as of the end of its as-of day).
@dg.op(
    description="Escalate open, unacknowledged alerts past their SLA (each breach once); "
    "critical alerts follow the escalation policy in routing.yml (steps, then reminders)."
)
def escalate_sla_breaches(
    context: dg.OpExecutionContext,
    config: EscalationConfig,
    duckdb: DuckDBResource,
    paths: PathsResource,
) -> None:
    started = time.perf_counter()
    now = dt.datetime.fromisoformat(config.now) if config.now else dt.datetime.now(dt.UTC)
    routing = _routing_only(paths)
    policy = routing.escalation_policy
    with duckdb.get_connection() as con:
        ensure_schema(con)
        new = escalate_overdue(con, now, skip_severities=policy.severities)
        # Critical alerts: the next level, then reminders, until a person acknowledges.
        new += apply_policy(
            con,
            policy,
            People.from_routing(routing),
            now.astimezone(dt.UTC).replace(tzinfo=None) if now.tzinfo else now,
        )
        # The escalation emails are owed now: the critical alert sensor requests them.
        publish_state(con, paths, "alerts_sla_escalation_job")
    context.log.info(f"escalated {len(new)} alert(s): {new[:5]}")
    context.log_event(
        dg.AssetObservation(
            asset_key=ALERTS,
            metadata={
                "sla_escalations": len(new),
                "examples": dg.MetadataValue.json(new[:5]),
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
    )


@dg.job(
    name="alerts_sla_escalation_job",
    description="Escalates alerts past their SLA to the escalation address (run by the sensor).",
)
def sla_escalation_job():
    publish_analyst_database_op(escalate_sla_breaches())


alerts_backtest_job = dg.define_asset_job(
    "alerts_backtest_job", selection=dg.AssetSelection.assets(BACKTEST)
)


@dg.sensor(
    job=sla_escalation_job,
    minimum_interval_seconds=900,
    default_status=sensor_default(),
    description="Every 15 minutes: if an open alert is past its SLA and not yet escalated, run "
    "the escalation job. Reads the published work list only.",
)
def sla_breach_sensor(
    context: dg.SensorEvaluationContext, paths: PathsResource
) -> dg.RunRequest | dg.SkipReason:
    return request_when_due(
        context, paths, ["sla_breach", "escalation_step"], sla_escalation_job.name
    )


defs = dg.Definitions(
    assets=[alerts_alerts, alerts_backtest],
    asset_checks=[rules_file_validates],
    jobs=[sla_escalation_job, alerts_backtest_job],
    sensors=[sla_breach_sensor],
)
