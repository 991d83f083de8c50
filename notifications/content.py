"""What goes into each message: who sees which accounts, alert cards, metrics, action links."""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.recipients import People, account_scopes
from notifications.links import ACTION_LABELS, ActionLinks
from notifications.reasons import Glossary, glossary_at, reason_sentences
from warehouse.catalog import table_exists

SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}
ACTIVE_STATUSES = ("open", "acknowledged")
# Hex values of the PRD palette (converted from its oklch definitions; mail clients lack oklch).
PALETTE = {
    "brand": "#005b9f",
    "positive": "#499537",
    "warning": "#e46212",
    "critical": "#e62b34",
    "expansion": "#fb6e00",
    "ink": "#1f2933",
    "muted": "#616e7c",
    "line": "#e4e7eb",
    "canvas": "#f5f7fa",
}
SEVERITY_COLOURS = {
    "critical": PALETTE["critical"],
    "high": PALETTE["warning"],
    "medium": "#c99a06",
    "low": PALETTE["muted"],
}
MEETING_ACTIONS = {"meeting", "executive_escalation", "training_session", "expansion_conversation"}

ALERT_COLUMNS = (
    "alert_id, rule_id, alert_type, account_id, account_name, episode_start_date, "
    "first_raised_on, last_seen_on, status, severity, priority, probability, arr, owner_email, "
    "escalation_email, sla_due_at, explanation, explanation_json, drivers_json, "
    "recommended_action, recommendation_text"
)


@dataclass(frozen=True)
class ContentConfig:
    """Inputs a caller passes in: routing (parsed config/routing.yml), links, meeting defaults."""

    routing: dict[str, Any] = field(default_factory=dict)
    product_name: str = "Engagement Alerts"
    dashboard_url: str = ""
    meeting_hour_utc: int = 15
    meeting_minutes: int = 30
    # Signed one-click actions and "Open in inbox" (EA_PUBLIC_URL + secret); None = no links.
    links: ActionLinks | None = None
    # Words people read (config/glossary.yml); None = the repository's glossary.
    glossary: Glossary | None = None

    @property
    def words(self) -> Glossary:
        return self.glossary or glossary_at()

    @property
    def inbox_url(self) -> str:
        """Where "Open the inbox" points: the inbox when links are on, else dashboard_url."""
        if self.links is not None and self.links.enabled:
            return self.links.inbox_url()
        return self.dashboard_url

    def _address(self, key: str) -> str | None:
        value = (self.routing or {}).get(key)
        return str(value).lower() if value else None

    @property
    def fallbacks(self) -> dict[str, str | None]:
        """routing.yml stand-ins: owner of CSM-less accounts, escalation of manager-less ones,
        and the data team that owns warehouse-wide alerts.
        """
        return {
            "unassigned": self._address("unassigned_owner"),
            "default_escalation": self._address("default_escalation"),
            "data_team": self._address("data_team"),
        }

    def timezone(self, recipient: str) -> str:
        """`timezones: {email: IANA zone}` in routing.yml; UTC when not given."""
        zones = {
            str(k).lower(): str(v) for k, v in ((self.routing or {}).get("timezones") or {}).items()
        }
        return zones.get(recipient.lower(), "UTC")

    @property
    def people(self) -> People:
        """The routing.yml addresses the one scope model (alerts.recipients) needs."""
        fallbacks = self.fallbacks
        return People(
            data_team=fallbacks["data_team"],
            unassigned_owner=fallbacks["unassigned"],
            default_escalation=fallbacks["default_escalation"],
            admins=tuple(self.admins),
            managers=tuple(
                str(m).lower() for m in ((self.routing or {}).get("managers") or []) if m
            ),
        )

    @property
    def admins(self) -> list[str]:
        r = self.routing or {}
        admins = r.get("admins") or (r.get("roles") or {}).get("admin") or []
        if isinstance(admins, dict):  # {"emails": [...]} style
            admins = admins.get("emails", [])
        return [str(a).lower() for a in admins]


class MissingUpstreamError(RuntimeError):
    """A table this stage reads has not been built yet; the message says which asset to run."""


def is_expansion(alert_type: str | None) -> bool:
    return "expansion" in (alert_type or "")


def require_table(con, table: str, producer: str) -> None:
    """Raise MissingUpstreamError naming what to run when `schema.table` does not exist yet."""
    if not table_exists(con, *table.split(".")):
        raise MissingUpstreamError(
            f"Table {table} does not exist yet: materialize {producer} first."
        )


def recipient_scopes(con, config: ContentConfig) -> list[tuple[str, str, str]]:
    """(recipient, role, account_id) for every person allowed to see an account.

    A CSM sees their own book, a manager their team's book, an admin everything; nobody else.
    The one scope model lives in alerts.recipients; this is its account-level view.
    """
    require_table(con, "marts.dim_accounts", "the dbt marts (marts.dim_accounts)")
    return account_scopes(con, config.people)


def user_privacy(con) -> tuple[dict[str, str], set[str]]:
    """(champion email per account, identifiers of opted-out users) from the latest user snapshot.

    Opted-out users are never named: they are neither a champion nor left in any text.
    """
    if not table_exists(con, "raw", "users"):
        return {}, set()
    rows = con.execute(
        """
        with latest as (
            select * from raw.users
            qualify row_number() over (partition by user_id order by snapshot_date desc) = 1
        )
        select account_id, user_id, email, role, deactivated_at is null as active,
               coalesce(opted_out, false) as opted_out, created_at
        from latest
        order by account_id, created_at nulls last, user_id
        """
    ).fetchall()
    champions: dict[str, str] = {}
    hidden: set[str] = set()
    for account_id, user_id, email, role, active, opted_out, _ in rows:
        if opted_out:
            hidden.update(x for x in (user_id, email) if x)
        elif role == "admin" and active and email and account_id not in champions:
            champions[account_id] = email
    return champions, hidden


_TOKEN = re.compile(r"[\w+-][\w.+-]*(?:@[\w-]+(?:\.[\w-]+)+)?")


def scrub(text: str | None, hidden: set[str]) -> str:
    """Replace any opted-out user's id or email in free text.

    Tokens are looked up in the set (O(words), not O(opted-out users) per text).
    """
    if not text:
        return ""
    if not hidden:
        return text

    def swap(m: re.Match) -> str:
        token = m.group(0)
        core = token.rstrip(".")
        return "a user who opted out" + token[len(core) :] if core in hidden else token

    return _TOKEN.sub(swap, text)


def reasons(
    alert: dict[str, Any],
    hidden: set[str],
    glossary: Glossary | None = None,
    metrics: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The alert's reasons as sentences (notifications.reasons), scrubbed of opted-out users:
    dicts with text, arrow (▲/▼), tone (critical / positive / muted), known, source.
    """
    out = []
    for r in reason_sentences(alert, glossary, metrics):
        d = r.as_dict()
        d["text"] = scrub(d["text"], hidden)
        out.append(d)
    return out


def mailto(to: list[str] | str | None, subject: str, body: str, cc: str | None = None) -> str:
    """A mailto: URI with a drafted subject and body (RFC 6068 percent-encoding)."""
    addresses = ",".join([to] if isinstance(to, str) else (to or []))
    query = {"subject": subject, "body": body}
    if cc:
        query["cc"] = cc
    encoded = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
    return f"mailto:{urllib.parse.quote(addresses, safe='@,')}?{encoded}"


def local_time(value: dt.datetime, tz: str) -> str:
    """A stored (naive UTC) timestamp shown in the recipient's time zone."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return value.replace(tzinfo=dt.UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def money(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"${float(value):,.0f}"


def one_click(
    alert_id: str, recipient: str, links: ActionLinks | None, now: dt.datetime | None = None
) -> list[dict[str, str]]:
    """Signed Acknowledge / Snooze 7 days / Resolve links for `recipient`, and Open in inbox.

    Empty when the inbox is not configured (no EA_PUBLIC_URL): an email never links nowhere.
    """
    if links is None or not links.enabled or not recipient:
        return []
    out = [
        {
            "label": ACTION_LABELS[a],
            "href": links.action_url(alert_id, a, recipient, now),
            "kind": a,
        }
        for a in ("acknowledge", "snooze", "resolve")
    ]
    out.append({"label": "Open in inbox", "href": links.inbox_url(alert_id), "kind": "open"})
    return out


def card(
    alert: dict[str, Any],
    champions: dict[str, str],
    hidden: set[str],
    crm_links: dict[str, str],
    sender_name: str = "",
    tz: str = "UTC",
    *,
    config: ContentConfig | None = None,
    recipient: str = "",
    metrics: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Everything a person reads about one alert, already scrubbed of opted-out users.

    `reasons` are plain sentences; `rule_expression` (the stored explanation with the rule's
    syntax) is for the data team's views only, never for an email. `now` (the message's as-of
    time) does not date the action links: they expire counted from the wall clock.
    """
    del now
    config = config or ContentConfig()
    words = config.words
    severity = alert.get("severity") or "low"
    account = alert.get("account_name") or alert["account_id"]
    why = reasons(alert, hidden, words, metrics)
    explanation = ". ".join(r["text"] for r in why)
    recommendation = scrub(alert.get("recommendation_text"), hidden)
    champion = champions.get(alert["account_id"])
    greeting = "Hi," if not champion else f"Hi {champion.split('@')[0].split('.')[0].title()},"
    draft = (
        f"{greeting}\n\nI wanted to check in on how {account} is getting on with the portal "
        f"and whether there is anything we can help with.\n\n{recommendation}\n\n"
        f"Best regards,\n{sender_name}"
    ).strip()
    title = words.term("alert_types", alert.get("alert_type"))
    # Warehouse-wide alerts (account "*") have no customer to write to.
    actions = (
        []
        if alert["account_id"] == "*"
        else [
            {
                "label": "Draft check-in email",
                "href": mailto(champion, f"Checking in: {account}", draft),
            },
        ]
    )
    if alert.get("escalation_email"):
        escalate_body = (
            f"Escalating {severity} alert on {account} (ARR {money(alert.get('arr'))}): "
            f"{title}.\n\nWhy: {explanation}\n\nRecommended: {recommendation}\n\n"
            f"Alert id: {alert['alert_id']}"
        )
        actions.append(
            {
                "label": "Escalate to manager",
                "href": mailto(
                    alert["escalation_email"], f"Escalation: {account} ({severity})", escalate_body
                ),
            }
        )
    tasks = (
        [{"label": "Open CRM task", "href": crm_links[alert["alert_id"]]}]
        if alert["alert_id"] in crm_links
        else []
    )
    sla = alert.get("sla_due_at")
    return {
        "alert_id": alert["alert_id"],
        "account_id": alert["account_id"],
        "account_name": account,
        "alert_type": title.lower() if title else "",
        "title": title,
        "is_expansion": is_expansion(alert.get("alert_type")),
        "severity": severity,
        "colour": severity_colour(severity, alert.get("alert_type")),
        "status": alert.get("status"),
        "arr": money(alert.get("arr")),
        "probability": None
        if alert.get("probability") is None
        else f"{float(alert['probability']):.0%}",
        "explanation": explanation,
        "reasons": why,
        "rule_expression": scrub(alert.get("explanation"), hidden),
        "recommendation": recommendation,
        "recommended_action": words.term("actions", alert.get("recommended_action")),
        "sla_due": local_time(sla, tz) if isinstance(sla, dt.datetime) else "",
        "first_raised_on": str(alert.get("first_raised_on") or ""),
        "actions": actions,
        "task_links": tasks,
        # Links expire from when the email is built (wall clock), not from its as-of day.
        "one_click": one_click(alert["alert_id"], recipient, config.links),
        "invite": alert.get("recommended_action") in MEETING_ACTIONS,
        "champion": champion,
    }


def severity_colour(severity: str, alert_type: str | None = None) -> str:
    """The card colour: severity traffic lights, amber for expansion (unless critical)."""
    if is_expansion(alert_type) and severity != "critical":
        return PALETTE["expansion"]
    return SEVERITY_COLOURS.get(severity, PALETTE["muted"])


def group_by_account(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One group per account, worst alert first, groups in the order of their worst alert.

    `cards` must already be sorted worst first (severity, then priority); a group carries the
    account's name, ARR and colour of its worst alert, and its alerts as `alerts`.
    """
    groups: dict[str, dict[str, Any]] = {}
    for c in cards:
        g = groups.get(c["account_id"])
        if g is None:
            g = groups[c["account_id"]] = {
                "account_id": c["account_id"],
                "account_name": c["account_name"],
                "arr": c["arr"],
                "severity": c["severity"],
                "colour": c["colour"],
                "champion": c.get("champion"),
                # Writing to the customer or the manager is about the account: offered once,
                # drafted from its worst alert.
                "actions": c["actions"],
                "alerts": [],
            }
        g["alerts"].append(c)
    for g in groups.values():
        g["alert_types"] = ", ".join(dict.fromkeys(a["alert_type"] for a in g["alerts"]))
        g["next_step"] = next((a["recommended_action"] for a in g["alerts"]), "")
    return list(groups.values())


def account_metrics(con, account_ids: list[str], as_of: dt.date) -> dict[str, dict[str, Any]]:
    """Each account's latest row of marts.account_health on or before `as_of` (the values a
    model signal refers to); {} when the mart is not built.
    """
    ids = [a for a in dict.fromkeys(account_ids) if a and a != "*"]
    if not ids or not table_exists(con, "marts", "account_health"):
        return {}
    cur = con.execute(
        """
        select * from marts.account_health
        where list_contains($ids, account_id) and as_of_date <= $d
        qualify row_number() over (partition by account_id order by as_of_date desc) = 1
        """,
        {"ids": ids, "d": as_of},
    )
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return {r["account_id"]: r for r in rows}


def active_alerts(con, as_of: dt.date | None = None) -> list[dict[str, Any]]:
    """Open and acknowledged alerts (not snoozed on `as_of`, not held out) with CSM, manager."""
    require_table(con, "alerts.alerts", "the alerts assets (alerts.alerts)")
    require_table(con, "marts.dim_accounts", "the dbt marts (marts.dim_accounts)")
    cur = con.execute(
        f"""
        select {", ".join("a." + c.strip() for c in ALERT_COLUMNS.split(","))},
               a.in_digest_summary, a.snoozed_until, a.escalated_at,
               d.csm_email, d.manager_email, d.csm_name
        from alerts.alerts a left join marts.dim_accounts d using (account_id)
        where a.status in ('open', 'acknowledged')
          and (a.snoozed_until is null or a.snoozed_until < $as_of)
          and not coalesce(a.is_holdout, false)
        """,
        {"as_of": as_of or dt.date.today()},
    )
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    for r in rows:
        r["account_name"] = r["account_name"] or (
            "All accounts (data)" if r["account_id"] == "*" else r["account_id"]
        )
    rows.sort(
        key=lambda r: (SEVERITY_ORDER.get(r["severity"], 9), -(r["priority"] or 0), r["alert_id"])
    )
    return rows


def crm_links(con) -> dict[str, str]:
    """alert_id -> URL of the CRM task created for it (only tasks that really exist)."""
    if not table_exists(con, "ops", "outbox"):
        return {}
    return dict(
        con.execute(
            "select alert_id, external_url from ops.outbox where channel = 'crm_task' "
            "and status = 'sent' and external_url is not null"
        ).fetchall()
    )
