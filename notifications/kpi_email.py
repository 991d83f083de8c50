"""Weekly KPI email to managers and admins: headline KPIs vs last week, a chart, the worst rules."""

from __future__ import annotations

import base64
import datetime as dt
import io
from pathlib import Path
from typing import Any

from notifications.content import PALETTE, ContentConfig, require_table
from notifications.digest import compact_html, environment
from notifications.outbox import Delivery
from warehouse.catalog import table_exists

CHART_CID = "kpi-chart@engagement-alerts"
_HEADLINE = (
    # (column, label, format, higher is better)
    ("alerts_raised", "Alerts raised", "count", None),
    ("risk_precision", "Risk precision", "pct", True),
    ("sla_attainment", "SLA attainment", "pct", True),
    ("median_hours_to_first_action", "Median hours to act", "hours", False),
    ("share_acknowledged", "Acknowledged", "pct", True),
)


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{value:.0%}"
    if kind == "hours":
        return f"{value:.1f} h"
    return f"{int(value):,}"


def _headline(now: dict | None, before: dict | None) -> list[dict[str, str]]:
    out = []
    for col, label, kind, higher_better in _HEADLINE:
        value = (now or {}).get(col)
        prev = (before or {}).get(col)
        if value is None or prev is None or value == prev:
            change, arrow, tone = ("no change" if value == prev else "new"), "", "muted"
        else:
            diff = value - prev
            change = (
                f"{diff:+.0%} pts" if kind == "pct" else _fmt(abs(diff), kind) + " vs last week"
            )
            arrow = "▲" if diff > 0 else "▼"
            tone = (
                "muted"
                if higher_better is None
                else ("positive" if (diff > 0) == higher_better else "critical")
            )
        out.append({"label": label, "value": _fmt(value, kind), "change": change,
                    "arrow": arrow, "tone": tone})  # fmt: skip
    return out


def chart_png(weeks: list[dict[str, Any]]) -> bytes:
    """Bars of alerts raised per week, a line of risk precision: a small PNG for the email."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    labels = [w["week_start"].strftime("%d %b") for w in weeks]
    fig, ax = plt.subplots(figsize=(5.6, 2.2), dpi=100)
    raised = [w["alerts_raised"] for w in weeks]
    # An unknown count draws no bar (NaN), never a zero one.
    ax.bar(labels, [r if r is not None else float("nan") for r in raised],
           color=PALETTE["brand"], alpha=0.85)  # fmt: skip
    ax.set_ylabel("alerts", fontsize=8)
    ax.tick_params(labelsize=7)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    twin = ax.twinx()
    precision = [w["risk_precision"] for w in weeks]
    twin.plot(labels, [p if p is not None else float("nan") for p in precision],
              color=PALETTE["warning"], marker="o", linewidth=1.5)  # fmt: skip
    twin.set_ylim(0, 1)
    twin.set_ylabel("precision", fontsize=8)
    twin.tick_params(labelsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _rows(con, sql: str, params: list) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def build_kpi_emails(
    con,
    week_start: dt.date,
    templates_dir: Path,
    config: ContentConfig | None = None,
    now: dt.datetime | None = None,
) -> list[Delivery]:
    """One email per manager (their team's KPIs) and admin (everyone's) for the week starting
    `week_start` (a Monday), key `kpi:<recipient>:<week_start>`, so a week is sent once.
    """
    config = config or ContentConfig()
    require_table(con, "kpis.kpi_alerts_weekly", "the KPI marts (kpis_job)")
    missing = [n for n in ("kpi.html.j2", "kpi.txt.j2") if not (Path(templates_dir) / n).exists()]
    if missing:
        raise FileNotFoundError(
            f"{', '.join(missing)} not found in {templates_dir}: copy them from the repository's "
            "config/templates/email (added with the weekly KPI email)."
        )
    env = environment(templates_dir)
    previous = week_start - dt.timedelta(days=7)
    scopes = [
        (email, "team", email, f"Your team's alerts ({email})")
        for (email,) in con.execute(
            "select distinct dimension_value from kpis.kpi_alerts_weekly "
            "where dimension = 'team' and dimension_value != 'unassigned' order by 1"
        ).fetchall()
    ] + [(email, "overall", "all", "All teams") for email in config.admins]
    worst = _rows(
        con,
        """
        select dimension_value as rule_id, sum(alerts_raised) as alerts,
               sum(risk_true_positives) / nullif(sum(risk_alerts_judged), 0) as precision,
               sum(snoozed_or_not_useful) / nullif(sum(alerts_raised), 0) as fatigue
        from kpis.kpi_alerts_weekly
        where dimension = 'rule' and week_start between ? and ?
        group by 1 order by precision asc nulls last, alerts desc limit 3
        """,
        [week_start - dt.timedelta(days=21), week_start],
    )
    for r in worst:
        r["precision"] = _fmt(r["precision"], "pct")
        r["fatigue"] = _fmt(r["fatigue"], "pct")
    uplift = []
    if table_exists(con, "kpis", "kpi_holdout_uplift"):
        for u in _rows(con, "select * from kpis.kpi_holdout_uplift order by metric", []):
            if u["holdout_accounts"]:
                uplift.append({
                    "metric": u["metric"].replace("_", " "),
                    "value": _fmt(u["uplift"], "pct"),
                    "interval": f"{_fmt(u['uplift_ci_low'], 'pct')} to "
                                f"{_fmt(u['uplift_ci_high'], 'pct')}",
                    "conclusion": u["conclusion"],
                })  # fmt: skip
    deliveries = []
    for recipient, dimension, value, label in scopes:
        weeks = _rows(
            con,
            "select * from kpis.kpi_alerts_weekly where dimension = ? and dimension_value = ? "
            "and week_start between ? and ? order by week_start",
            [dimension, value, week_start - dt.timedelta(days=49), week_start],
        )
        by_week = {w["week_start"]: w for w in weeks}
        this, last = by_week.get(week_start), by_week.get(previous)
        if this is None and last is None:
            continue  # nothing raised for this scope in two weeks: no email
        subject = (
            f"{config.product_name} weekly KPIs, week of {week_start:%d %b}: "
            f"{(this or {}).get('alerts_raised', 0)} alerts"
        )
        context = {
            "subject": subject,
            "week_start": f"{week_start:%d %b %Y}",
            "scope_label": label,
            "headline": _headline(this, last),
            "chart_cid": CHART_CID if weeks else None,
            "critical_missed": (this or {}).get("critical_not_delivered", 0),
            "worst_rules": worst,
            "uplift": uplift if dimension == "overall" else [],
            "palette": PALETTE,
            "product": config.product_name,
            "recipient": recipient,
            "dashboard_url": config.dashboard_url,
        }
        images = []
        if weeks:
            images.append({
                "cid": CHART_CID,
                "content_type": "image/png",
                "filename": "kpis.png",
                "content_b64": base64.b64encode(chart_png(weeks)).decode("ascii"),
            })  # fmt: skip
        payload = {
            "to": [recipient],
            "cc": [],
            "subject": subject,
            "html": compact_html(env.get_template("kpi.html.j2").render(**context)),
            "text": env.get_template("kpi.txt.j2").render(**context),
            "inline_images": images,
            "kind": "kpi",
        }
        deliveries.append(
            Delivery(
                idempotency_key=f"kpi:{recipient}:{week_start.isoformat()}",
                channel="email",
                recipient=recipient,
                payload=payload,
                subject=subject,
                digest_date=week_start,
            )
        )
    return deliveries
