"""Dagster definitions for closing the loop: outcome and KPI marts, uplift, model drift check."""

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets
from dagster_duckdb import DuckDBResource

from ml.drift import drift_report
from notifications.content import ContentConfig
from notifications.kpi_email import build_kpi_emails
from notifications.outbox import send_emails_now, utcnow
from notifications.schema import ensure_schema as ensure_ops_schema
from orchestration.asof import AsOfConfig, resolve_as_of
from orchestration.defs.deliveries import NETWORK_RETRY, SmtpResource
from orchestration.defs.marts import MartsTranslator, dbt_project
from orchestration.publishing import ANALYST_DB
from orchestration.resources import PathsResource
from orchestration.sensing import publish_state

# The dbt folder this stage owns; it reads alerts.* and ops.* (sources), so it runs after
# deliveries and is kept out of the marts stage's dbt assets.
KPIS_SELECTION = "path:models/outcomes"
SCORES = dg.AssetKey(["ml", "account_scores"])


def _fetch(con, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _md_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows yet)"
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in r.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def kpi_metadata(con) -> dict[str, dict[str, Any]]:
    """Headline numbers per KPI model, read after dbt has released the database."""
    out: dict[str, dict[str, Any]] = {}
    outcomes = _fetch(
        con,
        """
        select count(*) as alerts, count_if(is_holdout) as holdout_alerts,
               count_if(is_risk_alert and is_outcome_known) as risk_alerts_judged,
               count_if(is_risk_alert and is_outcome_known and is_true_positive) as risk_tp,
               count_if(sla_status = 'met') as sla_met,
               count_if(sla_status in ('met', 'missed')) as sla_decided,
               median(hours_to_first_action) as median_hours_to_first_action
        from kpis.alert_outcomes
        """,
    )[0]
    judged, decided = outcomes["risk_alerts_judged"], outcomes["sla_decided"]
    out["alert_outcomes"] = {
        "rows": outcomes["alerts"],
        "holdout_alerts": outcomes["holdout_alerts"],
        "risk_precision": round(outcomes["risk_tp"] / judged, 3) if judged else None,
        "sla_attainment": round(outcomes["sla_met"] / decided, 3) if decided else None,
        "median_hours_to_first_action": outcomes["median_hours_to_first_action"],
    }
    weekly = _fetch(
        con,
        """
        select week_start, alerts_raised, risk_precision, false_alarm_rate, sla_attainment,
               alerts_per_csm, share_acknowledged, is_every_critical_delivered
        from kpis.kpi_alerts_weekly where dimension = 'overall'
        order by week_start desc limit 8
        """,
    )
    worst = _fetch(
        con,
        """
        select dimension_value as rule_id, sum(alerts_raised) as alerts,
               sum(risk_true_positives) / nullif(sum(risk_alerts_judged), 0) as precision,
               sum(snoozed_or_not_useful) / nullif(sum(alerts_raised), 0) as snoozed_or_not_useful
        from kpis.kpi_alerts_weekly where dimension = 'rule'
        group by 1 order by precision asc nulls last, alerts desc limit 5
        """,
    )
    missed = con.execute(
        "select count(*) from kpis.kpi_alerts_weekly "
        "where dimension = 'overall' and not is_every_critical_delivered"
    ).fetchone()[0]
    out["kpi_alerts_weekly"] = {
        "rows": con.execute("select count(*) from kpis.kpi_alerts_weekly").fetchone()[0],
        "weeks_with_undelivered_criticals": missed,
        "last_weeks": dg.MetadataValue.md(_md_table(weekly)),
        "lowest_precision_rules": dg.MetadataValue.md(_md_table(worst)),
    }
    coverage = _fetch(
        con,
        "select count(*) as churned, count_if(had_risk_alert) as alerted, "
        "count_if(had_risk_alert_with_lead) as alerted_30d_ahead, "
        "median(lead_days) as median_lead_days from kpis.kpi_churn_coverage",
    )[0]
    out["kpi_churn_coverage"] = {
        **coverage,
        "recall_with_lead": round(coverage["alerted_30d_ahead"] / coverage["churned"], 3)
        if coverage["churned"]
        else None,
    }
    uplift = _fetch(con, "select * from kpis.kpi_holdout_uplift order by metric")
    out["kpi_holdout_uplift"] = {"rows": len(uplift)} | {
        f"{u['metric']}_uplift": dg.MetadataValue.json(
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in u.items() if k != "metric"}
        )
        for u in uplift
    }
    return out


def _critical_rules(con, paths: PathsResource) -> list[dict[str, Any]]:
    """config/rules.yml's critical rules as the dbt var critical_rules (portable SQL)."""
    from alerts.reconcile import critical_rule_vars
    from alerts.rules import (
        CONTRACT_HEALTH_COLUMNS,
        DERIVED_COLUMNS,
        RulesFileError,
        columns_from_connection,
        load_rules,
    )

    # The alerts stage validated the rules against the live mart; the contract columns are
    # added so a mart with fewer columns (tests) still compiles the critical ones.
    columns = {**CONTRACT_HEALTH_COLUMNS, **DERIVED_COLUMNS, **columns_from_connection(con)}
    try:
        rules = load_rules(
            paths.config / "rules.yml", columns, paths.config / "templates" / "recommendations"
        )
    except RulesFileError as exc:
        raise dg.Failure(description=str(exc)) from exc
    return critical_rule_vars(rules)


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    name="kpis_dbt",
    select=KPIS_SELECTION,
    dagster_dbt_translator=MartsTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
    ),
)
def kpis_dbt(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    duckdb: DuckDBResource,
    config: AsOfConfig,
    paths: PathsResource,
) -> Iterator[Any]:
    """`dbt build` of the outcome and KPI models as of the run's date (after deliveries)."""
    with duckdb.get_connection() as con:
        as_of = resolve_as_of(con, config)
        critical = _critical_rules(con, paths)
    # As in marts_dbt: without an explicit date dbt's own default is the same day (the latest
    # landed), and identical --vars from day to day plus one target folder per warehouse let
    # dbt parse partially instead of re-reading the whole project (a few seconds per run).
    variables: dict[str, Any] = {"as_of_date": as_of.isoformat()} if config.as_of_date else {}
    # The reconciliation mart recomputes the critical rules in force (config/rules.yml).
    variables["critical_rules"] = critical
    args = ["build", "--vars", json.dumps(variables)]
    target = Path(duckdb.database).resolve().parent / "dbt_target" / "kpis"
    started = time.perf_counter()
    # Buffered: the metadata below needs the database after dbt has let go of it.
    events = list(dbt.cli(args, context=context, target_path=target).stream())
    seconds = round(time.perf_counter() - started, 2)
    with duckdb.get_connection() as con:
        extra = kpi_metadata(con)
    for event in events:
        if isinstance(event, dg.Output):
            key = context.asset_key_for_output(event.output_name)
            meta = {
                **event.metadata,
                "as_of_date": as_of.isoformat(),
                "dbt_seconds": seconds,
                **extra.get(key.path[-1], {}),
            }
            yield dg.Output(
                value=event.value,
                output_name=event.output_name,
                metadata=meta,
                data_version=event.data_version,
                tags=event.tags,
            )
        else:
            yield event


@dg.asset_check(
    asset=SCORES,
    name="score_and_feature_drift",
    description="PSI of this week's churn/expansion scores and features against the training "
    "period; WARN = the distributions moved enough (PSI > 0.25) that the models should be "
    "retrained (run training_job).",
)
def score_and_feature_drift(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        as_of = con.execute("select max(as_of_date) from ml.account_scores").fetchone()[0]
        if as_of is None:
            return dg.AssetCheckResult(
                passed=True,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"note": "no scores yet: nothing to compare"},
            )
        report = drift_report(con, as_of)
    worst_features = dict(sorted(report.feature_psi.items(), key=lambda kv: -kv[1])[:10])
    return dg.AssetCheckResult(
        passed=not report.should_retrain,
        severity=dg.AssetCheckSeverity.WARN,
        description=report.summary(),
        metadata={
            "as_of_date": as_of.isoformat(),
            "current_window": report.current,
            "reference": report.reference,
            "threshold": report.threshold,
            "score_psi": dg.MetadataValue.json(report.score_psi),
            "largest_feature_psi": dg.MetadataValue.json(worst_features),
            "drifted": dg.MetadataValue.json(report.drifted),
            "should_retrain": report.should_retrain,
        },
    )


def report_week(as_of: dt.date) -> dt.date:
    """The Monday of the last complete week (Monday-Sunday) on or before `as_of`."""
    this_monday = as_of - dt.timedelta(days=as_of.weekday())
    return this_monday if as_of.weekday() == 6 else this_monday - dt.timedelta(days=7)


@dg.asset(
    key=["ops", "kpi_email"],
    deps=[
        dg.AssetKey(["kpis", "kpi_alerts_weekly"]),
        dg.AssetKey(["kpis", "kpi_holdout_uplift"]),
    ],
    group_name="deliveries",
    kinds={"duckdb", "python"},
    retry_policy=NETWORK_RETRY,
    description="The weekly KPI email to managers (their team) and admins (everyone) for the "
    "last complete week, through the outbox (key kpi:<email>:<monday>: once per week).",
)
def kpi_email(
    context: dg.AssetExecutionContext,
    config: AsOfConfig,
    duckdb: DuckDBResource,
    paths: PathsResource,
    smtp: SmtpResource,
) -> dg.MaterializeResult:
    now = utcnow()
    with duckdb.get_connection() as con:
        ensure_ops_schema(con)
        week = report_week(resolve_as_of(con, config))
        built = build_kpi_emails(
            con,
            week,
            paths.email_templates,
            ContentConfig(routing=paths.routing()),
            now=now,
        )
    # Sent with the warehouse closed (claim, send, record): nothing waits on the relay.
    new, report = send_emails_now(duckdb.get_connection, built, smtp.sender(), now)
    with duckdb.get_connection() as con:
        publish_state(con, paths, "ops/kpi_email")
    context.log.info(f"KPI emails for the week of {week}: {len(built)} built, {new} new")
    return dg.MaterializeResult(
        metadata={
            "week_start": week.isoformat(),
            "recipients": len(built),
            "new_emails": new,
            **report.as_metadata(),
            "examples": [d.subject for d in built[:3]],
        }
    )


kpis_job = dg.define_asset_job(
    "kpis_job",
    selection=dg.AssetSelection.assets(kpis_dbt, kpi_email, ANALYST_DB),
    description="Rebuild the outcome and KPI marts (kpis schema) as of a date and send the "
    "weekly KPI email if this week's has not gone out.",
)

defs = dg.Definitions(
    assets=[kpis_dbt, kpi_email],
    asset_checks=[score_and_feature_drift],
    jobs=[kpis_job],
)
