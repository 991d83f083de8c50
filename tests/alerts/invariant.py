"""The zero-missed-criticals invariant as the tests check it, day by day (docs/alert-rules.md).

For every account and critical rule whose condition holds on a fully landed day, at the end of
that day's run: a critical alert is open or acknowledged and seen that day, and a sent or
in-flight message about it went to a real recipient; unless a person snoozed it, or resolved it
(the rule's cooldown), each recorded with who and why, or the team put critical alerts in the
holdout (include_critical). While it is not acknowledged, every escalation step due by then is
in alerts.audit_log.
"""

from __future__ import annotations

import datetime as dt

from alerts.escalation import EscalationPolicy, due_steps
from notifications.critical import critical_coverage


def violations(
    con,
    day: dt.date,
    held: set[tuple[str, str]],
    now: dt.datetime,
    policy: EscalationPolicy | None = None,
) -> list[str]:
    """What breaks the invariant on `day`; `held` = (account_id, rule_id) whose condition held
    on landed data that day.
    """
    out = []
    cov = critical_coverage(con, day)
    told = {v["alert_id"] for v in cov.violations}
    for account_id, rule_id in sorted(held):
        rows = con.execute(
            "select alert_id, status, coalesce(is_holdout, false) from alerts.alerts "
            "where account_id = ? and rule_id = ? and status in ('open', 'acknowledged') "
            "and last_seen_on = ?",
            [account_id, rule_id, day],
        ).fetchall()
        if rows:
            alert_id, status, holdout = rows[0]
            if alert_id in told:
                out.append(f"{day} {account_id}: alert {alert_id} ({status}) but nobody was told")
            continue
        if _exempt(con, account_id, rule_id, day):
            continue
        out.append(f"{day} {account_id} {rule_id}: condition held, no open alert, no exemption")
    if policy is not None:
        out += _escalations_missing(con, policy, now)
    return out


def _exempt(con, account_id: str, rule_id: str, day: dt.date) -> bool:
    snoozed = con.execute(
        "select count(*) from alerts.snoozes where account_id = ? and rule_id = ? "
        "and snoozed_until >= ? and actor not like 'system:%' and reason is not null",
        [account_id, rule_id, day],
    ).fetchall()[0][0]
    if snoozed:
        return True
    # A person resolved it (who and why in the audit log): the rule's cooldown.
    resolved = con.execute(
        """
        select count(*) from alerts.alerts a join alerts.audit_log l using (alert_id)
        where a.account_id = ? and a.rule_id = ? and l.event = 'resolved'
          and l.actor not like 'system:%' and l.reason is not null
          and a.last_seen_on < ?
        """,
        [account_id, rule_id, day],
    ).fetchall()[0][0]
    return bool(resolved)


def _escalations_missing(con, policy: EscalationPolicy, now: dt.datetime) -> list[str]:
    out = []
    for alert_id, first, snoozed_until in con.execute(
        "select alert_id, first_raised_on, snoozed_until from alerts.alerts "
        "where severity = 'critical' and status = 'open' and not coalesce(is_holdout, false)"
    ).fetchall():
        if snoozed_until is not None and snoozed_until >= now.date():
            continue
        raised = dt.datetime.combine(first + dt.timedelta(days=1), dt.time())
        due = {s for s in due_steps(policy, raised, now) if s.startswith("step:")}
        logged = {
            r[0]
            for r in con.execute(
                "select json_extract_string(details_json, '$.step') from alerts.audit_log "
                "where alert_id = ? and event = 'escalated'",
                [alert_id],
            ).fetchall()
        }
        if due - logged:
            out.append(f"{alert_id}: escalation steps {sorted(due - logged)} not in the audit log")
    return out
