"""Which accounts each rule holds for on a day: the rules as one set-based SQL query."""

from __future__ import annotations

import json

from alerts.inputs import DORMANT_TYPE, WHOLE_WAREHOUSE
from alerts.rules import Rule, RuleSet


def hit_query(rules: list[Rule], gated: bool) -> tuple[str, list]:
    """One UNION ALL over the rules: which accounts fire, the referenced values, each clause."""
    parts, params = [], []
    for rule in rules:
        c = rule.condition
        cols = c.columns or ["account_id"]
        values = ", ".join(f'?, "{col}"' for col in cols)
        clause_list = ", ".join(f"coalesce({sql}, false)" for _, sql, _, _ in c.clause_sql)
        gate = ""
        if gated:
            # account_dormant rules see only dormant accounts; every other rule only live ones
            dormant = rule.alert_type == DORMANT_TYPE
            gate = "coalesce(is_dormant, false) and " if dormant else "_gate_ok and "
        parts.append(
            f"select ? as rule_id, account_id, json_object({values}) as _values, "
            f"list_value({clause_list}) as _clauses from _ea_eval "
            f"where {gate}coalesce({c.sql}, false)"
        )
        params.append(rule.id)
        params.extend(cols)
        for _, _, p, _ in c.clause_sql:
            params.extend(p)
        params.extend(c.params)
    return " union all ".join(parts), params


def register_rules(con, ruleset: RuleSet) -> None:
    """Temp table _ea_rules: per enabled rule its weight, model, cooldown, severity, hysteresis."""
    import pandas as pd  # local: only the engine's batch path needs it

    rules_frame = pd.DataFrame(
        {
            "rule_id": [r.id for r in ruleset.enabled],
            "weight": [ruleset.severity_weights[r.severity] for r in ruleset.enabled],
            "model": [r.model for r in ruleset.enabled],
            "cooldown_days": [r.cooldown_days for r in ruleset.enabled],
            "severity": [r.severity for r in ruleset.enabled],
            "clear_after_days": [r.clear_after_days for r in ruleset.enabled],
        }
    ).astype(
        {
            "rule_id": "object",
            "model": "object",
            "weight": "float64",
            "cooldown_days": "int64",
            "severity": "object",
            "clear_after_days": "int64",
        }
    )
    con.register("_ea_rules_df", rules_frame)
    con.execute("create or replace temp table _ea_rules as select * from _ea_rules_df")
    con.unregister("_ea_rules_df")


def find_hits(con, ruleset: RuleSet, total: int) -> dict[str, dict]:
    """Temp table _ea_keys: every (rule, account) that holds on the day in _ea_eval, with the
    values and clauses that fired. Returns the whole-warehouse data freshness rows to render.
    """
    # Which rules hold for which accounts: one set-based query, nothing rendered yet.
    account_rules = [r for r in ruleset.enabled if r.alert_type != "data_freshness"]
    con.execute(
        "create or replace temp table _ea_keys (rule_id string, account_id string, "
        "_values json, _clauses boolean[])"
    )
    if account_rules:
        sql, params = hit_query(account_rules, gated=True)
        con.execute(f"insert into _ea_keys {sql}", params)
    # Data freshness: one alert for the whole day, listing the accounts held back.
    fresh_rows: dict[str, dict] = {}
    for rule in (r for r in ruleset.enabled if r.alert_type == "data_freshness"):
        sql, params = hit_query([rule], gated=False)
        affected = [r[1] for r in con.execute(sql, params).fetchall()]
        day_landed = con.execute("select bool_and(day_is_landed) from _ea_eval").fetchall()[0][0]
        if affected or total == 0:
            values = {"accounts_affected": len(affected), "day_is_landed": bool(day_landed)}
            fresh_rows[rule.id] = {
                "account_id": WHOLE_WAREHOUSE,
                "_account_name": "All accounts",
                "accounts_affected": len(affected) if total else "all",
                "day_is_landed": bool(day_landed) if total else False,
                "examples": sorted(affected)[:5],
                "arr": None,
                "_values": json.dumps(values),
                "_clauses": [],
            }
            con.execute(
                "insert into _ea_keys values (?, ?, ?, [])",
                [rule.id, WHOLE_WAREHOUSE, json.dumps(values)],
            )
    return fresh_rows
