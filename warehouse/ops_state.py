"""The work the pipeline owes, published for the sensors: they decide from this file alone.

A sensor that opened the warehouse, even read-only, would hold a lock that makes a run's next
write fail, and one that wrote would race the run queue. So every step that changes what is
owed (alerts, deliveries, escalations) ends by publishing `data/ops_state.duckdb`, one table of
work items with the time each becomes due; sensors read it and only request runs.

Kinds: `delivery` (an outbox row pending or failed; due at its next attempt), `critical` (an
open critical alert with no critical email queued; due at once), `escalation` (an SLA
escalation with no email queued; due at once), `sla_breach` (an open alert not yet escalated;
due when its SLA passes), `escalation_step` (an open alert on the escalation policy; due at its
next step or reminder), `crm_task` (a CRM task whose status may still change). A new kind is
one more query in `_parts`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from warehouse.publish import PublishResult, publish_snapshot

OPS_STATE_FILE = "ops_state.duckdb"
_COLUMNS = "kind, item_id, detail, due_at"


def ops_state_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / OPS_STATE_FILE


def _tables(con) -> set[str]:
    return {
        f"{s}.{t}"
        for s, t in con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = current_database()"
        ).fetchall()
    }


def _parts(tables: set[str]) -> list[str]:
    outbox, alerts = "ops.outbox" in tables, "alerts.alerts" in tables
    queued = "(select idempotency_key from ops.outbox)" if outbox else "(select null where false)"
    parts = []
    if outbox:
        parts.append(
            "select 'delivery', delivery_id || '#' || attempts, channel, "
            "coalesce(next_attempt_at, created_at) from ops.outbox "
            "where status in ('pending', 'failed')"
        )
    if outbox and alerts:
        parts.append(
            "select 'crm_task', o.delivery_id, o.alert_id, o.sent_at "
            "from ops.outbox o join alerts.alerts a using (alert_id) "
            "where o.channel = 'crm_task' and o.status = 'sent' and o.external_id is not null "
            "and coalesce(o.remote_status, '') <> 'completed' "
            "and a.status in ('open', 'acknowledged')"
        )
    if alerts:
        parts.append(
            "select 'critical', alert_id, account_id, null::timestamp "
            "from alerts.alerts where severity = 'critical' "
            "and status in ('open', 'acknowledged') and not coalesce(is_holdout, false) "
            f"and 'critical:' || alert_id not in {queued}"
        )
        # As alerts.escalate_overdue: open, not escalated, SLA passed, not snoozed that day;
        # alerts on the escalation policy wait for their next step instead.
        parts.append(
            "select 'sla_breach', alert_id, account_id, "
            "greatest(sla_due_at, cast(snoozed_until + 1 as timestamp)) "
            "from alerts.alerts where status = 'open' and escalated_at is null "
            "and sla_due_at is not null and next_escalation_at is null"
        )
        parts.append(
            "select 'escalation_step', alert_id, account_id, next_escalation_at "
            "from alerts.alerts where status = 'open' and next_escalation_at is not null"
        )
    if "alerts.escalations" in tables:
        parts.append(
            "select 'escalation', escalation_id, alert_id, null::timestamp "
            "from alerts.escalations "
            f"where escalated_to is not null and 'escalation:' || escalation_id not in {queued}"
        )
    return parts


def pending_work_query(con) -> str:
    """One query over the warehouse listing every work item (`kind, item_id, detail, due_at`)."""
    parts = _parts(_tables(con))
    if not parts:
        return (
            f"select * from (select null::varchar, null::varchar, null::varchar, "
            f"null::timestamp) t({_COLUMNS}) where false"
        )
    body = "\nunion all\n".join(parts)
    return f"select * from ({body}) t({_COLUMNS})"


def publish_ops_state(con, path: str | Path, source: str = "") -> PublishResult:
    """Publish the work items and when this was done (`source`: which step or command)."""
    published = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return publish_snapshot(
        con,
        path,
        {
            "work.pending": pending_work_query(con),
            "work.published": (
                f"select cast('{published.isoformat()}' as timestamp) as published_at, "
                f"'{source.replace(chr(39), '')}' as source"
            ),
        },
    )


def due_work(con, now: dt.datetime) -> dict[str, list[str]]:
    """Item ids due at `now`, by kind, read from a connection to the published file."""
    rows = con.execute(
        "select kind, item_id from work.pending "
        "where due_at is null or due_at <= $now order by kind, item_id",
        {"now": now},
    ).fetchall()
    due: dict[str, list[str]] = {}
    for kind, item in rows:
        due.setdefault(kind, []).append(item)
    return due


def run_key(
    kind: str, items: list[str], now: dt.datetime, every: dt.timedelta = dt.timedelta(hours=1)
) -> str:
    """One run per set of due items per period: a new item asks again at once, and a set a run
    could not clear (no recipient, a crash before publishing) is tried again the next period.
    """
    digest = hashlib.sha256("\n".join(sorted(items)).encode()).hexdigest()[:16]
    since_epoch = now.replace(tzinfo=None) - dt.datetime(1970, 1, 1)
    period = int(since_epoch.total_seconds() // every.total_seconds())
    return f"{kind}:{digest}:{period}"
