"""CRM tasks for alerts whose routing asks for one, and the status sync back to the alerts."""

from __future__ import annotations

import datetime as dt
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from notifications.content import account_metrics, active_alerts, money, scrub, user_privacy
from notifications.outbox import Delivery, DeliveryError, OutboxRow, as_connector
from notifications.reasons import Glossary, glossary_at, reason_texts
from notifications.schema import ensure_schema


@dataclass(frozen=True)
class TaskPolicy:
    """Which alerts get a CRM task: by severity, optionally only some rules."""

    severities: tuple[str, ...] = ("critical", "high")
    rule_ids: tuple[str, ...] | None = None
    default_due_hours: int = 48

    @classmethod
    def from_routing(cls, routing: dict[str, Any] | None) -> TaskPolicy:
        """Read the `crm_task` block of config/routing.yml when it has one."""
        block = (routing or {}).get("crm_task") or (routing or {}).get("crm_tasks") or {}
        if not isinstance(block, dict):
            return cls()
        severities = tuple(block.get("severities") or cls.severities)
        rules = block.get("rule_ids") or block.get("rules")
        return cls(
            severities=severities,
            rule_ids=tuple(rules) if rules else None,
            default_due_hours=int(block.get("default_due_hours", 48)),
        )

    def wants(self, alert: dict[str, Any]) -> bool:
        if self.rule_ids is not None and alert.get("rule_id") not in self.rule_ids:
            return False
        return alert.get("severity") in self.severities


def _iso_z(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def build_crm_tasks(
    con,
    policy: TaskPolicy | None = None,
    now: dt.datetime | None = None,
    glossary: Glossary | None = None,
    inbox_url: str = "",
) -> list[Delivery]:
    """One task per qualifying open alert (key `crm:<alert_id>`), assigned to the alert's owner,
    associated with the account, the reasons in plain sentences and the recommendation in the
    body (a link to the alert in the inbox when `inbox_url` is given), SLA as due date.
    """
    policy = policy or TaskPolicy()
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    ensure_schema(con)
    done = {
        r[0]
        for r in con.execute(
            "select alert_id from ops.outbox where channel = 'crm_task'"
        ).fetchall()
    }
    alerts = [
        a
        for a in active_alerts(con, now.date())
        if a["status"] == "open" and a["alert_id"] not in done and policy.wants(a)
    ]
    if not alerts:
        return []
    _, hidden = user_privacy(con)
    words = glossary or glossary_at()
    metrics = account_metrics(con, [a["account_id"] for a in alerts], now.date())
    out = []
    for a in alerts:
        owner = a.get("owner_email") or a.get("csm_email") or ""
        due = a.get("sla_due_at") or now + dt.timedelta(hours=policy.default_due_hours)
        account = a.get("account_name") or a["account_id"]
        why = [scrub(t, hidden) for t in reason_texts(a, words, metrics.get(a["account_id"]))]
        body = "\n".join(
            x
            for x in [
                f"{words.term('alert_types', a.get('alert_type')) or 'Alert'} "
                f"({a.get('severity')}) on {account}, ARR {money(a.get('arr'))}.",
                "Why:" if why else "",
                *(f"- {t}" for t in why),
                f"Recommended: {scrub(a.get('recommendation_text'), hidden)}",
                f"Open in the alert inbox: {inbox_url.rstrip('/')}/alerts/{a['alert_id']}"
                if inbox_url
                else "",
                f"Alert id: {a['alert_id']}",
            ]
            if x
        )
        action = words.term("actions", a.get("recommended_action")) or "Follow up"
        task = {
            "alert_id": a["alert_id"],
            "account_id": a["account_id"],
            "account_name": account,
            "owner_email": owner,
            "severity": a.get("severity"),
            "subject": f"{action}: {account} ({a.get('severity')} "
            f"{words.term('alert_types', a.get('alert_type')).lower()})",
            "body": body,
            "due_at": _iso_z(due),
        }
        out.append(
            Delivery(
                idempotency_key=f"crm:{a['alert_id']}",
                channel="crm_task",
                recipient=owner,
                payload=task,
                subject=task["subject"],
                alert_id=a["alert_id"],
                account_id=a["account_id"],
            )
        )
    return out


@dataclass
class SyncReport:
    """Counts of one status-sync pass."""

    checked: int = 0
    resolved: int = 0
    errors: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict[str, object]:
        return {
            "checked": self.checked,
            "resolved": self.resolved,
            "errors": len(self.errors),
            "error_examples": self.errors[:5],
        }


Transition = Callable[..., Any]


def sync_task_status(
    connection, crm, transition: Transition, now: dt.datetime | None = None
) -> SyncReport:
    """Ask the CRM about every open task; a completed task resolves its alert ("task completed")
    through the alerts library's `transition`, carrying the task notes into the audit log.

    `connection` is a connector or an open connection, as for `outbox.deliver_due`: the open
    tasks are read, the connection is closed while the CRM is asked, and a new one applies the
    answers, so no lock is held across the network.
    """
    connect = as_connector(connection)
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with connect() as con:
        ensure_schema(con)
        rows = con.execute(
            """
            select o.delivery_id, o.idempotency_key, o.channel, o.alert_id, o.account_id,
                   o.recipient, o.subject, o.payload_json, o.attempts, o.external_id
            from ops.outbox o join alerts.alerts a using (alert_id)
            where o.channel = 'crm_task' and o.status = 'sent' and o.external_id is not null
              and coalesce(o.remote_status, '') <> 'completed'
              and a.status in ('open', 'acknowledged')
            order by o.created_at
            """
        ).fetchall()
    report = SyncReport()
    completed = []
    for r in rows:
        row = OutboxRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6] or "", json.loads(r[7]), r[8])
        report.checked += 1
        try:
            status = crm.fetch_status(row, r[9])
        except DeliveryError as exc:
            report.errors.append(f"{row.alert_id}: {exc}")
            continue
        if status is not None and status.completed:
            completed.append((row, status))
    if not completed:
        return report
    params = inspect.signature(transition).parameters
    note_kw = next((k for k in ("note", "notes", "comment") if k in params), None)
    with connect() as con:
        for row, status in completed:
            reason = "task completed"
            kwargs: dict[str, Any] = {}
            if note_kw:
                kwargs[note_kw] = status.notes
            elif status.notes:
                reason = f"task completed: {status.notes}"
            try:
                transition(
                    con,
                    row.alert_id,
                    "resolved",
                    actor=f"crm:{crm.mode}",
                    reason=reason,
                    at=now,
                    **kwargs,
                )
            except ValueError as exc:  # the lifecycle refused (e.g. closed meanwhile)
                report.errors.append(f"{row.alert_id}: {exc}")
                continue
            con.execute(
                "update ops.outbox set remote_status = 'completed', updated_at = $now "
                "where delivery_id = $id",
                {"now": now, "id": row.delivery_id},
            )
            report.resolved += 1
    return report
