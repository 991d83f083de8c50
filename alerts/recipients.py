"""Who is responsible for an alert: the owner and escalation addresses of a rule's hit."""

from __future__ import annotations

from alerts.rules import Routing, Rule


def route(rule: Rule, row: dict, routing: Routing) -> tuple[str, str]:
    owner, escalation = rule.owner, rule.escalation
    for route in routing.routes:
        facts = {
            "alert_type": rule.alert_type,
            "severity": rule.severity,
            "rule_id": rule.id,
            "segment": row.get("segment"),
            "plan": row.get("plan"),
        }
        if all(facts.get(k) == v for k, v in route["match"].items()):
            owner = route.get("owner", owner)
            escalation = route.get("escalation", escalation)
            break

    def resolve(target: str, fallback: str) -> str:
        if target == "csm":
            return row.get("csm_email") or fallback
        if target == "manager":
            return row.get("manager_email") or routing.default_escalation
        if target == "data_team":
            return routing.data_team
        return target

    return resolve(owner, routing.unassigned_owner), resolve(escalation, routing.default_escalation)
