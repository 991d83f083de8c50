"""What the rules read: the inputs they need and the per-day evaluation table they run over."""

from __future__ import annotations

import datetime as dt

from alerts.rules import RuleSet, columns_from_connection
from warehouse.catalog import table_columns, table_exists

WHOLE_WAREHOUSE = "*"  # account_id of data freshness alerts, which concern the whole day
# Rules of this type see only dormant accounts (the went-dormant notice); all others only live ones.
DORMANT_TYPE = "account_dormant"
REQUIRED_TABLES = (
    ("marts", "account_health"),
    ("marts", "data_freshness"),
    ("ml", "account_scores"),
    ("ml", "anomalies"),
)
REQUIRED_HEALTH_COLUMNS = (
    "account_id",
    "as_of_date",
    "is_data_complete",
    "arr",
    "csm_email",
    "manager_email",
)


class EvaluationError(RuntimeError):
    """The rules cannot be evaluated for this date; the message says what to fix."""


def check_inputs(con, ruleset: RuleSet) -> None:
    """Refuse to run when an input table or a column a rule needs is missing."""
    missing = [f"{s}.{t}" for s, t in REQUIRED_TABLES if not table_exists(con, s, t)]
    if missing:
        raise EvaluationError(
            f"input tables missing: {', '.join(missing)}; build the marts and ml stages first"
        )
    live = columns_from_connection(con)
    gaps = [c for c in REQUIRED_HEALTH_COLUMNS if c not in live]
    if gaps:
        raise EvaluationError(f"marts.account_health lacks required columns {gaps}")
    problems = []
    for rule in ruleset.enabled:
        for col in rule.condition.columns:
            if col not in live:
                problems.append(f"rule {rule.id!r} uses {col!r}, not a column of the inputs")
    if problems:
        raise EvaluationError(
            "rules do not match the warehouse (fix config/rules.yml or the mart): "
            + "; ".join(problems)
        )


def build_eval_table(con, start: dt.date, end: dt.date | None = None, name="_ea_eval") -> None:
    """Temp table `name`: one row per account and as-of day in [start, end] with every column a
    rule may use (health mart + that day's scores and anomalies + landing status), and the gate.
    """
    end = end or start
    has_dim = table_exists(con, "marts", "dim_accounts")
    dim_join = (
        "left join (select account_id, any_value(account_name) as account_name "
        "from marts.dim_accounts group by account_id) d using (account_id)"
        if has_dim
        else ""
    )
    name_expr = "coalesce(d.account_name, h.account_id)" if has_dim else "h.account_id"
    health_columns = table_columns(con, "marts", "account_health")
    dormant = "coalesce(h.is_dormant, false)" if "is_dormant" in health_columns else "false"
    if "is_dormant" in health_columns:
        health_star = (
            "h.* replace (coalesce(h.is_data_complete, false) as is_data_complete, "
            "coalesce(h.is_dormant, false) as is_dormant)"
        )
    else:  # a mart built before dormancy existed: nobody is dormant
        health_star = (
            "h.* replace (coalesce(h.is_data_complete, false) as is_data_complete), "
            "false as is_dormant, cast(null as integer) as days_dormant"
        )
    drivers = ", ".join(
        f"max(driver_{i}) filter (where model_name = '{m}') as _{m}_d{i}, "
        f"max(driver_{i}_contribution) filter (where model_name = '{m}') as _{m}_c{i}"
        for m in ("churn", "expansion")
        for i in (1, 2, 3)
    )
    con.execute(
        f"""
        create or replace temp table {name} as
        with health as (
            select * from marts.account_health where as_of_date between $s and $e
        ),
        scores as (
            select
                account_id,
                as_of_date,
                max(probability) filter (where model_name = 'churn') as churn_probability,
                max(percentile) filter (where model_name = 'churn') as churn_percentile,
                max(band) filter (where model_name = 'churn') as churn_band,
                max(probability) filter (where model_name = 'expansion')
                    as expansion_probability,
                max(percentile) filter (where model_name = 'expansion') as expansion_percentile,
                max(band) filter (where model_name = 'expansion') as expansion_band,
                {drivers}
            from ml.account_scores
            where as_of_date between $s and $e
            group by account_id, as_of_date
        ),
        anomalies as (
            select
                account_id,
                activity_date as as_of_date,
                count(*) as anomaly_count,
                count(*) filter (where robust_z < 0) as anomaly_drop_count,
                min(robust_z) as anomaly_min_z,
                max(robust_z) as anomaly_max_z
            from ml.anomalies
            where activity_date between $s and $e
            group by account_id, activity_date
        ),
        freshness as (
            select activity_date as as_of_date, bool_and(is_landed) as is_landed
            from marts.data_freshness
            where activity_date between $s and $e
            group by activity_date
        )
        select
            {health_star},
            s.* exclude (account_id, as_of_date),
            coalesce(a.anomaly_count, 0) as anomaly_count,
            coalesce(a.anomaly_drop_count, 0) as anomaly_drop_count,
            a.anomaly_min_z,
            a.anomaly_max_z,
            coalesce(f.is_landed, false) as day_is_landed,
            -- a dormant account is not alerted (only its one went-dormant notice)
            coalesce(h.is_data_complete, false) and coalesce(f.is_landed, false)
                and not {dormant} as _gate_ok,
            {name_expr} as _account_name
        from health h
        left join freshness f using (as_of_date)
        left join scores s using (account_id, as_of_date)
        left join anomalies a using (account_id, as_of_date)
        {dim_join}
        """,
        {"s": start, "e": end},
    )
