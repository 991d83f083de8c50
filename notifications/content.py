"""What goes into each message: who sees which accounts, alert cards, metrics, action links."""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.recipients import People, account_scopes

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


def _require(con, table: str, producer: str) -> None:
    schema, name = table.split(".")
    found = con.execute(
        "select count(*) from information_schema.tables where table_schema = $s and "
        "table_name = $n",
        {"s": schema, "n": name},
    ).fetchall()[0][0]
    if not found:
        raise MissingUpstreamError(
            f"Table {table} does not exist yet: materialize {producer} first."
        )


def _table_exists(con, schema: str, name: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = $s and "
            "table_name = $n",
            {"s": schema, "n": name},
        ).fetchall()[0][0]
    )


def recipient_scopes(con, config: ContentConfig) -> list[tuple[str, str, str]]:
    """(recipient, role, account_id) for every person allowed to see an account.

    A CSM sees their own book, a manager their team's book, an admin everything; nobody else.
    The one scope model lives in alerts.recipients; this is its account-level view.
    """
    _require(con, "marts.dim_accounts", "the dbt marts (marts.dim_accounts)")
    return account_scopes(con, config.people)


def user_privacy(con) -> tuple[dict[str, str], set[str]]:
    """(champion email per account, identifiers of opted-out users) from the latest user snapshot.

    Opted-out users are never named: they are neither a champion nor left in any text.
    """
    if not _table_exists(con, "raw", "users"):
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


def _loads(value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, (list, dict)):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return None


def _label(name: str) -> str:
    return name.replace("_", " ").strip().capitalize()


def facts(alert: dict[str, Any], hidden: set[str]) -> list[dict[str, str]]:
    """Explanation facts with trend arrows: the clause values that fired and the model drivers."""
    out: list[dict[str, str]] = []
    expansion = is_expansion(alert.get("alert_type"))
    parsed = _loads(alert.get("explanation_json"))
    clauses = parsed.get("clauses", []) if isinstance(parsed, dict) else parsed
    values: dict[str, Any] = {}
    for c in clauses or []:
        if isinstance(c, dict) and isinstance(c.get("values"), dict):
            values.update(c["values"])
        elif isinstance(c, dict) and (c.get("column") or c.get("name")):
            values[str(c.get("column") or c.get("name"))] = c.get("value")
    for name, value in values.items():
        if isinstance(value, (dict, list)) or value is None:
            continue
        arrow = tone = ""
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and any(k in name for k in ("trend", "change", "delta"))
        ):
            arrow = "▲" if value > 0 else "▼" if value < 0 else ""
            # Falling usage is bad news for a risk alert and rising usage good news either way.
            tone = "" if not arrow else ("positive" if arrow == "▲" else "critical")
        if isinstance(value, float):
            shown = f"{value:+.0%}" if arrow and abs(value) <= 5 else f"{value:,.2f}"
        else:
            shown = str(value)
        out.append(
            {
                "label": scrub(_label(name), hidden),
                "value": scrub(shown, hidden),
                "arrow": arrow,
                "tone": tone,
            }
        )
    drivers = _loads(alert.get("drivers_json"))
    if isinstance(drivers, dict):  # the ml scores' shape: {"base_value", "drivers": [...]}
        drivers = drivers.get("drivers", [])
    for d in (drivers or [])[:3]:
        if not isinstance(d, dict):
            continue
        name = str(d.get("feature") or d.get("name") or "")
        contrib = d.get("contribution", d.get("shap", d.get("value")))
        if not name or not isinstance(contrib, (int, float)):
            continue
        # A positive contribution pushes the model's probability up.
        arrow = "▲" if contrib > 0 else "▼"
        tone = "positive" if expansion == (contrib > 0) else "critical"
        out.append(
            {
                "label": f"Model driver: {_label(name)}",
                "value": f"{contrib:+.2f}",
                "arrow": arrow,
                "tone": tone,
            }
        )
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


def card(
    alert: dict[str, Any],
    champions: dict[str, str],
    hidden: set[str],
    crm_links: dict[str, str],
    sender_name: str = "",
    tz: str = "UTC",
) -> dict[str, Any]:
    """Everything the templates show for one alert, already scrubbed of opted-out users."""
    severity = alert.get("severity") or "low"
    account = alert.get("account_name") or alert["account_id"]
    explanation = scrub(alert.get("explanation"), hidden)
    recommendation = scrub(alert.get("recommendation_text"), hidden)
    champion = champions.get(alert["account_id"])
    greeting = "Hi," if not champion else f"Hi {champion.split('@')[0].split('.')[0].title()},"
    draft = (
        f"{greeting}\n\nI wanted to check in on how {account} is getting on with the portal "
        f"and whether there is anything we can help with.\n\n{recommendation}\n\n"
        f"Best regards,\n{sender_name}"
    ).strip()
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
            f"Escalating {severity} alert on {account} (ARR {money(alert.get('arr'))}).\n\n"
            f"Why: {explanation}\n\nRecommended: {recommendation}\n\nAlert id: {alert['alert_id']}"
        )
        actions.append(
            {
                "label": "Escalate to manager",
                "href": mailto(
                    alert["escalation_email"], f"Escalation: {account} ({severity})", escalate_body
                ),
            }
        )
    if alert["alert_id"] in crm_links:
        actions.append({"label": "Open CRM task", "href": crm_links[alert["alert_id"]]})
    sla = alert.get("sla_due_at")
    return {
        "alert_id": alert["alert_id"],
        "account_id": alert["account_id"],
        "account_name": account,
        "alert_type": (alert.get("alert_type") or "").replace("_", " "),
        "is_expansion": is_expansion(alert.get("alert_type")),
        "severity": severity,
        "colour": PALETTE["expansion"]
        if is_expansion(alert.get("alert_type")) and severity not in ("critical",)
        else SEVERITY_COLOURS.get(severity, PALETTE["muted"]),
        "status": alert.get("status"),
        "arr": money(alert.get("arr")),
        "probability": None
        if alert.get("probability") is None
        else f"{float(alert['probability']):.0%}",
        "explanation": explanation,
        "facts": facts(alert, hidden),
        "recommendation": recommendation,
        "recommended_action": (alert.get("recommended_action") or "").replace("_", " "),
        "sla_due": local_time(sla, tz) if isinstance(sla, dt.datetime) else "",
        "first_raised_on": str(alert.get("first_raised_on") or ""),
        "actions": actions,
        "invite": alert.get("recommended_action") in MEETING_ACTIONS,
        "champion": champion,
    }


def active_alerts(con, as_of: dt.date | None = None) -> list[dict[str, Any]]:
    """Open and acknowledged alerts (not snoozed on `as_of`, not held out) with CSM, manager."""
    _require(con, "alerts.alerts", "the alerts assets (alerts.alerts)")
    _require(con, "marts.dim_accounts", "the dbt marts (marts.dim_accounts)")
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
    if not _table_exists(con, "ops", "outbox"):
        return {}
    return dict(
        con.execute(
            "select alert_id, external_url from ops.outbox where channel = 'crm_task' "
            "and status = 'sent' and external_url is not null"
        ).fetchall()
    )
