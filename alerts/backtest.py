"""Replay the rules over past dates (point-in-time inputs only) and score them on outcomes."""

from __future__ import annotations

import datetime as dt
import statistics
import time

import pandas as pd

from alerts.inputs import EvaluationError, build_eval_table, check_inputs
from alerts.rules import RuleSet
from alerts.schema import ensure_schema
from warehouse.catalog import table_exists

NON_CHURN_TYPES = ("expansion_opportunity", "data_freshness")
RESULT_COLUMNS = [
    "start_date",
    "end_date",
    "horizon_days",
    "rule_id",
    "alert_type",
    "alerts_raised",
    "accounts_alerted",
    "csm_count",
    "weeks",
    "alerts_per_csm_per_week",
    "true_positives",
    "precision",
    "churned_accounts",
    "churners_caught",
    "recall",
    "median_lead_days",
    "computed_at",
]


def _raised_alerts(con, ruleset: RuleSet) -> list[tuple]:
    """(rule_id, account_id, raised_on, csm_email) the live engine would have raised.

    Days on which a rule holds are grouped into runs (gaps-and-islands in SQL); a run raises an
    alert on its first day, or on the first day after the cooldown of the previous alert.
    """
    rules = [r for r in ruleset.enabled if r.alert_type != "data_freshness"]
    if not rules:
        return []
    parts, params = [], []
    for rule in rules:
        parts.append(
            "select ? as rule_id, account_id, as_of_date, csm_email from _ea_bt "
            f"where _gate_ok and coalesce({rule.condition.sql}, false)"
        )
        params.extend([rule.id, *rule.condition.params])
    runs = con.execute(
        f"""
        with hits as ({" union all ".join(parts)}),
        numbered as (
            select *, as_of_date - cast(row_number() over (
                partition by rule_id, account_id order by as_of_date) as integer) as island
            from hits
        )
        select rule_id, account_id, min(as_of_date) as run_start, max(as_of_date) as run_end,
               min_by(csm_email, as_of_date) as csm_email
        from numbered group by rule_id, account_id, island
        order by rule_id, account_id, run_start
        """,
        params,
    ).fetchall()
    cooldown = {r.id: r.cooldown_days for r in rules}
    raised, last_end = [], {}
    for rule_id, account_id, start, end, csm in runs:
        key = (rule_id, account_id)
        first_ok = start
        if key in last_end:
            # Like the live engine: the cooldown runs from the day after the episode was last seen.
            first_ok = max(start, last_end[key] + dt.timedelta(days=1 + cooldown[rule_id]))
        if first_ok <= end:
            raised.append((rule_id, account_id, first_ok, csm))
            last_end[key] = end
    return raised


def backtest(
    con,
    ruleset: RuleSet,
    start: dt.date,
    end: dt.date,
    horizon_days: int = 90,
    write: bool = True,
) -> pd.DataFrame:
    """Replay `ruleset` for every as-of date in [start, end] and score it against raw.outcomes.

    Uses only what was known on each date (that day's health rows and scores). Per rule and
    overall (`__overall__` = all churn-type rules): alerts raised, alerts per CSM per week,
    precision (share of alerts followed by churn — expansion for expansion rules — within
    `horizon_days`), recall of churned accounts and median lead time in days. Writes
    alerts.backtest_results (replacing the same start/end/horizon) unless `write` is False.
    """
    if end < start:
        raise EvaluationError(f"backtest end {end} is before start {start}")
    started = time.perf_counter()
    check_inputs(con, ruleset)
    if not table_exists(con, "raw", "outcomes"):
        raise EvaluationError("raw.outcomes is missing: load outcomes before backtesting")
    build_eval_table(con, start, end, name="_ea_bt")
    csm_count = con.execute("select count(distinct csm_email) from _ea_bt").fetchall()[0][0]
    raised = _raised_alerts(con, ruleset)
    outcomes = con.execute(
        """
        select account_id, outcome, min(effective_date)
        from raw.outcomes where outcome in ('churned', 'expanded') group by 1, 2
        """
    ).fetchall()
    events = {"churned": {}, "expanded": {}}
    for account_id, outcome, when in outcomes:
        events[outcome][account_id] = when
    churners = {a: d for a, d in events["churned"].items() if start < d <= end + dt.timedelta(1)}
    weeks = ((end - start).days + 1) / 7
    horizon = dt.timedelta(days=horizon_days)

    def measure(rule_id: str, alert_type: str, alerts: list[tuple]) -> dict:
        target = "expanded" if alert_type == "expansion_opportunity" else "churned"
        hits = [
            a for a in alerts
            if a[1] in events[target] and a[2] < events[target][a[1]] <= a[2] + horizon
        ]  # fmt: skip
        pool = (
            churners
            if target == "churned"
            else {a: d for a, d in events["expanded"].items() if start < d <= end}
        )
        first_alert: dict[str, dt.date] = {}
        for _, account_id, raised_on, _ in alerts:
            when = pool.get(account_id)
            if when is not None and when - horizon <= raised_on < when:
                first_alert[account_id] = min(first_alert.get(account_id, raised_on), raised_on)
        leads = [(pool[a] - d).days for a, d in first_alert.items()]
        return {
            "rule_id": rule_id,
            "alert_type": alert_type,
            "alerts_raised": len(alerts),
            "accounts_alerted": len({a[1] for a in alerts}),
            "csm_count": csm_count,
            "weeks": round(weeks, 2),
            "alerts_per_csm_per_week": round(len(alerts) / (csm_count * weeks), 3)
            if csm_count
            else None,
            "true_positives": len(hits),
            "precision": round(len(hits) / len(alerts), 3) if alerts else None,
            "churned_accounts": len(pool),
            "churners_caught": len(first_alert),
            "recall": round(len(first_alert) / len(pool), 3) if pool else None,
            "median_lead_days": float(statistics.median(leads)) if leads else None,
        }

    rows = []
    for rule in ruleset.enabled:
        if rule.alert_type == "data_freshness":
            continue
        rows.append(measure(rule.id, rule.alert_type, [a for a in raised if a[0] == rule.id]))
    churn_ids = {r.id for r in ruleset.enabled if r.alert_type not in NON_CHURN_TYPES}
    rows.append(measure("__overall__", "churn", [a for a in raised if a[0] in churn_ids]))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    frame = pd.DataFrame(
        [
            {"start_date": start, "end_date": end, "horizon_days": horizon_days, **r,
             "computed_at": now}
            for r in rows
        ],
        columns=RESULT_COLUMNS,
    )  # fmt: skip
    frame.attrs["seconds"] = round(time.perf_counter() - started, 3)
    if write:
        ensure_schema(con)
        con.execute("begin transaction")
        try:
            con.execute(
                "delete from alerts.backtest_results "
                "where start_date = ? and end_date = ? and horizon_days = ?",
                [start, end, horizon_days],
            )
            con.register("_ea_bt_df", frame)
            con.execute(
                "insert into alerts.backtest_results select "
                + ", ".join(f'"{c}"' for c in RESULT_COLUMNS)
                + " from _ea_bt_df"
            )
            con.unregister("_ea_bt_df")
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
    return frame


def live_precision(con, start: dt.date, end: dt.date) -> pd.DataFrame | None:
    """Per-rule precision of the alerts really raised in [start, end], judged on what happened
    (kpis.alert_outcomes: real outcomes plus CSM feedback), next to the replay's figures.
    None when the KPI marts have not been built yet.
    """
    if not table_exists(con, "kpis", "alert_outcomes"):
        return None
    return con.execute(
        """
        select rule_id, count(*) as live_alerts,
               count_if(is_outcome_known) as judged,
               count_if(is_outcome_known and is_true_positive) as true_positives,
               round(count_if(is_outcome_known and is_true_positive)
                     / nullif(count_if(is_outcome_known), 0), 3) as live_precision,
               count_if(feedback is not null) as with_feedback,
               count_if(feedback = 'not_useful') as not_useful
        from kpis.alert_outcomes
        where raised_on between ? and ?
        group by rule_id order by rule_id
        """,
        [start, end],
    ).df()
