"""What the inbox shows: a person's alerts from the snapshot, with their own recent actions on
top, in plain language (reasons, metrics vs the previous period). No HTTP here.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from alerts.schema import FEEDBACK
from inbox import store
from notifications.content import (
    PALETTE,
    SEVERITY_ORDER,
    is_expansion,
    mailto,
    money,
    reasons,
    scrub,
    severity_colour,
)
from notifications.links import SNOOZE_DAYS
from notifications.reasons import Glossary, describe

ACTIVE = ("open", "acknowledged")
# The account metrics shown beside an alert: (current column, previous-period column).
METRICS = (
    ("logins_28d", "logins_prev_28d"),
    ("active_users_28d", "active_users_prev_28d"),
    ("session_minutes_28d", "session_minutes_prev_28d"),
    ("docs_viewed_28d", "docs_viewed_prev_28d"),
    ("feature_breadth_28d", "feature_breadth_prev_28d"),
    ("health_score", "health_score_prev_28d"),
)
FACTS = ("seat_utilisation", "days_to_renewal", "days_since_admin_activity", "health_tier")
# Feedback a person may give when resolving (the lifecycle also knows "lost", not offered here).
RESOLVE_FEEDBACK = tuple(f for f in ("saved", "useful", "not_useful") if f in FEEDBACK)


@dataclass(frozen=True)
class Viewer:
    email: str
    role: str  # csm | manager | admin


def _rows(cur, sql: str, params: list | dict | None = None) -> list[dict[str, Any]]:
    cur.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def meta(cur) -> dict[str, Any]:
    rows = _rows(cur, "select * from meta")
    return rows[0] if rows else {}


def viewer(cur, email: str | None) -> Viewer | None:
    """The signed-in person's role from the snapshot; None when they may see nothing now."""
    if not email:
        return None
    rows = _rows(cur, "select role from people where email = ?", [email.lower()])
    return Viewer(email.lower(), rows[0]["role"]) if rows else None


def may_sign_in(cur, email: str) -> bool:
    return viewer(cur, email) is not None


def hidden_tokens(cur) -> set[str]:
    return {r["token"] for r in _rows(cur, "select token from hidden")}


def alerts_for(cur, person: str, alert_id: str | None = None) -> list[dict[str, Any]]:
    """Every alert of the snapshot this person may see (the scope model's audience)."""
    sql = (
        "select a.* from alerts a join (select distinct alert_id from audience "
        "where recipient = ?) u using (alert_id)"
    )
    params: list = [person.lower()]
    if alert_id is not None:
        sql += " where a.alert_id = ?"
        params.append(alert_id)
    return _rows(cur, sql, params)


def overlay(
    alerts: list[dict[str, Any]], actions: list[store.Action], today: dt.date
) -> list[dict[str, Any]]:
    """Alerts as they are once the recorded actions reach the warehouse (shown at once)."""
    by_id = {a["alert_id"]: a for a in alerts}
    for act in actions:
        a = by_id.get(act.alert_id)
        if a is None or a["status"] not in ACTIVE:
            continue
        a["pending_action"] = act
        if act.action == "acknowledge" and a["status"] == "open":
            a["status"] = "acknowledged"
            a["acknowledged_by"] = act.actor
        elif act.action == "resolve":
            a["status"] = "resolved"
            a["feedback"] = act.feedback
        elif act.action == "snooze":
            a["snoozed_until"] = act.snooze_until or today + dt.timedelta(days=SNOOZE_DAYS)
    return alerts


def is_snoozed(alert: dict[str, Any], today: dt.date) -> bool:
    until = alert.get("snoozed_until")
    return until is not None and until >= today


def _sort_key(a: dict[str, Any]):
    return (SEVERITY_ORDER.get(a.get("severity"), 9), -(a.get("priority") or 0), a["alert_id"])


def inbox_list(
    alerts: list[dict[str, Any]],
    today: dt.date,
    show: str = "active",
    glossary: Glossary | None = None,
) -> list[dict[str, Any]]:
    """Alerts for the list, grouped by account, worst first (critical accounts on top).

    show = active (open/acknowledged, not snoozed), snoozed, or closed (recently resolved).
    """
    if show == "snoozed":
        chosen = [a for a in alerts if a["status"] in ACTIVE and is_snoozed(a, today)]
    elif show == "closed":
        chosen = [a for a in alerts if a["status"] not in ACTIVE]
    else:
        chosen = [a for a in alerts if a["status"] in ACTIVE and not is_snoozed(a, today)]
    chosen.sort(key=_sort_key)
    groups: dict[str, dict[str, Any]] = {}
    for a in chosen:
        g = groups.setdefault(
            a["account_id"],
            {
                "account_id": a["account_id"],
                "account_name": a["account_name"],
                "arr": money(a.get("arr")),
                "severity": a["severity"],
                "colour": severity_colour(a["severity"], a.get("alert_type")),
                "expansion": is_expansion(a.get("alert_type")) and a["severity"] != "critical",
                "alerts": [],
            },
        )
        if glossary is not None:
            a["title"] = glossary.term("alert_types", a.get("alert_type"))
        g["alerts"].append(a)
        if g["arr"] == "n/a" and a.get("arr") is not None:
            g["arr"] = money(a.get("arr"))
    return list(groups.values())


def counts(alerts: list[dict[str, Any]], today: dt.date) -> dict[str, int]:
    active = [a for a in alerts if a["status"] in ACTIVE and not is_snoozed(a, today)]
    return {
        "active": len(active),
        "critical": sum(a["severity"] == "critical" for a in active),
        "open": sum(a["status"] == "open" for a in active),
        "snoozed": sum(a["status"] in ACTIVE and is_snoozed(a, today) for a in alerts),
        "closed": sum(a["status"] not in ACTIVE for a in alerts),
    }


def _metric_tiles(m: dict[str, Any] | None, glossary: Glossary) -> list[dict[str, Any]]:
    """Large numbers with their change vs the previous period; unknown says so, never 0."""
    tiles = []
    for col, prev_col in METRICS:
        label = glossary.label(col)
        if col == "health_score":
            label, period = "Health score", "vs 28 days before"
        else:
            period = "last 28 days vs the 28 before"
        value = None if m is None else m.get(col)
        prev = None if m is None else m.get(prev_col)
        tile = {
            "label": label,
            "period": period,
            "value": "not known",
            "known": False,
            "change": "",
            "arrow": "",
            "tone": "muted",
        }
        number = _as_number(value)
        if value is not None:
            tile.update(known=True, value=f"{number:,.0f}" if number is not None else str(value))
            prev = _as_number(prev)
            if prev is None or number is None:
                tile["change"] = "no earlier figure"
            elif prev == 0:
                tile["change"] = "none before" if value else "none either"
            else:
                ratio = (number - prev) / prev
                spec = glossary.columns.get(col) or {}
                higher = spec.get("higher_is", "better")
                direction = 0 if round(ratio * 100) == 0 else (1 if ratio > 0 else -1)
                tile["arrow"] = "▲" if direction > 0 else "▼" if direction < 0 else ""
                tile["change"] = (
                    f"{abs(ratio):.0%} {'up' if ratio > 0 else 'down'} from {prev:,.0f}"
                    if direction
                    else f"unchanged ({prev:,.0f})"
                )
                good = (direction > 0) == (higher == "better")
                tile["tone"] = "muted" if not direction else ("positive" if good else "critical")
        tiles.append(tile)
    return tiles


def _as_number(value: Any) -> float | None:
    """Numbers as floats (DuckDB hands back Decimal for some columns); anything else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _facts(m: dict[str, Any] | None, glossary: Glossary) -> list[str]:
    if m is None:
        return []
    return [describe(c, m.get(c), glossary).text for c in FACTS if c in m]


def detail(
    cur,
    alert: dict[str, Any],
    glossary: Glossary,
    hidden: set[str],
    store_con: sqlite3.Connection,
    viewer_: Viewer,
) -> dict[str, Any]:
    """Everything the detail and actions columns show for one alert."""
    metrics_rows = _rows(cur, "select * from metrics where account_id = ?", [alert["account_id"]])
    m = metrics_rows[0] if metrics_rows else None
    why = reasons(alert, hidden, glossary, m)
    champion_rows = _rows(
        cur, "select email from champions where account_id = ?", [alert["account_id"]]
    )
    champion = champion_rows[0]["email"] if champion_rows else None
    crm = _rows(cur, "select url from crm_links where alert_id = ?", [alert["alert_id"]])
    audit = _rows(
        cur,
        "select event, from_status, to_status, actor, reason, event_at, details_json from audit "
        "where alert_id = ? order by event_at desc",
        [alert["alert_id"]],
    )
    history = [
        {
            "when": r["event_at"],
            "what": glossary.term("statuses", r["to_status"])
            if r["event"] in ("acknowledged", "resolved", "expired")
            else r["event"].replace("_", " "),
            "who": scrub(r["actor"], hidden),
            "channel": (json.loads(r["details_json"] or "{}") or {}).get("channel", ""),
            "note": scrub(r["reason"], hidden),
        }
        for r in audit
    ]
    pending = [
        {
            "when": a.requested_at,
            "what": {"acknowledge": "acknowledged", "snooze": "snoozed", "resolve": "resolved"}[
                a.action
            ]
            + (f" ({glossary.term('feedback', a.feedback)})" if a.feedback else ""),
            "who": a.actor,
            "channel": a.channel,
            "state": a.outcome or "pending",
            "note": a.outcome_detail or "",
        }
        for a in store.recent_actions(store_con, alert["alert_id"])
        if a.applied_at is None or a.outcome == "rejected"
    ]
    account = alert["account_name"]
    recommendation = scrub(alert.get("recommendation_text"), hidden)
    draft = (
        f"Hi,\n\nI wanted to check in on how {account} is getting on with the portal.\n\n"
        f"{recommendation}\n\nBest regards"
    )
    escalate = (
        f"Escalating a {alert['severity']} alert on {account} (ARR {money(alert.get('arr'))}).\n\n"
        "Why:\n"
        + "\n".join(f"- {r['text']}" for r in why)
        + f"\n\nRecommended: {recommendation}\n\nAlert id: {alert['alert_id']}"
    )
    links = []
    if alert["account_id"] != "*":
        links.append(
            {
                "label": "Draft check-in email",
                "href": mailto(champion, f"Checking in: {account}", draft),
            }
        )
    if alert.get("escalation_email") and alert["escalation_email"].lower() != viewer_.email:
        links.append(
            {
                "label": "Escalate to manager",
                "href": mailto(
                    alert["escalation_email"],
                    f"Escalation: {account} ({alert['severity']})",
                    escalate,
                ),
            }
        )
    if crm:
        links.append({"label": "Open CRM task", "href": crm[0]["url"]})
    return {
        "alert": alert,
        "title": glossary.term("alert_types", alert.get("alert_type")),
        "colour": severity_colour(alert["severity"], alert.get("alert_type")),
        "is_expansion": is_expansion(alert.get("alert_type")),
        "arr": money(alert.get("arr")),
        "probability": None
        if alert.get("probability") is None
        else f"{float(alert['probability']):.0%}",
        "reasons": why,
        "tiles": _metric_tiles(m, glossary),
        "facts": _facts(m, glossary),
        "metrics_day": m.get("as_of_date") if m else None,
        "recommendation": recommendation,
        "recommended_action": glossary.term("actions", alert.get("recommended_action")),
        "links": links,
        "history": history,
        "pending": pending,
        "rule_expression": scrub(alert.get("explanation"), hidden),
        "explanation_json": alert.get("explanation_json"),
        "drivers_json": alert.get("drivers_json"),
        "feedback_choices": [(f, glossary.term("feedback", f)) for f in RESOLVE_FEEDBACK],
        "status_label": glossary.term("statuses", alert["status"]),
        "palette": PALETTE,
    }
