"""Alert lifecycle: allowed status moves, the audit log, snoozes and SLA escalations."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from alerts.schema import FEEDBACK, STATUSES, ensure_schema

# Which moves a person or a connector may make; `open` is only ever entered by the engine.
ALLOWED_MOVES = {
    "open": {"acknowledged", "resolved", "expired"},
    "acknowledged": {"resolved", "expired"},
    "resolved": set(),
    "expired": set(),
}


class TransitionError(ValueError):
    """A requested status change that is not allowed (unknown alert, closed alert, bad status)."""


def event_id(*parts: object) -> str:
    """Deterministic id for an audit event, so re-running a step never appends it twice."""
    digest = hashlib.md5("|".join(str(p) for p in parts).encode()).hexdigest()
    return "ev_" + digest[:24]


def audit(
    con,
    alert_id: str,
    event: str,
    from_status: str | None,
    to_status: str | None,
    actor: str,
    reason: str | None,
    at: dt.datetime,
    details: dict | None = None,
    key: object = None,
) -> None:
    """Append one event to alerts.audit_log (a no-op when the same event was already recorded)."""
    eid = event_id(alert_id, event, from_status, to_status, at.isoformat(), key)
    con.execute(
        """
        insert into alerts.audit_log
        select ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
        where not exists (select 1 from alerts.audit_log where event_id = ?)
        """,
        [
            eid,
            alert_id,
            event,
            from_status,
            to_status,
            actor,
            reason,
            at,
            json.dumps(details, default=str) if details else None,
            _utcnow(),
            eid,
        ],
    )


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _as_naive_utc(at: dt.datetime | None) -> dt.datetime:
    if at is None:
        return _utcnow()
    if at.tzinfo is not None:
        return at.astimezone(dt.UTC).replace(tzinfo=None)
    return at


def transition(
    con,
    alert_id: str,
    to_status: str,
    actor: str,
    reason: str | None = None,
    at: dt.datetime | None = None,
    feedback: str | None = None,
    details: dict | None = None,
) -> dict:
    """Move an alert to `to_status` (acknowledged | resolved | expired) and audit the change.

    `details` go into the audit event's details_json, e.g. {"channel": "email"} for an action
    taken from a signed link in an email, {"channel": "inbox"} from the alert inbox.

    `feedback` (resolving only; one of FEEDBACK) records whether the alert helped; the outcome
    marts use it for precision (a save counts as a true positive) and fatigue (not useful).

    Idempotent: asking for the status the alert already has is a no-op (nothing is audited twice).
    Raises TransitionError naming the alert for an unknown alert or a move the lifecycle forbids.
    Returns {"alert_id", "from_status", "to_status", "changed"}.
    """
    if to_status not in STATUSES or to_status == "open":
        raise TransitionError(
            f"cannot move alert {alert_id!r} to {to_status!r}: "
            "allowed targets are 'acknowledged', 'resolved', 'expired'"
        )
    if to_status == "resolved" and not (reason and reason.strip()):
        raise TransitionError(f"resolving alert {alert_id!r} needs a resolution reason")
    if feedback is not None and (feedback not in FEEDBACK or to_status != "resolved"):
        raise TransitionError(
            f"feedback {feedback!r} for alert {alert_id!r}: give one of {list(FEEDBACK)} "
            "when resolving"
        )
    ensure_schema(con)
    at = _as_naive_utc(at)
    rows = con.execute("select status from alerts.alerts where alert_id = ?", [alert_id]).fetchall()
    if not rows:
        raise TransitionError(f"no alert with id {alert_id!r} (see `python -m alerts list`)")
    current = rows[0][0]
    if current == to_status:
        return {
            "alert_id": alert_id,
            "from_status": current,
            "to_status": to_status,
            "changed": False,
        }
    if to_status not in ALLOWED_MOVES[current]:
        raise TransitionError(
            f"alert {alert_id!r} is {current!r}; it cannot move to {to_status!r} "
            f"(allowed from {current!r}: "
            f"{sorted(ALLOWED_MOVES[current]) or 'nothing, it is closed'})"
        )
    con.execute(
        """
        update alerts.alerts set
            status = ?,
            acknowledged_at = case when ? = 'acknowledged' then ? else acknowledged_at end,
            resolved_at = case when ? in ('resolved', 'expired') then ? else resolved_at end,
            resolution_reason = case when ? in ('resolved', 'expired') then ?
                                     else resolution_reason end,
            feedback = coalesce(?, feedback),
            updated_at = ?
        where alert_id = ?
        """,
        [to_status, to_status, at, to_status, at, to_status, reason, feedback, at, alert_id],
    )
    extra = {**(details or {}), **({"feedback": feedback} if feedback else {})}
    audit(con, alert_id, to_status, current, to_status, actor, reason, at, extra or None)
    return {"alert_id": alert_id, "from_status": current, "to_status": to_status, "changed": True}


def snooze(
    con,
    alert_id: str,
    until: dt.date,
    actor: str,
    reason: str | None = None,
    at: dt.datetime | None = None,
    details: dict | None = None,
) -> str:
    """Hide an open alert and suppress new ones for its rule and account until `until`
    (`details`: extra audit details, as for `transition`).
    """
    ensure_schema(con)
    at = _as_naive_utc(at)
    row = con.execute(
        "select status, rule_id, account_id from alerts.alerts where alert_id = ?", [alert_id]
    ).fetchall()
    if not row:
        raise TransitionError(f"no alert with id {alert_id!r} (see `python -m alerts list`)")
    status, rule_id, account_id = row[0]
    if status not in ("open", "acknowledged"):
        raise TransitionError(f"alert {alert_id!r} is {status!r}; only open alerts can be snoozed")
    if until < at.date():
        raise TransitionError(
            f"snooze date {until} is in the past; give a date on or after {at:%F}"
        )
    sid = event_id(alert_id, "snooze", until.isoformat(), at.isoformat())
    con.execute(
        "insert or ignore into alerts.snoozes values (?, ?, ?, ?, ?, ?, ?, ?)",
        [sid, alert_id, rule_id, account_id, until, actor, reason, at],
    )
    con.execute(
        "update alerts.alerts set snoozed_until = ?, updated_at = ? where alert_id = ?",
        [until, at, alert_id],
    )
    audit(
        con,
        alert_id,
        "snoozed",
        status,
        status,
        actor,
        reason,
        at,
        {**(details or {}), "snoozed_until": str(until)},
    )
    return sid


def audit_many(con, rows: list[tuple], at: dt.datetime) -> None:
    """Append many audit events at once: rows of (alert_id, event, from, to, actor, reason,
    details_json[, key]). Events already recorded (same deterministic id) are skipped; `key`
    tells apart two events of one alert at the same time (two escalation steps).
    """
    if not rows:
        return
    import pandas as pd  # local: only the batch paths need it

    frame = pd.DataFrame(
        [
            {
                "event_id": event_id(a, e, f, t, at.isoformat(), rest[0] if rest else None),
                "alert_id": a,
                "event": e,
                "from_status": f,
                "to_status": t,
                "actor": actor,
                "reason": reason,
                "event_at": at,
                "details_json": details,
            }
            for a, e, f, t, actor, reason, details, *rest in rows
        ]
    ).astype({"from_status": "object", "details_json": "object", "reason": "object"})
    con.register("_ea_audit_df", frame)
    try:
        con.execute(
            """
            insert into alerts.audit_log
            select n.event_id, n.alert_id, n.event, n.from_status, n.to_status, n.actor,
                   n.reason, n.event_at, n.details_json, now()::timestamp
            from _ea_audit_df n
            where not exists (select 1 from alerts.audit_log l where l.event_id = n.event_id)
            """
        )
    finally:
        con.unregister("_ea_audit_df")


def escalate_overdue(
    con, now: dt.datetime, actor: str = "system:sla", skip_severities: tuple[str, ...] = ()
) -> list[dict]:
    """Escalate every open (unacknowledged, unsnoozed) alert whose SLA is due at or before `now`.

    Each breach is escalated once: a row in alerts.escalations routed to the escalation address
    and an `escalated` audit event. Returns the new escalations. Severities in `skip_severities`
    follow the escalation policy instead (alerts.escalation).
    """
    ensure_schema(con)
    now = _as_naive_utc(now)
    rows = con.execute(
        """
        select alert_id, rule_id, account_id, severity, escalation_email, sla_due_at, status
        from alerts.alerts
        where status = 'open' and escalated_at is null and sla_due_at <= ?
          and (snoozed_until is null or snoozed_until < cast(? as date))
          and not list_contains(?, severity)
        order by sla_due_at, alert_id
        """,
        [now, now, list(skip_severities)],
    ).fetchall()
    if not rows:
        return []
    import pandas as pd

    out, esc, events = [], [], []
    for alert_id, rule_id, account_id, severity, to, due, status in rows:
        esc_id = "es_" + event_id(alert_id, due.isoformat())[3:]
        reason = f"SLA due {due:%Y-%m-%d %H:%M} UTC passed without acknowledgement"
        esc.append([esc_id, alert_id, rule_id, account_id, severity, to, due, now, reason])
        events.append(
            (alert_id, "escalated", status, status, actor, reason, json.dumps({"escalated_to": to}))
        )
        out.append({"escalation_id": esc_id, "alert_id": alert_id, "escalated_to": to})
    frame = pd.DataFrame(
        esc,
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
        ],
    )
    con.register("_ea_esc_df", frame)
    try:
        con.execute(
            """
            insert into alerts.escalations by name
            select * from _ea_esc_df n
            where not exists (select 1 from alerts.escalations e
                              where e.escalation_id = n.escalation_id)
            """
        )
        con.execute(
            """
            update alerts.alerts a set escalated_at = ?, updated_at = ?
            from _ea_esc_df n where a.alert_id = n.alert_id
            """,
            [now, now],
        )
    finally:
        con.unregister("_ea_esc_df")
    audit_many(con, events, now)
    return out
