"""Load and validate config/rules.yml and config/routing.yml as a whole, before anything runs."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from alerts.escalation import LEVELS, EscalationPolicy, EscalationStep
from alerts.expr import Compiled, ConditionError, compile_condition
from alerts.holdout import Holdout
from alerts.schema import ACTIONS, ALERT_TYPES, SEVERITIES
from warehouse.catalog import table_columns

# Columns the rules may use beyond the health mart: the day's model scores and anomalies.
DERIVED_COLUMNS = {
    "churn_probability": "number",
    "churn_percentile": "number",
    "churn_band": "string",
    "expansion_probability": "number",
    "expansion_percentile": "number",
    "expansion_band": "string",
    "anomaly_count": "number",
    "anomaly_drop_count": "number",
    "anomaly_min_z": "number",
    "anomaly_max_z": "number",
    "day_is_landed": "boolean",
    # from marts.account_health when it has them (false / NULL for a mart built before dormancy)
    "is_dormant": "boolean",
    "days_dormant": "number",
}

# The health mart's columns as agreed in docs/contracts.md; used when no warehouse is at hand
# (the live table's own columns win when the caller passes a connection).
CONTRACT_HEALTH_COLUMNS = {
    **{
        f"{m}_{w}": "number"
        for m in (
            "active_users",
            "logins",
            "session_minutes",
            "docs_viewed",
            "docs_downloaded",
            "docs_shared",
            "docs_uploaded",
            "docs_commented",
            "features_used",
            "premium_feature_events",
            "csm_emails_opened",
            "csm_emails_clicked",
            "admin_active_users",
        )
        for w in ("7d", "28d", "90d", "prev_28d")
    },
    "active_users_trend_28d": "number",
    "logins_trend_28d": "number",
    "wow_logins_change": "number",
    "seat_utilisation": "number",
    "feature_breadth_28d": "number",
    "days_since_admin_activity": "number",
    "days_since_last_activity": "number",
    "days_to_renewal": "number",
    "arr": "number",
    "seats": "number",
    "plan": "string",
    "segment": "string",
    "csm_email": "string",
    "manager_email": "string",
    "is_data_complete": "boolean",
    "health_score": "number",
    "health_tier": "string",
    "account_id": "string",
    "as_of_date": "date",
}

RULE_KEYS = {
    "id",
    "title",
    "type",
    "condition",
    "severity",
    "routing",
    "cooldown_days",
    "sla_hours",
    "recommendation",
    "enabled",
    "model",
    "expire_after_days",
    "clear_after_days",
    "description",
}
REQUIRED_KEYS = ("id", "title", "type", "condition", "severity", "sla_hours", "recommendation")
ROUTE_TARGETS = ("csm", "manager", "data_team")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_RULE_ID = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
DEFAULT_SEVERITY_WEIGHTS = {"critical": 8.0, "high": 4.0, "medium": 2.0, "low": 1.0}


class RulesFileError(ValueError):
    """The rules or routing file is invalid; lists every problem found (nothing was applied)."""

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s), no rule was applied:\n{lines}")


@dataclass
class Rule:
    id: str
    title: str
    alert_type: str
    condition: Compiled
    severity: str
    owner: str
    escalation: str
    cooldown_days: int
    sla_hours: float
    action: str
    template: str
    enabled: bool
    model: str | None
    expire_after_days: int
    description: str = ""
    # Days the condition must stay false before the engine resolves the alert (1 = the first
    # day it is false): a shorter dip keeps the alert open, so it neither re-arms nor re-notifies.
    clear_after_days: int = 1


@dataclass
class Routing:
    data_team: str
    unassigned_owner: str
    default_escalation: str
    admins: list[str]
    managers: list[str]
    daily_budget_per_owner: int
    budget_exempt_severities: list[str]
    routes: list[dict] = field(default_factory=list)
    holdout: Holdout = field(default_factory=Holdout)
    escalation_policy: EscalationPolicy = field(default_factory=EscalationPolicy)
    # Chat channels ("slack", "teams") per audience: "critical" (critical alerts, escalations,
    # reminders, failed critical mail) and "data_team" (delivery failures, failed checks).
    second_channel: dict[str, list[str]] = field(default_factory=dict)

    def role_of(self, email: str) -> str:
        email = email.lower()
        if email in self.admins:
            return "admin"
        if email in self.managers:
            return "manager"
        return "csm"


@dataclass
class RuleSet:
    rules: list[Rule]
    severity_weights: dict[str, float]
    digest: str  # hash of the source file, stored with runs
    source: str = ""

    @property
    def enabled(self) -> list[Rule]:
        return [r for r in self.rules if r.enabled]

    def by_id(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


def columns_from_connection(con) -> dict[str, str]:
    """Column catalogue from the live marts.account_health plus the derived score columns."""
    rows = table_columns(con, "marts", "account_health")
    if not rows:
        return {**CONTRACT_HEALTH_COLUMNS, **DERIVED_COLUMNS}
    cols = {name.lower(): _lang_type(t) for name, t in rows.items()}
    return {**{k: v for k, v in cols.items() if v}, **DERIVED_COLUMNS}


def _lang_type(duck_type: str) -> str | None:
    t = duck_type.upper()
    if t == "BOOLEAN":
        return "boolean"
    if t.startswith(("VARCHAR", "STRING", "TEXT")):
        return "string"
    if t == "DATE" or t.startswith("TIMESTAMP"):
        return "date"
    if any(
        t.startswith(p)
        for p in ("TINYINT", "SMALLINT", "INT", "BIGINT", "HUGEINT", "UBIGINT", "UINT", "UTINY")
    ) or t.startswith(("DECIMAL", "DOUBLE", "FLOAT", "REAL", "NUMERIC", "USMALL")):
        return "number"
    return None  # lists, structs, JSON: not usable in conditions


def _days(value, what: str, problems: list[str], where: str) -> int | None:
    if isinstance(value, bool):
        value = None
    if isinstance(value, str) and re.fullmatch(r"\d+\s*d", value.strip()):
        value = int(value.strip()[:-1])
    if not isinstance(value, int) or value < 0:
        problems.append(f"{where}: {what} must be a whole number of days >= 0 (e.g. 14 or '14d')")
        return None
    return value


def template_env(templates_dir: Path | None) -> SandboxedEnvironment:
    """Sandboxed Jinja2 environment over the recommendation templates (no code, no file access)."""
    from jinja2 import FileSystemLoader

    loader = FileSystemLoader(str(templates_dir)) if templates_dir else None
    env = SandboxedEnvironment(
        loader=loader, undefined=StrictUndefined, autoescape=False, trim_blocks=True
    )
    env.filters["money"] = lambda v: "n/a" if v is None else f"${float(v):,.0f}"
    env.filters["pct"] = lambda v: "n/a" if v is None else f"{float(v) * 100:.0f}%"
    return env


def parse_rules(
    doc: object,
    columns: dict[str, str],
    templates_dir: Path | None = None,
    source: str = "rules.yml",
) -> RuleSet:
    """Validate a parsed rules document in full; raise RulesFileError listing every problem."""
    problems: list[str] = []
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise RulesFileError(source, ["the file must be a mapping with a 'rules:' list"])
    unknown_top = set(doc) - {"version", "defaults", "rules"}
    if unknown_top:
        problems.append(f"unknown top-level keys {sorted(unknown_top)}; allowed: defaults, rules")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.append("'defaults' must be a mapping")
        defaults = {}
    weights = dict(DEFAULT_SEVERITY_WEIGHTS)
    for sev, w in (defaults.get("severity_weights") or {}).items():
        if sev not in SEVERITIES or not isinstance(w, int | float) or isinstance(w, bool) or w <= 0:
            problems.append(
                f"defaults.severity_weights: {sev}: {w!r} — keys {SEVERITIES}, positive numbers"
            )
        else:
            weights[sev] = float(w)
    default_cooldown = _days(
        defaults.get("cooldown_days", 14), "cooldown_days", problems, "defaults"
    )
    default_expire = _days(
        defaults.get("expire_after_days", 45), "expire_after_days", problems, "defaults"
    )
    default_clear = _days(
        defaults.get("clear_after_days", 1), "clear_after_days", problems, "defaults"
    )
    env = template_env(templates_dir)
    rules: list[Rule] = []
    seen: set[str] = set()
    for n, raw in enumerate(doc["rules"], start=1):
        where = f"rule #{n}"
        if not isinstance(raw, dict):
            problems.append(f"{where}: each rule must be a mapping of keys")
            continue
        rid = raw.get("id")
        if isinstance(rid, str) and _RULE_ID.match(rid):
            where = f"rule {rid!r}"
            if rid in seen:
                problems.append(f"{where}: duplicate id (ids must be unique)")
            seen.add(rid)
        else:
            problems.append(f"{where}: 'id' must be lower_snake_case text, got {rid!r}")
        extra = set(raw) - RULE_KEYS
        if extra:
            problems.append(f"{where}: unknown keys {sorted(extra)}; allowed: {sorted(RULE_KEYS)}")
        missing = [k for k in REQUIRED_KEYS if k not in raw]
        if missing:
            problems.append(f"{where}: missing required keys {missing}")
            continue
        atype = raw["type"]
        if atype not in ALERT_TYPES:
            problems.append(f"{where}: type {atype!r} is not one of {list(ALERT_TYPES)}")
        sev = raw["severity"]
        if sev not in SEVERITIES:
            problems.append(f"{where}: severity {sev!r} is not one of {list(SEVERITIES)}")
        compiled = None
        cond = raw["condition"]
        if not isinstance(cond, str):
            problems.append(f"{where}: condition must be text, got {type(cond).__name__}")
        else:
            try:
                compiled = compile_condition(cond, columns)
            except ConditionError as exc:
                problems.append(str(exc.for_rule(str(rid))))
        routing = raw.get("routing") or {}
        if not isinstance(routing, dict) or set(routing) - {"owner", "escalation"}:
            problems.append(f"{where}: routing must be a mapping with 'owner' and 'escalation'")
            routing = {}
        default_owner = "data_team" if atype == "data_freshness" else "csm"
        owner = routing.get("owner", default_owner)
        escalation = routing.get("escalation", "manager")
        for key, val in (("owner", owner), ("escalation", escalation)):
            if val not in ROUTE_TARGETS and not (isinstance(val, str) and _EMAIL.match(val)):
                problems.append(
                    f"{where}: routing.{key} {val!r} must be one of {list(ROUTE_TARGETS)} "
                    "or an email address"
                )
        cooldown = _days(
            raw.get("cooldown_days", default_cooldown), "cooldown_days", problems, where
        )
        expire = _days(
            raw.get("expire_after_days", default_expire), "expire_after_days", problems, where
        )
        clear = _days(
            raw.get("clear_after_days", default_clear), "clear_after_days", problems, where
        )
        if clear == 0:
            problems.append(f"{where}: clear_after_days must be at least 1")
        sla = raw["sla_hours"]
        if isinstance(sla, bool) or not isinstance(sla, int | float) or sla <= 0:
            problems.append(f"{where}: sla_hours must be a positive number of hours, got {sla!r}")
        rec = raw["recommendation"]
        action, template = None, None
        if not isinstance(rec, dict) or "action" not in rec:
            problems.append(f"{where}: recommendation must be a mapping with 'action' (+ template)")
        else:
            action = rec["action"]
            if action not in ACTIONS:
                problems.append(f"{where}: recommendation action {action!r} not in {list(ACTIONS)}")
            template = rec.get("template", f"{atype}.j2")
            if not isinstance(template, str) or not re.fullmatch(r"[a-z0-9_]+\.j2", template):
                problems.append(f"{where}: template {template!r} must be a file name like x.j2")
            elif templates_dir is not None:
                try:
                    env.get_template(template)
                except TemplateSyntaxError as exc:
                    problems.append(f"{where}: template {template}: line {exc.lineno}: {exc}")
                except Exception as exc:  # missing file and friends: report, keep validating
                    problems.append(
                        f"{where}: template {template!r} not found in {templates_dir} ({exc})"
                    )
        model = raw.get("model", _default_model(atype))
        if model not in ("churn", "expansion", None):
            problems.append(f"{where}: model must be churn, expansion or null, got {model!r}")
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            problems.append(f"{where}: enabled must be true or false, got {enabled!r}")
        title = raw["title"]
        if not isinstance(title, str) or not title.strip():
            problems.append(f"{where}: title must be non-empty text")
        if compiled is None or any(
            v is None for v in (cooldown, expire, clear, action, template)
        ):  # already reported
            continue
        rules.append(
            Rule(
                id=rid,
                title=str(title),
                alert_type=atype,
                condition=compiled,
                severity=sev,
                owner=owner,
                escalation=escalation,
                cooldown_days=cooldown,
                sla_hours=float(sla) if isinstance(sla, int | float) else 0.0,
                action=action,
                template=template,
                enabled=bool(enabled),
                model=model,
                expire_after_days=expire,
                description=str(raw.get("description", "")),
                clear_after_days=max(clear, 1),
            )
        )
    if problems:
        raise RulesFileError(source, problems)
    text = yaml.safe_dump(doc, sort_keys=True)
    return RuleSet(rules, weights, hashlib.md5(text.encode()).hexdigest()[:12], source)


def _default_model(alert_type: str) -> str | None:
    if alert_type == "expansion_opportunity":
        return "expansion"
    if alert_type == "data_freshness":
        return None
    return "churn"


def load_rules(
    path: Path, columns: dict[str, str] | None = None, templates_dir: Path | None = None
) -> RuleSet:
    """Read and validate a rules file; `columns` defaults to the contract catalogue."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise RulesFileError(
            str(path), ["file not found; create it (see docs/alert-rules.md)"]
        ) from exc
    except yaml.YAMLError as exc:
        raise RulesFileError(str(path), [f"not valid YAML: {exc}"]) from exc
    if templates_dir is None:
        templates_dir = path.parent / "templates" / "recommendations"
    cols = columns if columns is not None else {**CONTRACT_HEALTH_COLUMNS, **DERIVED_COLUMNS}
    return parse_rules(doc, cols, templates_dir, str(path))


def parse_routing(doc: object, source: str = "routing.yml") -> Routing:
    """Validate the routing document (roles, fallbacks, budgets, overrides)."""
    problems: list[str] = []
    if not isinstance(doc, dict):
        raise RulesFileError(source, ["the file must be a mapping"])
    allowed = {
        "data_team",
        "unassigned_owner",
        "default_escalation",
        "admins",
        "managers",
        "daily_budget_per_owner",
        "budget_exempt_severities",
        "routes",
        "holdout",
        "escalation_policy",
        "second_channel",
        "timezones",
    }
    if set(doc) - allowed:
        problems.append(f"unknown keys {sorted(set(doc) - allowed)}; allowed: {sorted(allowed)}")
    emails = {}
    for key in ("data_team", "unassigned_owner", "default_escalation"):
        val = doc.get(key)
        if not (isinstance(val, str) and _EMAIL.match(val)):
            problems.append(f"{key}: must be an email address, got {val!r}")
        emails[key] = val
    lists = {}
    for key in ("admins", "managers"):
        val = doc.get(key) or []
        if not isinstance(val, list) or not all(
            isinstance(v, str) and _EMAIL.match(v) for v in val
        ):
            problems.append(f"{key}: must be a list of email addresses")
            val = []
        lists[key] = [v.lower() for v in val]
    budget = doc.get("daily_budget_per_owner", 5)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        problems.append(f"daily_budget_per_owner: must be a whole number >= 1, got {budget!r}")
    exempt = doc.get("budget_exempt_severities", ["critical"])
    if not isinstance(exempt, list) or any(s not in SEVERITIES for s in exempt):
        problems.append(f"budget_exempt_severities: must be a list from {list(SEVERITIES)}")
    routes = doc.get("routes") or []
    match_keys = {"alert_type", "severity", "segment", "plan", "rule_id"}
    for i, route in enumerate(routes if isinstance(routes, list) else [None], start=1):
        if not isinstance(route, dict) or not isinstance(route.get("match"), dict):
            problems.append(f"routes #{i}: needs a 'match' mapping and 'owner'/'escalation'")
            continue
        if set(route["match"]) - match_keys:
            problems.append(f"routes #{i}: match keys must be among {sorted(match_keys)}")
        for key in ("owner", "escalation"):
            val = route.get(key)
            if val is not None and val not in ROUTE_TARGETS and not _EMAIL.match(str(val)):
                problems.append(
                    f"routes #{i}: {key} {val!r} must be one of {list(ROUTE_TARGETS)} or an email"
                )
    holdout = _parse_holdout(doc.get("holdout"), problems)
    policy = _parse_policy(doc.get("escalation_policy"), problems)
    second = _parse_second_channel(doc.get("second_channel"), problems)
    if problems:
        raise RulesFileError(source, problems)
    return Routing(
        holdout=holdout,
        data_team=emails["data_team"],
        unassigned_owner=emails["unassigned_owner"],
        default_escalation=emails["default_escalation"],
        admins=lists["admins"],
        managers=lists["managers"],
        daily_budget_per_owner=budget,
        budget_exempt_severities=list(exempt),
        routes=list(routes),
        escalation_policy=policy,
        second_channel=second,
    )


def load_routing(path: Path) -> Routing:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise RulesFileError(
            str(path), ["file not found; create it (see docs/alert-rules.md)"]
        ) from exc
    except yaml.YAMLError as exc:
        raise RulesFileError(str(path), [f"not valid YAML: {exc}"]) from exc
    return parse_routing(doc, str(path))


def _parse_holdout(doc: object, problems: list[str]) -> Holdout:
    """`holdout: {enabled: bool, share: 0 < x < 0.5, salt: text, include_critical: bool}`;
    absent = off.
    """
    if doc is None:
        return Holdout()
    keys = {"enabled", "share", "salt", "include_critical"}
    if not isinstance(doc, dict) or set(doc) - keys:
        problems.append(f"holdout: must be a mapping with keys {', '.join(sorted(keys))}")
        return Holdout()
    enabled = doc.get("enabled", False)
    share = doc.get("share", Holdout.share)
    salt = doc.get("salt", Holdout.salt)
    include_critical = doc.get("include_critical", False)
    if not isinstance(enabled, bool):
        problems.append(f"holdout.enabled: must be true or false, got {enabled!r}")
    if not isinstance(include_critical, bool):
        problems.append(
            f"holdout.include_critical: must be true or false, got {include_critical!r}"
        )
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share < 0.5:
        problems.append(f"holdout.share: must be a fraction between 0 and 0.5, got {share!r}")
        share = Holdout.share
    if not isinstance(salt, str) or not salt:
        problems.append("holdout.salt: must be non-empty text (changing it reshuffles the groups)")
        salt = Holdout.salt
    return Holdout(
        enabled=enabled is True,
        share=float(share),
        salt=salt,
        include_critical=include_critical is True,
    )


def _parse_policy(doc: object, problems: list[str]) -> EscalationPolicy:
    """`escalation_policy: {severities, steps: [{after_hours, notify}], remind_every_hours}`."""
    if doc is None:
        return EscalationPolicy()
    keys = {"severities", "steps", "remind_every_hours"}
    if not isinstance(doc, dict) or set(doc) - keys:
        problems.append(f"escalation_policy: must be a mapping with keys {sorted(keys)}")
        return EscalationPolicy()
    default = EscalationPolicy()
    severities = doc.get("severities", list(default.severities))
    if not isinstance(severities, list) or any(s not in SEVERITIES for s in severities):
        problems.append(f"escalation_policy.severities: a list from {list(SEVERITIES)}")
        severities = list(default.severities)
    steps = []
    raw_steps = doc.get("steps", None)
    if raw_steps is None:
        steps = list(default.steps)
    elif not isinstance(raw_steps, list):
        problems.append("escalation_policy.steps: a list of {after_hours, notify}")
    else:
        last = -1.0
        for i, step in enumerate(raw_steps, start=1):
            hours = step.get("after_hours") if isinstance(step, dict) else None
            notify = step.get("notify") if isinstance(step, dict) else None
            if (
                not isinstance(step, dict)
                or set(step) - {"after_hours", "notify"}
                or isinstance(hours, bool)
                or not isinstance(hours, int | float)
                or hours < 0
            ):
                problems.append(
                    f"escalation_policy.steps #{i}: needs after_hours (hours >= 0) and notify"
                )
                continue
            if notify not in LEVELS and not (isinstance(notify, str) and _EMAIL.match(notify)):
                problems.append(
                    f"escalation_policy.steps #{i}: notify {notify!r} must be one of "
                    f"{list(LEVELS)} or an email address"
                )
                continue
            if hours <= last:
                problems.append(
                    f"escalation_policy.steps #{i}: after_hours must grow from step to step"
                )
            last = float(hours)
            steps.append(EscalationStep(float(hours), notify))
    remind = doc.get("remind_every_hours", default.remind_every_hours)
    if isinstance(remind, bool) or not isinstance(remind, int | float) or remind < 0:
        problems.append("escalation_policy.remind_every_hours: hours >= 0 (0 = no reminders)")
        remind = default.remind_every_hours
    return EscalationPolicy(tuple(severities), tuple(steps), float(remind))


def _parse_second_channel(doc: object, problems: list[str]) -> dict[str, list[str]]:
    """`second_channel: {critical: [slack, teams], data_team: [slack]}` (webhook URLs come from
    the environment: SLACK_WEBHOOK_URL, TEAMS_WEBHOOK_URL and their _DATA_TEAM_ variants).
    """
    if doc is None:
        return {}
    audiences, channels = ("critical", "data_team"), ("slack", "teams")
    if not isinstance(doc, dict) or set(doc) - set(audiences):
        problems.append(f"second_channel: a mapping with keys {list(audiences)}")
        return {}
    out = {}
    for audience, value in doc.items():
        value = value or []
        if not isinstance(value, list) or any(v not in channels for v in value):
            problems.append(f"second_channel.{audience}: a list from {list(channels)}")
            continue
        out[audience] = list(dict.fromkeys(value))
    return out
