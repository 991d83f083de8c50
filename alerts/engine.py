"""Evaluate the rules for one as-of date: the steps of a day, in order, in one transaction.

The steps live in modules of their own: inputs (the evaluation table), hits (which rules hold),
episodes (the alert state machine), explain (texts and templates), recipients (who is
responsible), budget (per-owner alert budget) and lifecycle (escalations and the audit log).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path

from alerts import budget, episodes
from alerts.escalation import apply_policy
from alerts.explain import render_new
from alerts.hits import find_hits, register_rules
from alerts.holdout import mark_holdout
from alerts.inputs import WHOLE_WAREHOUSE, EvaluationError, build_eval_table, check_inputs
from alerts.lifecycle import escalate_overdue
from alerts.recipients import People
from alerts.rules import Routing, RuleSet, template_env
from alerts.schema import alert_id_for, ensure_schema

ENGINE_ACTOR = episodes.ENGINE_ACTOR

__all__ = [
    "ENGINE_ACTOR",
    "WHOLE_WAREHOUSE",
    "EvaluationError",
    "EvaluationResult",
    "alert_id_for",
    "evaluate",
    "evaluation_time",
]


@dataclass
class EvaluationResult:
    as_of_date: dt.date
    accounts_evaluated: int = 0
    accounts_gated: int = 0
    new_alerts: int = 0
    continued_alerts: int = 0
    resolved_alerts: int = 0
    expired_alerts: int = 0
    suppressed_cooldown: int = 0
    suppressed_snooze: int = 0
    escalations: int = 0
    budget_overflow: dict[str, int] = field(default_factory=dict)
    open_by_severity: dict[str, int] = field(default_factory=dict)
    open_by_type: dict[str, int] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("examples", "as_of_date")} | {
            "as_of_date": str(self.as_of_date)
        }


def evaluation_time(as_of: dt.date) -> dt.datetime:
    """When day D's alerts count as raised: the end of D, when its data is complete (UTC)."""
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())


def evaluate(
    con,
    ruleset: RuleSet,
    routing: Routing,
    as_of: dt.date,
    templates_dir: Path,
) -> EvaluationResult:
    """Evaluate every enabled rule for `as_of` and update alerts.* in one transaction.

    Idempotent: evaluating the same date again leaves the same rows (ids are deterministic).
    Refuses a date earlier than the latest evaluated one (that would rewrite history; use backtest).
    """
    started = time.perf_counter()
    ensure_schema(con)
    check_inputs(con, ruleset)
    latest = con.execute("select max(as_of_date) from alerts.evaluation_runs").fetchall()[0][0]
    if latest is not None and as_of < latest:
        raise EvaluationError(
            f"alerts are already evaluated up to {latest}; evaluating {as_of} again would rewrite "
            "later alert history. Use `python -m alerts backtest` to replay past dates."
        )
    at = evaluation_time(as_of)
    env = template_env(templates_dir)
    result = EvaluationResult(as_of)
    con.execute("begin transaction")
    try:
        _evaluate_day(con, ruleset, routing, as_of, at, env, result)
        # The run record commits with the alerts it describes: a process killed after the commit
        # must not leave alerts without their run row (a re-run would then count differently).
        result.seconds = round(time.perf_counter() - started, 3)
        con.execute(
            "insert or replace into alerts.evaluation_runs "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                as_of,
                dt.datetime.now(dt.UTC).replace(tzinfo=None),
                result.accounts_evaluated,
                result.accounts_gated,
                result.new_alerts,
                result.continued_alerts,
                result.resolved_alerts,
                result.expired_alerts,
                result.suppressed_cooldown,
                result.suppressed_snooze,
                result.escalations,
                sum(result.budget_overflow.values()),
                result.seconds,
            ],
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return result


def _evaluate_day(con, ruleset, routing, as_of, at, env, result: EvaluationResult) -> None:
    # 1. The day's inputs, and which rules hold for which accounts.
    build_eval_table(con, as_of)
    total, gated = con.execute(
        "select count(*), count(*) filter (where not _gate_ok) from _ea_eval"
    ).fetchall()[0]
    result.accounts_evaluated, result.accounts_gated = total, gated
    register_rules(con, ruleset)
    fresh_rows = find_hits(con, ruleset, total)
    # 2. Episodes that still hold continue; the other hits are candidates (snooze, cooldown).
    (
        result.continued_alerts,
        result.suppressed_snooze,
        result.suppressed_cooldown,
    ) = episodes.continue_and_select_new(con, as_of, at)
    # 3. Render explanations and recommendations for the new episodes only, and raise them.
    render_new(con, ruleset, routing, as_of, env, fresh_rows)
    episodes.insert_raised(con, as_of, at)
    # Control group: recorded like any alert, never delivered (notifications skips is_holdout).
    mark_holdout(con, routing.holdout, as_of)
    episodes.audit_raised(con, as_of, at)
    result.new_alerts = con.execute(
        "select count(*) from alerts.alerts where first_raised_on = ? and status != 'expired'",
        [as_of],
    ).fetchall()[0][0]
    # 4. Open alerts whose condition no longer holds (on complete data) resolve themselves.
    result.resolved_alerts = episodes.resolve_cleared(
        con, [r.id for r in ruleset.enabled], as_of, at
    )
    # 5. Expiry: rule switched off, account gone from the mart, or open for too long.
    result.expired_alerts = episodes.expire(
        con, ruleset.rules, result.accounts_evaluated > 0, as_of, at
    )
    # 6. Alert budget: each owner gets their most important new alerts individually.
    result.budget_overflow = budget.apply_budget(con, routing, as_of)
    # 7. SLA breaches as of the end of the day; critical alerts follow the escalation policy
    #    (next level after N hours, then reminders) until a person acknowledges them.
    policy = routing.escalation_policy
    result.escalations = len(escalate_overdue(con, at, skip_severities=policy.severities))
    result.escalations += len(apply_policy(con, policy, People.from_routing(routing), at))
    _summarise(con, as_of, result)


def _summarise(con, as_of, result: EvaluationResult) -> None:
    for sev, n in con.execute(
        "select severity, count(*) from alerts.alerts where status in ('open', 'acknowledged') "
        "group by 1"
    ).fetchall():
        result.open_by_severity[sev] = n
    for typ, n in con.execute(
        "select alert_type, count(*) from alerts.alerts where status in ('open', 'acknowledged') "
        "group by 1"
    ).fetchall():
        result.open_by_type[typ] = n
    cur = con.execute(
        """
        select alert_id, account_name, rule_id, severity, priority, explanation
        from alerts.alerts where first_raised_on = ? order by priority desc nulls last limit 5
        """,
        [as_of],
    )
    names = [d[0] for d in cur.description]
    result.examples = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
