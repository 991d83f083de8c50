"""Critical alerts are never lost: the second channel, failover and the delivery check.

- `chat_deliveries`: each critical alert, escalation step and reminder also goes to the chat
  channels routing.yml lists under `second_channel.critical` (Slack, Teams), via the outbox.
- `retry_policy_for`: critical messages retry with backoff for up to 24 hours (others: 5 tries).
- `failover_deliveries`: a critical email that failed (once is enough) goes at once to the
  second channel and to the data team (email and `second_channel.data_team`); a failed chat post
  goes to the data team.
- `critical_coverage`: the invariant for one run: every critical alert raised or continued has
  a sent or in-flight message to a real recipient, or a recorded exemption.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alerts.recipients import People, alert_recipients
from notifications.chat import ChatMessage, render
from notifications.content import ContentConfig, active_alerts, card, crm_links, user_privacy
from notifications.outbox import (
    Delivery,
    OutboxRow,
    RetryPolicy,
    as_connector,
    deliver_due,
    enqueue,
)
from notifications.schema import ensure_schema

CRITICAL_RETRY = RetryPolicy(base_seconds=60.0, cap_seconds=3600.0, max_age_seconds=24 * 3600.0)
# Outbox statuses that count as "told" (sent) or "still trying" (in flight).
SENT = ("sent",)
IN_FLIGHT = ("pending", "failed")


def retry_policy_for(row: OutboxRow) -> RetryPolicy | None:
    """The outbox's per-row policy: critical messages retry for a day, others use the default."""
    return CRITICAL_RETRY if row.payload.get("retry") == "critical" else None


def _message(c: dict[str, Any], title: str, to: str | None, extra: list[str]) -> ChatMessage:
    lines = [*extra, *(r["text"] for r in c.get("reasons", []) if r.get("text"))]
    if c.get("recommendation"):
        lines.append(f"Recommended: {c['recommendation']}")
    facts = [
        ("Account", c["account_name"]),
        ("Severity", c["severity"]),
        ("ARR", c["arr"]),
        ("Responsible", to or "nobody configured"),
        ("Raised", c["first_raised_on"]),
    ]
    if c.get("sla_due"):
        facts.append(("SLA due", c["sla_due"]))
    facts.append(("Alert id", c["alert_id"]))
    link = next(
        ((a["label"], a["href"]) for a in c.get("one_click") or [] if a.get("kind") == "open"),
        None,
    )
    return ChatMessage(title=title, lines=lines, facts=facts, link=link, severity=c["severity"])


def _cards(con, alerts: list[dict], config: ContentConfig, now: dt.datetime) -> dict[str, dict]:
    champions, hidden = user_privacy(con)
    links = crm_links(con)
    return {
        a["alert_id"]: card(a, champions, hidden, links, "", "UTC", config=config, now=now)
        for a in alerts
    }


def chat_deliveries(
    con,
    channels: list[str],
    config: ContentConfig | None = None,
    now: dt.datetime | None = None,
) -> list[Delivery]:
    """Chat messages (one per channel) for critical alerts and for escalation steps/reminders
    of critical alerts not yet in the outbox. Empty when no channel is configured.
    """
    if not channels:
        return []
    config = config or ContentConfig()
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    people = config.people
    done = {
        r[0] for r in con.execute("select idempotency_key from ops.outbox").fetchall()
    }  # small: one row per message
    alerts = [a for a in active_alerts(con, now.date()) if a["severity"] == "critical"]
    by_id = {a["alert_id"]: a for a in alerts}
    wanted: list[tuple[str, dict, str, list[str]]] = []  # (key stem, alert, title, extra)
    for a in alerts:
        wanted.append((f"critical:{a['alert_id']}", a, "Critical alert", []))
    for esc_id, alert_id, to, reason, step in con.execute(
        """
        select escalation_id, alert_id, lower(escalated_to), reason, coalesce(step, 'sla')
        from alerts.escalations order by escalated_at, escalation_id
        """
    ).fetchall():
        a = by_id.get(alert_id)
        if a is None or a["status"] != "open":
            continue
        kind = "Reminder" if step.startswith("reminder") else "Escalation"
        wanted.append((f"escalation:{esc_id}", a, kind, [f"{kind} to {to}: {reason}."]))
    todo = [w for w in wanted if any(f"{w[0]}:{ch}" not in done for ch in channels)]
    if not todo:
        return []
    cards = _cards(con, [w[1] for w in todo], config, now)
    out = []
    for stem, a, kind, extra in todo:
        c = cards[a["alert_id"]]
        to, _ = alert_recipients(a, people)
        msg = _message(c, f"{kind}: {c['account_name']} - {c['alert_type']}", to, extra)
        for channel in channels:
            if f"{stem}:{channel}" in done:
                continue
            out.append(
                Delivery(
                    idempotency_key=f"{stem}:{channel}",
                    channel=channel,
                    recipient=f"{channel}:critical",
                    payload={
                        "body": render(channel, msg),
                        "kind": kind.lower() if kind != "Critical alert" else "critical",
                        "alert_ids": [a["alert_id"]],
                        "retry": "critical",
                    },
                    subject=msg.title,
                    alert_id=a["alert_id"],
                    account_id=a["account_id"],
                )
            )
    return out


def failover_deliveries(
    con,
    second_channel: Mapping[str, list[str]],
    config: ContentConfig | None = None,
) -> list[Delivery]:
    """For every critical message that failed or is dead (and is not itself a failover):
    the second channel and the data team, at once: once when it first fails, once more if it
    is dead (24 hours without success, or refused for good).
    """
    config = config or ContentConfig()
    people = config.people
    rows = con.execute(
        """
        select o.delivery_id, o.channel, o.recipient, o.alert_id, o.account_id, o.subject,
               o.status, o.last_error, o.attempts
        from ops.outbox o
        where o.status in ('failed', 'dead')
          and json_extract_string(o.payload_json, '$.retry') = 'critical'
          and coalesce(json_extract_string(o.payload_json, '$.kind'), '') != 'failover'
          and not exists (select 1 from ops.outbox f
                          where f.idempotency_key
                                like 'failover:' || o.delivery_id || ':' || o.status || ':%')
        order by o.created_at, o.delivery_id
        """
    ).fetchall()
    out = []
    for delivery_id, channel, recipient, alert_id, account_id, subject, status, error, n in rows:
        what = f"{'Undeliverable' if status == 'dead' else 'Delayed'} critical {channel}"
        lines = [
            f"The {channel} message '{subject}' to {recipient} failed "
            f"({n} attempt(s), {status}): {error or 'no error text'}.",
            "It is "
            + ("not retried any more." if status == "dead" else "retried for up to 24 hours.")
            + " Please make sure the responsible person knows.",
        ]
        facts = [("Alert id", alert_id or "n/a"), ("Account", account_id or "n/a")]
        msg = ChatMessage(title=f"{what}: {subject}"[:140], lines=lines, facts=facts)
        base = {"kind": "failover", "alert_ids": [alert_id] if alert_id else [],
                "failed_delivery": delivery_id, "retry": "critical"}  # fmt: skip
        # A failed email: the responsible person may not know, so the critical chats hear it
        # (and the data team). A failed chat post: the email went too; the data team fixes it.
        targets = (
            [(c, "critical") for c in second_channel.get("critical", [])]
            if channel == "email"
            else []
        )
        targets += [(c, "data_team") for c in second_channel.get("data_team", []) if c != channel]
        for ch, audience in dict.fromkeys(targets):
            out.append(
                Delivery(
                    idempotency_key=f"failover:{delivery_id}:{status}:{ch}:{audience}",
                    channel=ch,
                    recipient=f"{ch}:{audience}",
                    payload={**base, "body": render(ch, msg)},
                    subject=msg.title,
                    alert_id=alert_id,
                    account_id=account_id,
                )
            )
        data_team = people.data_team
        if data_team and not (channel == "email" and recipient.lower() == data_team):
            text = "\n\n".join(lines)
            out.append(
                Delivery(
                    idempotency_key=f"failover:{delivery_id}:{status}:email:data_team",
                    channel="email",
                    recipient=data_team,
                    payload={**base, "to": [data_team], "cc": [], "subject": msg.title,
                             "text": text, "html": _html(msg.title, lines), "attachments": []},
                    subject=msg.title,
                    alert_id=alert_id,
                    account_id=account_id,
                )
            )  # fmt: skip
    return out


def _html(title: str, lines: list[str]) -> str:
    import html

    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    return f"<html><body><h2>{html.escape(title)}</h2>{body}</body></html>"


@dataclass
class Coverage:
    """The invariant for one as-of day's critical alerts (see docs/alert-rules.md)."""

    as_of: dt.date
    checked: int = 0
    notified: int = 0
    in_flight: int = 0
    exempt: int = 0
    violations: list[dict[str, Any]] = field(default_factory=list)
    exemptions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return not self.violations

    def as_metadata(self) -> dict[str, Any]:
        return {
            "as_of_date": str(self.as_of),
            "critical_alerts": self.checked,
            "notified": self.notified,
            "in_flight": self.in_flight,
            "exempt": self.exempt,
            "violations": len(self.violations),
            "violation_examples": json.dumps(self.violations[:5], default=str),
            "exemption_examples": json.dumps(self.exemptions[:5], default=str),
        }


def critical_coverage(con, as_of: dt.date, people: People | None = None) -> Coverage:
    """Every critical alert raised or continued on `as_of` (open or acknowledged, last seen
    that day) has a sent or in-flight message about it to a real recipient (an email address,
    or a chat channel), or a recorded exemption (a person's snooze; a holdout the team opted
    critical alerts into). Dead messages do not count.
    """
    people = people or People()
    ensure_schema(con)
    rows = con.execute(
        """
        with crit as (
            select alert_id, account_id, owner_email, status, snoozed_until,
                   coalesce(is_holdout, false) as is_holdout
            from alerts.alerts
            where severity = 'critical' and status in ('open', 'acknowledged')
              and last_seen_on = $d
        ),
        msgs as (
            select alert_id,
                   count(*) filter (where status in ('sent')) as sent,
                   count(*) filter (where status in ('pending', 'failed')) as in_flight
            from ops.outbox
            where alert_id is not null
              and (contains(recipient, '@') or recipient like 'slack:%'
                   or recipient like 'teams:%')
              and coalesce(json_extract_string(payload_json, '$.kind'), '') in
                  ('critical', 'escalation', 'reminder', 'failover')
            group by alert_id
        ),
        snoozed as (
            select alert_id, any_value(actor) as actor, any_value(reason) as reason
            from alerts.snoozes where snoozed_until >= $d group by alert_id
        )
        select c.alert_id, c.account_id, c.owner_email, c.status, c.is_holdout,
               coalesce(m.sent, 0), coalesce(m.in_flight, 0), s.actor, s.reason
        from crit c left join msgs m using (alert_id) left join snoozed s using (alert_id)
        order by c.alert_id
        """,
        {"d": as_of},
    ).fetchall()
    cov = Coverage(as_of, checked=len(rows))
    for alert_id, account_id, owner, status, holdout, sent, flying, actor, reason in rows:
        if actor is not None or holdout:
            cov.exempt += 1
            cov.exemptions.append(
                {"alert_id": alert_id, "by": actor or "routing.yml holdout.include_critical",
                 "why": reason or "control group (explicit setting)"}
            )  # fmt: skip
        elif sent:
            cov.notified += 1
        elif flying:
            cov.in_flight += 1
        else:
            cov.violations.append(
                {"alert_id": alert_id, "account_id": account_id, "owner": owner,
                 "status": status, "why": "no sent or in-flight message to a real recipient"}
            )  # fmt: skip
    return cov


def send_now(
    connection,
    deliveries: list[Delivery],
    senders: Mapping[str, Any],
    now: dt.datetime,
    budget_seconds: float | None = None,
):
    """Queue these deliveries (new keys only) and send exactly them now, on every channel they
    use, with the critical retry policy. `connection` as for outbox.deliver_due (no connection
    is open while a message is on the wire). Returns (new deliveries per channel, the report).
    """
    connect = as_connector(connection)
    new: dict[str, int] = {}
    with connect() as con:
        for channel in sorted({d.channel for d in deliveries}):
            new[channel] = enqueue(con, [d for d in deliveries if d.channel == channel], now)
    report = deliver_due(
        connect,
        senders,
        now,
        channels=sorted({d.channel for d in deliveries} & set(senders)),
        keys=[d.idempotency_key for d in deliveries],
        budget_seconds=budget_seconds,
        policy_for=retry_policy_for,
    )
    return new, report


@dataclass
class CriticalRun:
    """What one critical pass did: messages built and sent, failovers, per channel."""

    built: int = 0
    new: dict[str, int] = field(default_factory=dict)
    failovers: int = 0
    reports: list[Any] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict[str, Any]:
        total: dict[str, Any] = {
            "built": self.built,
            "new_emails": self.new.get("email", 0),
            "new_chat_messages": sum(v for k, v in self.new.items() if k != "email"),
            "failovers": self.failovers,
        }
        for key in ("attempted", "sent", "recorded", "failed", "dead", "deferred"):
            total[key] = sum(getattr(r, key) for r in self.reports)
        total["error_examples"] = [e for r in self.reports for e in r.errors][:5]
        total["examples"] = self.examples[:3]
        return total


def run_critical(
    connection,
    templates_dir,
    config: ContentConfig,
    second_channel: Mapping[str, list[str]],
    senders: Mapping[str, Any],
    now: dt.datetime,
    budget_seconds: float | None = None,
) -> CriticalRun:
    """Critical alerts and escalations by email and on the second channel, sent now; then the
    failover of anything that failed (second channel and data team, at once).
    """
    from notifications.digest import build_critical_alerts, build_escalations

    connect = as_connector(connection)
    with connect() as con:
        built = build_critical_alerts(con, templates_dir, config, now)
        built += build_escalations(con, templates_dir, config, now)
        built += chat_deliveries(con, list(second_channel.get("critical", [])), config, now)
    run = CriticalRun(built=len(built), examples=[d.subject for d in built])
    run.new, report = send_now(connect, built, senders, now, budget_seconds)
    run.reports.append(report)
    _failover(connect, second_channel, config, senders, now, budget_seconds, run)
    return run


def retry_critical(
    connection,
    config: ContentConfig,
    second_channel: Mapping[str, list[str]],
    senders: Mapping[str, Any],
    now: dt.datetime,
    budget_seconds: float | None = None,
) -> CriticalRun:
    """Every due delivery of every channel (critical ones on the 24-hour policy), then the
    failover of what failed.
    """
    connect = as_connector(connection)
    run = CriticalRun()
    run.reports.append(
        deliver_due(
            connect, senders, now, budget_seconds=budget_seconds, policy_for=retry_policy_for
        )
    )
    _failover(connect, second_channel, config, senders, now, budget_seconds, run)
    return run


def _failover(connect, second_channel, config, senders, now, budget_seconds, run) -> None:
    with connect() as con:
        failover = failover_deliveries(con, second_channel, config)
    if failover:
        new, report = send_now(connect, failover, senders, now, budget_seconds)
        run.failovers += sum(new.values())
        run.reports.append(report)


def check_failure_deliveries(
    cov: Coverage, second_channel: Mapping[str, list[str]], people: People
) -> list[Delivery]:
    """The data team hears at once when the delivery check fails: on the second channel (the
    data team's chat, else the critical one) and by email.
    """
    title = f"Critical alerts not delivered for {cov.as_of}: {len(cov.violations)} alert(s)"
    lines = [
        "The blocking delivery check failed: these critical alerts have no sent or in-flight "
        "message to a real recipient and no recorded exemption.",
        *(f"{v['alert_id']} ({v['account_id']}), owner {v['owner'] or 'none'}"
          for v in cov.violations[:20]),
    ]  # fmt: skip
    msg = ChatMessage(title=title, lines=lines, facts=[("As of", str(cov.as_of))])
    channels = list(second_channel.get("data_team") or second_channel.get("critical") or [])
    audience = "data_team" if second_channel.get("data_team") else "critical"
    base = {"kind": "check_failure", "retry": "critical", "alert_ids": []}
    out = [
        Delivery(
            idempotency_key=f"check:{cov.as_of}:{ch}",
            channel=ch,
            recipient=f"{ch}:{audience}",
            payload={**base, "body": render(ch, msg)},
            subject=title,
        )
        for ch in channels
    ]
    if people.data_team:
        out.append(
            Delivery(
                idempotency_key=f"check:{cov.as_of}:email",
                channel="email",
                recipient=people.data_team,
                payload={**base, "to": [people.data_team], "cc": [], "subject": title,
                         "text": "\n".join(lines), "html": _html(title, lines),
                         "attachments": []},
                subject=title,
            )
        )  # fmt: skip
    return out
