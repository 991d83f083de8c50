"""Escalation until acknowledged: the policy in routing.yml, applied to open critical alerts.

As incident tools do it: when an alert is not acknowledged N hours after it was raised, the next
level is notified (the manager, then the CS director...), and after the last level a reminder
goes out every `remind_every_hours` until a person acknowledges, snoozes or resolves it. Each
step is a row in alerts.escalations (which the deliveries stage sends by email and on the second
channel) and an `escalated` or `reminded` event in alerts.audit_log.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from alerts.lifecycle import audit_many, event_id
from alerts.recipients import People
from alerts.schema import ensure_schema

POLICY_ACTOR = "system:escalation-policy"
LEVELS = ("manager", "default_escalation", "data_team", "owner")


@dataclass(frozen=True)
class EscalationStep:
    after_hours: float
    notify: str  # manager | default_escalation | data_team | owner | an email address


@dataclass(frozen=True)
class EscalationPolicy:
    """`escalation_policy:` in routing.yml; this default applies when the file has none."""

    severities: tuple[str, ...] = ("critical",)
    steps: tuple[EscalationStep, ...] = field(
        default_factory=lambda: (
            EscalationStep(4, "manager"),
            EscalationStep(24, "default_escalation"),
        )
    )
    remind_every_hours: float = 24.0


def raised_at_sql(alias: str = "a") -> str:
    """When an alert counts as raised: the end of its first day (the engine's stamp)."""
    return f"cast({alias}.first_raised_on + 1 as timestamp)"


def _target(level: str, alert: dict, people: People) -> str | None:
    if level == "manager":
        return (alert["escalation_email"] or "").lower() or people.default_escalation
    if level == "default_escalation":
        return people.default_escalation or people.data_team
    if level == "data_team":
        return people.data_team
    if level == "owner":
        return (alert["owner_email"] or "").lower() or people.data_team
    return level.lower()


def due_steps(policy: EscalationPolicy, raised_at: dt.datetime, now: dt.datetime) -> list[str]:
    """Step names due by `now` for an alert raised at `raised_at`, in order: "step:1", ...,
    then the latest due reminder only ("reminder:N"), so a catch-up sends one reminder, not many.
    """
    out = []
    for i, step in enumerate(policy.steps, start=1):
        if now >= raised_at + dt.timedelta(hours=step.after_hours):
            out.append(f"step:{i}")
    last = policy.steps[-1].after_hours if policy.steps else 0.0
    if policy.remind_every_hours > 0:
        since = (now - raised_at).total_seconds() / 3600 - last
        n = int(since // policy.remind_every_hours) if since >= 0 else 0
        if n >= 1:
            out.append(f"reminder:{n}")
    return out


def apply_policy(
    con, policy: EscalationPolicy, people: People, now: dt.datetime
) -> list[dict[str, str]]:
    """Record every escalation step and reminder due by `now` for open (unacknowledged, not
    snoozed, not held out) alerts of the policy's severities; returns the new ones.
    Idempotent: a step already recorded is not recorded again.
    """
    ensure_schema(con)
    if not policy.severities:
        return []
    cur = con.execute(
        f"""
        select a.alert_id, a.rule_id, a.account_id, a.severity, a.owner_email,
               a.escalation_email, a.status, {raised_at_sql()} as raised_at
        from alerts.alerts a
        where a.status = 'open' and list_contains($sev, a.severity)
          and (a.snoozed_until is null or a.snoozed_until < cast($now as date))
          and not coalesce(a.is_holdout, false)
          and {raised_at_sql()} <= $now
        order by a.alert_id
        """,
        {"sev": list(policy.severities), "now": now},
    )
    names = [d[0] for d in cur.description]
    alerts = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    _schedule(con, policy, alerts, now)
    if not alerts:
        return []
    done = {
        r[0]
        for r in con.execute(
            "select escalation_id from alerts.escalations where step is not null"
        ).fetchall()
    }
    rows, events, out = [], [], []
    for a in alerts:
        for name in due_steps(policy, a["raised_at"], now):
            esc_id = "es_" + event_id(a["alert_id"], name)[3:]
            if esc_id in done:
                continue
            kind, _, number = name.partition(":")
            if kind == "step":
                step = policy.steps[int(number) - 1]
                level, due = step.notify, a["raised_at"] + dt.timedelta(hours=step.after_hours)
                reason = (
                    f"not acknowledged {step.after_hours:g} h after it was raised: "
                    f"escalation step {number} ({level})"
                )
                event = "escalated"
            else:
                level = "owner"
                last = policy.steps[-1].after_hours if policy.steps else 0.0
                due = a["raised_at"] + dt.timedelta(
                    hours=last + int(number) * policy.remind_every_hours
                )
                reason = f"still not acknowledged: reminder {number}"
                event = "reminded"
            to = _target(level, a, people)
            rows.append(
                [
                    esc_id,
                    a["alert_id"],
                    a["rule_id"],
                    a["account_id"],
                    a["severity"],
                    to,
                    due,
                    now,
                    reason,
                    name,
                ]  # fmt: skip
            )
            details = json.dumps({"step": name, "level": level, "escalated_to": to})
            events.append((a["alert_id"], event, "open", "open", POLICY_ACTOR, reason, details))
            out.append({"escalation_id": esc_id, "alert_id": a["alert_id"], "step": name,
                        "escalated_to": to})  # fmt: skip
    if not rows:
        return []
    import pandas as pd  # local: only this batch path needs it

    frame = pd.DataFrame(
        rows,
        columns=[
            "escalation_id",
            "alert_id",
            "rule_id",
            "account_id",
            "severity",
            "escalated_to",
            "sla_due_at",
            "escalated_at",
            "reason",
            "step",
        ],
    ).astype({"escalated_to": "object"})
    con.register("_ea_policy_df", frame)
    try:
        con.execute(
            """
            insert into alerts.escalations (escalation_id, alert_id, rule_id, account_id,
                severity, escalated_to, sla_due_at, escalated_at, reason, step)
            select * from _ea_policy_df n
            where not exists (select 1 from alerts.escalations e
                              where e.escalation_id = n.escalation_id)
            """
        )
        con.execute(
            """
            update alerts.alerts a set escalated_at = coalesce(a.escalated_at, $now),
                updated_at = $now
            from (select distinct alert_id from _ea_policy_df where step like 'step:%') n
            where a.alert_id = n.alert_id
            """,
            {"now": now},
        )
    finally:
        con.unregister("_ea_policy_df")
    # The step is part of each event's id: two steps due at once are two events.
    audit_many(con, [(*e, r[9]) for e, r in zip(events, rows, strict=True)], now)
    return out


def next_due(policy: EscalationPolicy, raised_at: dt.datetime, now: dt.datetime) -> dt.datetime:
    """When the policy next acts on an alert raised at `raised_at` (after `now`)."""
    for step in policy.steps:
        due = raised_at + dt.timedelta(hours=step.after_hours)
        if due > now:
            return due
    last = raised_at + dt.timedelta(hours=policy.steps[-1].after_hours if policy.steps else 0)
    if policy.remind_every_hours <= 0:
        return dt.datetime.max
    every = dt.timedelta(hours=policy.remind_every_hours)
    n = max(1, int((now - last) / every) + 1)
    return last + n * every


def _schedule(con, policy: EscalationPolicy, alerts: list[dict], now: dt.datetime) -> None:
    """Stamp next_escalation_at on the policy's open alerts and clear it on every other alert,
    so the published work list can wake the escalation job when the next step is due.
    """
    con.execute(
        "update alerts.alerts set next_escalation_at = null "
        "where next_escalation_at is not null and status != 'open'"
    )
    if not alerts:
        return
    import pandas as pd

    frame = pd.DataFrame(
        {
            "alert_id": [a["alert_id"] for a in alerts],
            "next_at": [next_due(policy, a["raised_at"], now) for a in alerts],
        }
    )
    frame = frame[frame["next_at"] < dt.datetime(9999, 1, 1)]
    con.register("_ea_next_df", frame)
    try:
        con.execute(
            "update alerts.alerts a set next_escalation_at = n.next_at "
            "from _ea_next_df n where a.alert_id = n.alert_id"
        )
    finally:
        con.unregister("_ea_next_df")
