"""Per-account daily engagement anomalies: robust z against the account's same-weekday history."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from ml.config import AnomalyConfig
from warehouse.catalog import table_columns, table_exists

DDL = """
create schema if not exists ml;
create table if not exists ml.anomalies (
    account_id varchar not null,
    activity_date date not null,
    metric varchar not null,
    expected double not null,
    observed double not null,
    robust_z double not null,
    severity varchar not null,
    baseline_points integer not null,
    detected_at timestamp not null,
    primary key (account_id, activity_date, metric)
);
"""

# One row per (account, day, metric) with a usable baseline; every step is set-based SQL.
# Days not landed or on a holiday are neither judged nor used as history.
DETECT_SQL = """
with days as (
    select e.account_id, e.activity_date, {metric_casts}
    from marts.fct_account_daily_engagement e
    {region_join}
    where e.is_data_landed
      and e.activity_date <= $as_of
      and e.activity_date > $as_of - interval ({history_days}) day
      and not exists (
          select 1 from _ml_holidays h
          where h.holiday_date::date = e.activity_date
            and (h.region is null or h.region::varchar = {region})
      )
),
long as (
    unpivot days on {metric_list} into name metric value observed
),
targets as (
    select * from long where activity_date > $as_of - interval ({lookback_days}) day
),
pairs as (
    -- Same weekday, up to `baseline_weeks` earlier weeks.
    select t.account_id, t.activity_date, t.metric, t.observed, h.observed as past
    from targets t
    join long h
      on h.account_id = t.account_id
     and h.metric = t.metric
     and h.activity_date < t.activity_date
     and h.activity_date >= t.activity_date - interval ({baseline_days}) day
     and dayofweek(h.activity_date) = dayofweek(t.activity_date)
),
med as (
    select account_id, activity_date, metric, any_value(observed) as observed,
           median(past) as expected, count(*) as baseline_points
    from pairs group by all
),
floors as (
    select * from (values {floor_rows}) as t(metric, min_scale)
),
mad as (
    select p.account_id, p.activity_date, p.metric, median(abs(p.past - m.expected)) as mad
    from pairs p join med m using (account_id, activity_date, metric)
    group by all
),
scored as (
    select m.account_id, m.activity_date, m.metric, m.expected, m.observed, m.baseline_points,
           -- 1.4826 * MAD estimates a standard deviation; the floor stops a flat history of
           -- zeros from turning one small event into an infinite score.
           (m.observed - m.expected) / greatest(1.4826 * d.mad, f.min_scale) as robust_z
    from med m
    join mad d using (account_id, activity_date, metric)
    join floors f using (metric)
    where m.baseline_points >= $min_points
)
select account_id, activity_date, metric, expected, observed, robust_z,
       case when abs(robust_z) >= $high_z then 'high' else 'medium' end as severity,
       baseline_points::integer as baseline_points
from scored
where abs(robust_z) >= $z_threshold
"""


def ensure_schema(con) -> None:
    """Create `ml.anomalies` if it does not exist."""
    con.execute(DDL)


def detect_anomalies(con, as_of_date: dt.date, config: AnomalyConfig | None = None):
    """Anomalies for landed, non-holiday days in the `lookback_days` up to `as_of_date`.

    Returns a DataFrame (`account_id, activity_date, metric, expected, observed, robust_z,
    severity, baseline_points`); negative robust_z is a drop, positive a spike.
    """
    config = config or AnomalyConfig()
    if not config.metrics:
        raise ValueError("AnomalyConfig.metrics is empty: name at least one engagement column.")
    for metric in config.metrics:
        if not metric.isidentifier():
            raise ValueError(f"Metric name {metric!r} is not a plain column name.")
    available = table_columns(con, "marts", "fct_account_daily_engagement")
    if not available:
        raise ValueError(
            "marts.fct_account_daily_engagement does not exist: build the marts first."
        )
    missing = [m for m in config.metrics if m not in available]
    if missing:
        raise ValueError(f"marts.fct_account_daily_engagement lacks metric columns {missing}.")
    baseline_days = 7 * config.baseline_weeks
    sql = DETECT_SQL.format(
        metric_casts=", ".join(f"e.{m}::double as {m}" for m in config.metrics),
        region_join="left join marts.dim_accounts a on a.account_id = e.account_id"
        if config.regional_holidays
        else "",
        region="a.region" if config.regional_holidays else "null",
        metric_list=", ".join(config.metrics),
        history_days=config.lookback_days + baseline_days,
        lookback_days=config.lookback_days,
        baseline_days=baseline_days,
        floor_rows=", ".join(
            f"('{m}', {float(config.min_scales.get(m, config.default_min_scale))})"
            for m in config.metrics
        ),
    )
    holidays = pd.DataFrame(
        [(None, d) for d in config.holidays]
        + [(r, d) for r, days in config.regional_holidays.items() for d in days],
        columns=["region", "holiday_date"],
    ).astype({"region": "object"})
    holidays["holiday_date"] = pd.to_datetime(holidays["holiday_date"]).dt.date
    if config.regional_holidays and not table_exists(con, "marts", "dim_accounts"):
        raise ValueError(
            "Regional holidays need marts.dim_accounts (for each account's region): build the "
            "marts or list the days under `all`."
        )
    con.register("_ml_holidays", holidays)
    try:
        return _run(con, sql, as_of_date, config)
    finally:
        con.unregister("_ml_holidays")


def _run(con, sql: str, as_of_date: dt.date, config: AnomalyConfig):
    return con.execute(
        sql,
        {
            "as_of": as_of_date,
            "min_points": config.min_baseline_points,
            "z_threshold": config.z_threshold,
            "high_z": config.high_z,
        },
    ).df()


def write_anomalies(con, as_of_date: dt.date, config: AnomalyConfig | None = None) -> int:
    """Detect and replace the anomalies of the lookback window in one transaction (idempotent)."""
    config = config or AnomalyConfig()
    found = detect_anomalies(con, as_of_date, config)
    ensure_schema(con)
    start = as_of_date - dt.timedelta(days=config.lookback_days)
    con.register("_ml_anomalies_in", found)
    try:
        con.execute("begin transaction")
        try:
            con.execute(
                "delete from ml.anomalies where activity_date > ? and activity_date <= ?",
                [start, as_of_date],
            )
            con.execute(
                """
                insert into ml.anomalies
                select account_id, activity_date, metric, expected, observed, robust_z, severity,
                       baseline_points, ?
                from _ml_anomalies_in
                """,
                [dt.datetime.now(dt.UTC).replace(tzinfo=None)],
            )
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
    finally:
        con.unregister("_ml_anomalies_in")
    return len(found)
