"""Explanations and recommendations of new alerts: clause values in words, Jinja templates."""

from __future__ import annotations

import json
import math

from alerts.inputs import EvaluationError
from alerts.recipients import route
from alerts.rules import Routing, Rule, RuleSet
from alerts.schema import alert_id_for


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def _label(col: str) -> str:
    return col.replace("_prev_28d", " (previous 28 days)").replace("_", " ")


def explain(rule: Rule, values: dict, fired: list[bool]) -> tuple[str, list[dict]]:
    """Human text and JSON for the clauses that held, with their column values."""
    clauses = []
    for (text, _, _, cols), ok in zip(rule.condition.clause_sql, fired, strict=True):
        vals = {col: values.get(col) for col in cols}
        clauses.append({"clause": text, "held": bool(ok), "values": vals})
    shown = [c for c in clauses if c["held"]] or clauses
    pieces = []
    for c in shown:
        vals = c["values"]
        desc = ", ".join(f"{_label(k)} {_fmt(v)}" for k, v in vals.items())
        change = ""
        for k, v in vals.items():
            is_current = k.endswith("_28d") and not k.endswith("_prev_28d")
            prev = k[: -len("_28d")] + "_prev_28d" if is_current else None
            if prev and prev in vals and isinstance(v, int | float) and vals[prev]:
                change = f", {((v - vals[prev]) / vals[prev]) * 100:+.0f}% vs previous 28 days"
        pieces.append(f"{c['clause']} ({desc}{change})" if desc else c["clause"])
    return "; ".join(pieces), clauses


def top_drivers(row: dict, model: str | None) -> list[dict]:
    if model is None:
        return []
    out = []
    for i in (1, 2, 3):
        feature = row.get(f"_{model}_d{i}")
        if feature is None:
            continue
        contrib = row.get(f"_{model}_c{i}")
        contrib = (
            None
            if contrib is None or (isinstance(contrib, float) and math.isnan(contrib))
            else float(contrib)
        )
        sign = "" if contrib is None else f" ({contrib:+.2f})"
        out.append(
            {"feature": feature, "contribution": contrib, "label": f"{_label(feature)}{sign}"}
        )
    return out


HIT_COLUMNS = (
    "rule_id",
    "alert_type",
    "title",
    "account_id",
    "account_name",
    "severity",
    "priority",
    "probability",
    "arr",
    "owner_email",
    "escalation_email",
    "sla_hours",
    "cooldown_days",
    "explanation",
    "explanation_json",
    "drivers_json",
    "recommended_action",
    "recommendation_text",
    "new_alert_id",
)


def render(rule: Rule, row: dict, ruleset: RuleSet, routing: Routing, as_of, env) -> dict:
    values = json.loads(row["_values"]) if row.get("_values") else {}
    fired = list(row.get("_clauses") or [])
    if rule.alert_type == "data_freshness":
        n = row["accounts_affected"]
        text = f"data not complete for {n} account(s)" + (
            "" if row["day_is_landed"] else f"; {as_of} has not fully landed"
        )
        if row["examples"]:
            text += f" (e.g. {', '.join(row['examples'])})"
        clauses = [{"clause": rule.condition.text, "held": True, "values": values}]
    else:
        text, clauses = explain(rule, values, fired)
    drivers = top_drivers(row, rule.model)
    if drivers:
        text += ". Top drivers: " + ", ".join(d["label"] for d in drivers)
    probability = row.get(f"{rule.model}_probability") if rule.model else None
    arr = row.get("arr")
    factor = 1.0 if rule.model is None else (0.5 if probability is None else float(probability))
    priority = ruleset.severity_weights[rule.severity] * float(arr or 0.0) * factor
    owner, escalation = route(rule, row, routing)
    context = {
        "account_id": row["account_id"],
        "account_name": row.get("_account_name") or row["account_id"],
        "arr": arr,
        "probability": probability,
        "severity": rule.severity,
        "title": rule.title,
        "action": rule.action,
        "drivers": drivers,
        "values": values,
        "row": {k: v for k, v in row.items() if not k.startswith("_")},
        "as_of_date": as_of.isoformat(),
    }
    try:
        recommendation = env.get_template(rule.template).render(**context).strip()
    except Exception as exc:
        raise EvaluationError(
            f"rule {rule.id!r}: recommendation template {rule.template!r} failed for account "
            f"{row['account_id']}: {exc} (fix the template in config/templates/recommendations/)"
        ) from exc
    return {
        "rule_id": rule.id,
        "alert_type": rule.alert_type,
        "title": rule.title,
        "account_id": row["account_id"],
        "account_name": context["account_name"],
        "severity": rule.severity,
        "priority": round(priority, 2),
        "probability": probability,
        "arr": arr,
        "owner_email": owner,
        "escalation_email": escalation,
        "sla_hours": rule.sla_hours,
        "cooldown_days": rule.cooldown_days,
        "explanation": text,
        "explanation_json": json.dumps({"rule_id": rule.id, "clauses": clauses}, default=str),
        "drivers_json": json.dumps(
            [{"feature": d["feature"], "contribution": d["contribution"]} for d in drivers]
        ),
        "recommended_action": rule.action,
        "recommendation_text": recommendation,
        "new_alert_id": alert_id_for(rule.id, row["account_id"], as_of),
    }


def render_new(con, ruleset: RuleSet, routing: Routing, as_of, env, fresh_rows) -> None:
    """Temp table _ea_raise: the new episodes of _ea_new (not snoozed, not cooling) rendered."""
    import pandas as pd  # local: only the engine's batch path needs it

    rules_by_id = {r.id: r for r in ruleset.enabled}
    cur = con.execute(
        """
        select n.rule_id as _rule_id, n._values, n._clauses, e.*
        from _ea_new n join _ea_eval e using (account_id)
        where not n.is_snoozed and not n.is_cooling
        """
    )
    names = [d[0] for d in cur.description]
    rows = []
    for rec in cur.fetchall():
        row = dict(zip(names, rec, strict=True))
        rows.append(render(rules_by_id[row["_rule_id"]], row, ruleset, routing, as_of, env))
    for rule_id, row in fresh_rows.items():
        raise_it = con.execute(
            "select count(*) from _ea_new where rule_id = ? and not is_snoozed and not is_cooling",
            [rule_id],
        ).fetchall()[0][0]
        if raise_it:
            rows.append(render(rules_by_id[rule_id], row, ruleset, routing, as_of, env))
    frame = pd.DataFrame(rows, columns=list(HIT_COLUMNS))
    frame = frame.astype({"priority": "float64", "probability": "float64", "arr": "float64"})
    con.register("_ea_raise_df", frame)
    con.execute("create or replace temp table _ea_raise as select * from _ea_raise_df")
    con.unregister("_ea_raise_df")
