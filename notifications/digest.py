"""Build digest and critical-alert emails (rendered with jinja2) as outbox deliveries."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import jinja2

from alerts.recipients import alert_audience, alert_recipients
from notifications import ics
from notifications.content import (
    PALETTE,
    ContentConfig,
    account_metrics,
    active_alerts,
    card,
    crm_links,
    group_by_account,
    is_expansion,
    money,
    recipient_scopes,
    user_privacy,
)
from notifications.outbox import Delivery, dead_letters, outbox_counts
from notifications.schema import ensure_schema
from warehouse.catalog import table_exists

# Caps that keep the largest (admin) digest under the size at which Gmail clips a message, with
# four signed action links per alert in the cards (accounts in cards, rows of the table).
MAX_CARDS = 10
MAX_TABLE_ROWS = 50


@functools.lru_cache(maxsize=8)
def environment(templates_dir: Path) -> jinja2.Environment:
    """The jinja2 environment for config/templates/email (HTML autoescaped, text not)."""
    if not (Path(templates_dir) / "digest.html.j2").exists():
        raise FileNotFoundError(
            f"Email templates not found in {templates_dir}: expected digest.html.j2 there "
            "(they live in config/templates/email)."
        )
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def compact_html(html: str) -> str:
    """Drop template indentation (a newline is still whitespace in HTML, so nothing changes)."""
    return re.sub(r"\n[ \t]+", "\n", html)


def next_meeting_slot(now: dt.datetime, hour_utc: int) -> dt.datetime:
    """The next weekday at `hour_utc` after today (a default slot the CSM can move)."""
    day = now.date() + dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(hour_utc))


def invite_attachment(
    c: dict[str, Any], organizer: str, now: dt.datetime, config: ContentConfig
) -> dict[str, str]:
    """An .ics REQUEST for the card's recommended meeting, attendees = CSM + champion."""
    attendees = [organizer] + ([c["champion"]] if c.get("champion") else [])
    description = (
        f"Account: {c['account_name']} ({c['account_id']})\n"
        f"Alert: {c['alert_type']} - {c['severity']} (id {c['alert_id']})\n"
        f"Why: {c['explanation']}\nRecommended: {c['recommendation']}"
        + (f"\nOpen in the inbox: {c['one_click'][-1]['href']}" if c.get("one_click") else "")
    )
    text = ics.meeting_request(
        uid=f"{c['alert_id']}@engagement-alerts",
        organizer_email=organizer,
        attendees=attendees,
        summary=f"{c['recommended_action'].capitalize() or 'Meeting'}: {c['account_name']}",
        description=description,
        start=next_meeting_slot(now, config.meeting_hour_utc),
        duration_minutes=config.meeting_minutes,
        stamp=now,
    )
    return {
        "filename": f"invite-{c['account_id']}.ics",
        "content_type": "text/calendar; method=REQUEST; charset=utf-8",
        "content": text,
    }


def _metrics(alerts: list[dict[str, Any]], digest_date: dt.date, now: dt.datetime) -> dict:
    risk_arr: dict[str, float] = {}
    expansion_arr: dict[str, float] = {}
    for a in alerts:
        target = expansion_arr if is_expansion(a.get("alert_type")) else risk_arr
        target[a["account_id"]] = float(a.get("arr") or 0)
    return {
        "open_alerts": len(alerts),
        "critical_high": sum(a["severity"] in ("critical", "high") for a in alerts),
        "arr_at_risk": round(sum(risk_arr.values()), 2),
        "expansion_arr": round(sum(expansion_arr.values()), 2),
        "new_today": sum(str(a.get("first_raised_on")) == str(digest_date) for a in alerts),
        "overdue": sum(a.get("sla_due_at") is not None and a["sla_due_at"] < now for a in alerts),
    }


def _is_news(alert: dict[str, Any], day: dt.date) -> bool:
    """Raised or escalated on the digest day: worth a full card, not just a table row."""
    escalated = alert.get("escalated_at")
    return str(alert.get("first_raised_on")) == str(day) or (
        escalated is not None and escalated.date() == day
    )


def _headline(metrics: dict, previous: dict | None) -> list[dict[str, str]]:
    spec = [
        ("open_alerts", "Open alerts", False, True),
        ("critical_high", "Critical & high", False, True),
        ("arr_at_risk", "ARR at risk", True, True),
        ("expansion_arr", "Expansion ARR", True, False),
        ("overdue", "Past SLA", False, True),
    ]
    out = []
    for key, label, is_money, up_is_bad in spec:
        value = metrics[key]
        shown = money(value) if is_money else str(value)
        change, arrow, tone = "first digest", "", "muted"
        if previous is not None and key in previous:
            delta = value - previous[key]
            arrow = "▲" if delta > 0 else "▼" if delta < 0 else ""
            change = (money(abs(delta)) if is_money else str(abs(delta))) if delta else "no change"
            bad = (delta > 0) == up_is_bad
            tone = "muted" if delta == 0 else ("critical" if bad else "positive")
        out.append({"label": label, "value": shown, "change": change, "arrow": arrow, "tone": tone})
    return out


def _previous_metrics(con, digest_date: dt.date) -> dict[str, dict]:
    rows = con.execute(
        """
        select recipient, payload_json from ops.outbox
        where channel = 'email' and idempotency_key like 'digest:%' and digest_date < $d
        qualify row_number() over (partition by recipient order by digest_date desc) = 1
        """,
        {"d": digest_date},
    ).fetchall()
    return {r: json.loads(p).get("metrics", {}) for r, p in rows}


def build_digests(
    con,
    digest_date: dt.date,
    templates_dir: Path,
    config: ContentConfig | None = None,
    now: dt.datetime | None = None,
    recipients: list[str] | None = None,
) -> list[Delivery]:
    """One digest per person who owns, manages or administers accounts, scoped to those accounts.

    The idempotency key is recipient + date, so a second run on the same day enqueues nothing.
    """
    config = config or ContentConfig()
    now = now or dt.datetime.combine(digest_date, dt.time(7))
    ensure_schema(con)
    env = environment(templates_dir)
    scopes = recipient_scopes(con, config)
    active = {a["alert_id"]: a for a in active_alerts(con, digest_date)}
    metrics = account_metrics(con, [a["account_id"] for a in active.values()], digest_date)
    champions, hidden = user_privacy(con)
    links = crm_links(con)
    previous = _previous_metrics(con, digest_date)
    book: dict[str, tuple[str, list[str]]] = {}
    for recipient, role, account_id in scopes:
        book.setdefault(recipient, (role, []))[1].append(account_id)
    # Which alerts each person sees: their book, plus alerts routed or escalated to them.
    visible: dict[str, list[dict]] = defaultdict(list)
    for recipient, role, alert_id in alert_audience(con, config.people):
        if alert_id in active:
            visible[recipient].append(active[alert_id])
            book.setdefault(recipient, (role, []))
    health = None
    deliveries = []
    for recipient, (role, accounts) in sorted(book.items()):
        if recipients is not None and recipient not in recipients:
            continue
        tz = config.timezone(recipient)
        alerts = list(visible.get(recipient, []))
        alerts.sort(
            key=lambda a: (
                ["critical", "high", "medium", "low"].index(a["severity"])
                if a["severity"] in ("critical", "high", "medium", "low")
                else 9,
                -(a["priority"] or 0),
                a["alert_id"],
            )
        )
        # Over-budget alerts are only counted (the alerts engine never rolls up critical ones).
        summarised = [a for a in alerts if a.get("in_digest_summary")]
        listed = [a for a in alerts if not a.get("in_digest_summary")]
        top = [
            a for a in listed if a["severity"] in ("critical", "high") and _is_news(a, digest_date)
        ][:MAX_CARDS]
        # One card per account: an account with news shows all its listed alerts there, worst
        # first; every other account is one row of the table.
        carded = {a["account_id"] for a in top}
        in_cards = [a for a in listed if a["account_id"] in carded]
        rest = [a for a in listed if a["account_id"] not in carded]

        def make(a: dict, tz: str = tz, recipient: str = recipient) -> dict:
            return card(
                a,
                champions,
                hidden,
                links,
                a.get("csm_name") or "",
                tz,
                config=config,
                recipient=recipient,
                metrics=metrics.get(a["account_id"]),
            )

        cards = [make(a) for a in in_cards]
        groups = group_by_account(cards)
        rest_accounts = list(dict.fromkeys(a["account_id"] for a in rest))
        shown = set(rest_accounts[:MAX_TABLE_ROWS])
        table = group_by_account([make(a) for a in rest if a["account_id"] in shown])
        totals = _metrics(alerts, digest_date, now)
        if role == "admin" and health is None:
            health = {"counts": outbox_counts(con), "dead": dead_letters(con, 5)}
        context = {
            "recipient": recipient,
            "role": role,
            "scope": {
                "csm": "your accounts",
                "manager": "your team's accounts",
                "admin": "all accounts",
            }[role],
            "accounts": len(accounts),
            "digest_date": digest_date.isoformat(),
            "headline": _headline(totals, previous.get(recipient)),
            "groups": groups,
            "table": table,
            "more": max(0, len(rest_accounts) - MAX_TABLE_ROWS),
            "summarised": len(summarised),
            "palette": PALETTE,
            "product": config.product_name,
            "dashboard_url": config.inbox_url,
            "health": health if role == "admin" else None,
        }
        subject = (
            f"{config.product_name} digest {digest_date:%d %b}: "
            f"{totals['critical_high']} need attention, {totals['open_alerts']} open"
        )
        # Invites only for the news that made the card (not every alert grouped under it).
        news = {a["alert_id"] for a in top}
        for c in cards:
            c["invite"] = c["invite"] and c["alert_id"] in news
        attachments = [
            invite_attachment(c, recipient, now, config)
            for c in cards
            if c["invite"] and role == "csm"
        ]
        payload = {
            "to": [recipient],
            "cc": [],
            "subject": subject,
            "html": compact_html(
                env.get_template("digest.html.j2").render(subject=subject, **context)
            ),
            "text": env.get_template("digest.txt.j2").render(subject=subject, **context),
            "attachments": attachments,
            "metrics": totals,
            "alert_ids": [a["alert_id"] for a in alerts],
            "kind": "digest",
        }
        deliveries.append(
            Delivery(
                idempotency_key=f"digest:{recipient}:{digest_date.isoformat()}",
                channel="email",
                recipient=recipient,
                payload=payload,
                subject=subject,
                digest_date=digest_date,
            )
        )
    return deliveries


def build_critical_alerts(
    con,
    templates_dir: Path,
    config: ContentConfig | None = None,
    now: dt.datetime | None = None,
) -> list[Delivery]:
    """One immediate email per open or acknowledged critical alert not yet in the outbox, to the
    responsible person (alerts.recipients: route owner -> CSM -> manager -> unassigned_owner ->
    data team), copying the escalation contact. Held-out alerts only with include_critical.
    """
    config = config or ContentConfig()
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    ensure_schema(con)
    already = {
        r[0]
        for r in con.execute(
            "select alert_id from ops.outbox where idempotency_key = 'critical:' || alert_id"
        ).fetchall()
    }
    alerts = [
        a
        for a in active_alerts(con, now.date())
        if a["severity"] == "critical" and a["alert_id"] not in already
    ]
    if not alerts:
        return []
    env = environment(templates_dir)
    champions, hidden = user_privacy(con)
    links = crm_links(con)
    metrics = account_metrics(con, [a["account_id"] for a in alerts], now.date())
    deliveries = []
    for a in alerts:
        to, cc = alert_recipients(a, config.people)
        if not to:
            continue  # routing.yml names nobody at all; the delivery check reports the alert
        c = card(
            a,
            champions,
            hidden,
            links,
            a.get("csm_name") or "",
            config.timezone(to),
            config=config,
            recipient=to,
            metrics=metrics.get(a["account_id"]),
        )
        subject = f"Critical: {c['account_name']} - {c['alert_type']}"
        context = {
            "title": f"Critical alert: {c['account_name']}",
            "subtitle": f"Raised {c['first_raised_on']}, sent right away, not held for the digest",
            "card": c,
            "group": group_by_account([c])[0],
            "palette": PALETTE,
            "product": config.product_name,
            "recipient": to,
            "subject": subject,
            "dashboard_url": config.inbox_url,
        }
        payload = {
            "to": [to],
            "cc": cc,
            "subject": subject,
            "html": compact_html(env.get_template("critical.html.j2").render(**context)),
            "text": env.get_template("critical.txt.j2").render(**context),
            "attachments": [invite_attachment(c, to, now, config)] if c["invite"] else [],
            "alert_ids": [a["alert_id"]],
            "kind": "critical",
            "retry": "critical",
        }
        deliveries.append(
            Delivery(
                idempotency_key=f"critical:{a['alert_id']}",
                channel="email",
                recipient=to,
                payload=payload,
                subject=subject,
                alert_id=a["alert_id"],
                account_id=a["account_id"],
            )
        )
    return deliveries


def build_escalations(
    con,
    templates_dir: Path,
    config: ContentConfig | None = None,
    now: dt.datetime | None = None,
) -> list[Delivery]:
    """One email per new row in alerts.escalations (an SLA breach, an escalation policy step or
    a reminder) to the address it names, who may see the alert (alerts.recipients).
    """
    config = config or ContentConfig()
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    ensure_schema(con)
    if not table_exists(con, "alerts", "escalations"):
        return []
    pending = con.execute(
        """
        select escalation_id, alert_id, lower(escalated_to), reason, coalesce(step, 'sla')
        from alerts.escalations
        where escalated_to is not null
          and 'escalation:' || escalation_id not in
              (select idempotency_key from ops.outbox where channel = 'email')
        order by escalated_at, escalation_id
        """
    ).fetchall()
    if not pending:
        return []
    alerts = {a["alert_id"]: a for a in active_alerts(con, now.date())}
    env = environment(templates_dir)
    champions, hidden = user_privacy(con)
    links = crm_links(con)
    metrics = account_metrics(con, [a["account_id"] for a in alerts.values()], now.date())
    deliveries = []
    for escalation_id, alert_id, to, reason, step in pending:
        a = alerts.get(alert_id)
        if a is None or (a["status"] != "open" and step != "sla"):
            continue  # closed, snoozed or acknowledged meanwhile: nothing left to escalate
        c = card(
            a,
            champions,
            hidden,
            links,
            a.get("csm_name") or "",
            config.timezone(to),
            config=config,
            recipient=to,
            metrics=metrics.get(a["account_id"]),
        )
        subject = (
            f"Reminder: {c['account_name']} - {c['alert_type']} still not acknowledged"
            if step.startswith("reminder")
            else f"Escalation: {c['account_name']} - {c['alert_type']} not acknowledged"
            if step.startswith("step")
            else f"Escalation: {c['account_name']} - {c['alert_type']} past its SLA"
        )
        context = {
            "title": f"Escalation: {c['account_name']}",
            "subtitle": reason or "Past its SLA without acknowledgement",
            "card": c,
            "group": group_by_account([c])[0],
            "palette": PALETTE,
            "product": config.product_name,
            "recipient": to,
            "subject": subject,
            "dashboard_url": config.inbox_url,
        }
        owner = (a.get("owner_email") or "").lower()
        payload = {
            "to": [to],
            "cc": [owner] if owner and owner != to else [],
            "subject": subject,
            "html": compact_html(env.get_template("critical.html.j2").render(**context)),
            "text": env.get_template("critical.txt.j2").render(**context),
            "attachments": [],
            "alert_ids": [alert_id],
            "kind": "reminder" if step.startswith("reminder") else "escalation",
            **({"retry": "critical"} if a["severity"] == "critical" else {}),
        }
        deliveries.append(
            Delivery(
                idempotency_key=f"escalation:{escalation_id}",
                channel="email",
                recipient=to,
                payload=payload,
                subject=subject,
                alert_id=alert_id,
                account_id=a["account_id"],
            )
        )
    return deliveries
