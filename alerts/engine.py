"""Evaluate the rules for one as-of date: hits in set-based SQL, then the alert state machine."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from alerts.holdout import mark_holdout
from alerts.lifecycle import audit_many, escalate_overdue
from alerts.rules import Routing, Rule, RuleSet, columns_from_connection, template_env
from alerts.schema import ensure_schema

ENGINE_ACTOR = "system:alert-engine"
WHOLE_WAREHOUSE = "*"  # account_id of data freshness alerts, which concern the whole day
REQUIRED_TABLES = (
    ("marts", "account_health"),
    ("marts", "data_freshness"),
    ("ml", "account_scores"),
    ("ml", "anomalies"),
)
REQUIRED_HEALTH_COLUMNS = (
    "account_id",
    "as_of_date",
    "is_data_complete",
    "arr",
    "csm_email",
    "manager_email",
)


class EvaluationError(RuntimeError):
    """The rules cannot be evaluated for this date; the message says what to fix."""


@dataclass
class EvaluationResult:
    as_of_date: dt.date
    accounts_evaluated: int = 0
    accounts_gated: int = 0
    new_alerts: int = 0
    continued_alerts: int = 0
    resolved_alerts: int = 0
    expired_alerts: int = 0
    suppressed_cooldown: int = 0
    suppressed_snooze: int = 0
    escalations: int = 0
    budget_overflow: dict[str, int] = field(default_factory=dict)
    open_by_severity: dict[str, int] = field(default_factory=dict)
    open_by_type: dict[str, int] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("examples", "as_of_date")} | {
            "as_of_date": str(self.as_of_date)
        }


def alert_id_for(rule_id: str, account_id: str, episode_start: dt.date) -> str:
    """The deterministic alert id (see docs/contracts.md): rule + account + episode start."""
    key = f"{rule_id}|{account_id}|{episode_start.isoformat()}"
    return "al_" + hashlib.md5(key.encode()).hexdigest()[:20]


def evaluation_time(as_of: dt.date) -> dt.datetime:
    """When day D's alerts count as raised: the end of D, when its data is complete (UTC)."""
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())


def table_exists(con, schema: str, table: str) -> bool:
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchall()[0]
    return bool(row[0])


def check_inputs(con, ruleset: RuleSet) -> None:
    """Refuse to run when an input table or a column a rule needs is missing."""
    missing = [f"{s}.{t}" for s, t in REQUIRED_TABLES if not table_exists(con, s, t)]
    if missing:
        raise EvaluationError(
            f"input tables missing: {', '.join(missing)}; build the marts and ml stages first"
        )
    live = columns_from_connection(con)
    gaps = [c for c in REQUIRED_HEALTH_COLUMNS if c not in live]
    if gaps:
        raise EvaluationError(f"marts.account_health lacks required columns {gaps}")
    problems = []
    for rule in ruleset.enabled:
        for col in rule.condition.columns:
            if col not in live:
                problems.append(f"rule {rule.id!r} uses {col!r}, not a column of the inputs")
    if problems:
        raise EvaluationError(
            "rules do not match the warehouse (fix config/rules.yml or the mart): "
            + "; ".join(problems)
        )


def build_eval_table(con, start: dt.date, end: dt.date | None = None, name="_ea_eval") -> None:
    """Temp table `name`: one row per account and as-of day in [start, end] with every column a
    rule may use (health mart + that day's scores and anomalies + landing status), and the gate.
    """
    end = end or start
    has_dim = table_exists(con, "marts", "dim_accounts")
    dim_join = (
        "left join (select account_id, any_value(account_name) as account_name "
        "from marts.dim_accounts group by account_id) d using (account_id)"
        if has_dim
        else ""
    )
    name_expr = "coalesce(d.account_name, h.account_id)" if has_dim else "h.account_id"
    drivers = ", ".join(
        f"max(driver_{i}) filter (where model_name = '{m}') as _{m}_d{i}, "
        f"max(driver_{i}_contribution) filter (where model_name = '{m}') as _{m}_c{i}"
        for m in ("churn", "expansion")
        for i in (1, 2, 3)
    )
    con.execute(
        f"""
        create or replace temp table {name} as
        with health as (
            select * from marts.account_health where as_of_date between $s and $e
        ),
        scores as (
            select
                account_id,
                as_of_date,
                max(probability) filter (where model_name = 'churn') as churn_probability,
                max(percentile) filter (where model_name = 'churn') as churn_percentile,
                max(band) filter (where model_name = 'churn') as churn_band,
                max(probability) filter (where model_name = 'expansion')
                    as expansion_probability,
                max(percentile) filter (where model_name = 'expansion') as expansion_percentile,
                max(band) filter (where model_name = 'expansion') as expansion_band,
                {drivers}
            from ml.account_scores
            where as_of_date between $s and $e
            group by account_id, as_of_date
        ),
        anomalies as (
            select
                account_id,
                activity_date as as_of_date,
                count(*) as anomaly_count,
                count(*) filter (where robust_z < 0) as anomaly_drop_count,
                min(robust_z) as anomaly_min_z,
                max(robust_z) as anomaly_max_z
            from ml.anomalies
            where activity_date between $s and $e
            group by account_id, activity_date
        ),
        freshness as (
            select activity_date as as_of_date, bool_and(is_landed) as is_landed
            from marts.data_freshness
            where activity_date between $s and $e
            group by activity_date
        )
        select
            h.* replace (coalesce(h.is_data_complete, false) as is_data_complete),
            s.* exclude (account_id, as_of_date),
            coalesce(a.anomaly_count, 0) as anomaly_count,
            coalesce(a.anomaly_drop_count, 0) as anomaly_drop_count,
            a.anomaly_min_z,
            a.anomaly_max_z,
            coalesce(f.is_landed, false) as day_is_landed,
            coalesce(h.is_data_complete, false) and coalesce(f.is_landed, false) as _gate_ok,
            {name_expr} as _account_name
        from health h
        left join freshness f using (as_of_date)
        left join scores s using (account_id, as_of_date)
        left join anomalies a using (account_id, as_of_date)
        {dim_join}
        """,
        {"s": start, "e": end},
    )


def _hit_query(rules: list[Rule], gated: bool) -> tuple[str, list]:
    """One UNION ALL over the rules: which accounts fire, the referenced values, each clause."""
    parts, params = [], []
    for rule in rules:
        c = rule.condition
        cols = c.columns or ["account_id"]
        values = ", ".join(f'?, "{col}"' for col in cols)
        clause_list = ", ".join(f"coalesce({sql}, false)" for _, sql, _, _ in c.clause_sql)
        parts.append(
            f"select ? as rule_id, account_id, json_object({values}) as _values, "
            f"list_value({clause_list}) as _clauses from _ea_eval "
            f"where {'_gate_ok and ' if gated else ''}coalesce({c.sql}, false)"
        )
        params.append(rule.id)
        params.extend(cols)
        for _, _, p, _ in c.clause_sql:
            params.extend(p)
        params.extend(c.params)
    return " union all ".join(parts), params


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


def _drivers(row: dict, model: str | None) -> list[dict]:
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


def _route(rule: Rule, row: dict, routing: Routing) -> tuple[str, str]:
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


def evaluate(
    con,
    ruleset: RuleSet,
    routing: Routing,
    as_of: dt.date,
    templates_dir: Path,
) -> EvaluationResult:
    """Evaluate every enabled rule for `as_of` and update alerts.* in one transaction.

    Idempotent: evaluating the same date again leaves the same rows (ids are deterministic).
    Refuses a date earlier than the latest evaluated one (that would rewrite history; use backtest).
    """
    started = time.perf_counter()
    ensure_schema(con)
    check_inputs(con, ruleset)
    latest = con.execute("select max(as_of_date) from alerts.evaluation_runs").fetchall()[0][0]
    if latest is not None and as_of < latest:
        raise EvaluationError(
            f"alerts are already evaluated up to {latest}; evaluating {as_of} again would rewrite "
            "later alert history. Use `python -m alerts backtest` to replay past dates."
        )
    at = evaluation_time(as_of)
    env = template_env(templates_dir)
    result = EvaluationResult(as_of)
    con.execute("begin transaction")
    try:
        _evaluate_in_transaction(con, ruleset, routing, as_of, at, env, result)
        # The run record commits with the alerts it describes: a process killed after the commit
        # must not leave alerts without their run row (a re-run would then count differently).
        result.seconds = round(time.perf_counter() - started, 3)
        con.execute(
            "insert or replace into alerts.evaluation_runs "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                as_of,
                dt.datetime.now(dt.UTC).replace(tzinfo=None),
                result.accounts_evaluated,
                result.accounts_gated,
                result.new_alerts,
                result.continued_alerts,
                result.resolved_alerts,
                result.expired_alerts,
                result.suppressed_cooldown,
                result.suppressed_snooze,
                result.escalations,
                sum(result.budget_overflow.values()),
                result.seconds,
            ],
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return result


def _evaluate_in_transaction(con, ruleset, routing, as_of, at, env, result) -> None:
    build_eval_table(con, as_of)
    total, gated = con.execute(
        "select count(*), count(*) filter (where not _gate_ok) from _ea_eval"
    ).fetchall()[0]
    result.accounts_evaluated, result.accounts_gated = total, gated
    rules_frame = pd.DataFrame(
        {
            "rule_id": [r.id for r in ruleset.enabled],
            "weight": [ruleset.severity_weights[r.severity] for r in ruleset.enabled],
            "model": [r.model for r in ruleset.enabled],
            "cooldown_days": [r.cooldown_days for r in ruleset.enabled],
        }
    ).astype(
        {"rule_id": "object", "model": "object", "weight": "float64", "cooldown_days": "int64"}
    )
    con.register("_ea_rules_df", rules_frame)
    con.execute("create or replace temp table _ea_rules as select * from _ea_rules_df")
    con.unregister("_ea_rules_df")
    # Which rules hold for which accounts: one set-based query, nothing rendered yet.
    account_rules = [r for r in ruleset.enabled if r.alert_type != "data_freshness"]
    con.execute(
        "create or replace temp table _ea_keys (rule_id string, account_id string, "
        "_values json, _clauses boolean[])"
    )
    if account_rules:
        sql, params = _hit_query(account_rules, gated=True)
        con.execute(f"insert into _ea_keys {sql}", params)
    # Data freshness: one alert for the whole day, listing the accounts held back.
    fresh_rows: dict[str, dict] = {}
    for rule in (r for r in ruleset.enabled if r.alert_type == "data_freshness"):
        sql, params = _hit_query([rule], gated=False)
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
    _continue_and_select_new(con, as_of, at, result)
    # Render explanations and recommendations for the new episodes only.
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
        rows.append(_render(rules_by_id[row["_rule_id"]], row, ruleset, routing, as_of, env))
    for rule_id, row in fresh_rows.items():
        raise_it = con.execute(
            "select count(*) from _ea_new where rule_id = ? and not is_snoozed and not is_cooling",
            [rule_id],
        ).fetchall()[0][0]
        if raise_it:
            rows.append(_render(rules_by_id[rule_id], row, ruleset, routing, as_of, env))
    frame = pd.DataFrame(rows, columns=list(_HIT_COLUMNS))
    frame = frame.astype({"priority": "float64", "probability": "float64", "arr": "float64"})
    con.register("_ea_raise_df", frame)
    con.execute("create or replace temp table _ea_raise as select * from _ea_raise_df")
    con.unregister("_ea_raise_df")
    _apply(con, ruleset, routing, as_of, at, result)


_HIT_COLUMNS = (
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


def _render(rule: Rule, row: dict, ruleset: RuleSet, routing: Routing, as_of, env) -> dict:
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
    drivers = _drivers(row, rule.model)
    if drivers:
        text += ". Top drivers: " + ", ".join(d["label"] for d in drivers)
    probability = row.get(f"{rule.model}_probability") if rule.model else None
    arr = row.get("arr")
    factor = 1.0 if rule.model is None else (0.5 if probability is None else float(probability))
    priority = ruleset.severity_weights[rule.severity] * float(arr or 0.0) * factor
    owner, escalation = _route(rule, row, routing)
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


def _close(con, ids_sql: str, params: list, status: str, at, reason_sql: str) -> int:
    """Close the alerts selected by `ids_sql` (alert_id, status, reason), auditing each."""
    rows = con.execute(f"select alert_id, status, {reason_sql} from ({ids_sql})", params).fetchall()
    if not rows:
        return 0
    frame = pd.DataFrame(rows, columns=["alert_id", "from_status", "reason"])
    con.register("_ea_close_df", frame)
    con.execute(
        """
        update alerts.alerts a set status = ?, resolved_at = ?, resolution_reason = c.reason,
            updated_at = ?
        from _ea_close_df c where a.alert_id = c.alert_id
        """,
        [status, at, at],
    )
    con.unregister("_ea_close_df")
    audit_many(con, [(a, status, f, status, ENGINE_ACTOR, r, None) for a, f, r in rows], at)
    return len(rows)


def _continue_and_select_new(con, as_of, at, result: EvaluationResult) -> None:
    """Continue open episodes that still hold; list the other hits as candidate new alerts."""
    result.continued_alerts = con.execute(
        """
        select count(*) from alerts.alerts a join _ea_keys k using (rule_id, account_id)
        where a.status in ('open', 'acknowledged') and a.first_raised_on < ?
        """,
        [as_of],
    ).fetchall()[0][0]
    # Only small columns are refreshed: the explanation stays the one the alert was raised with
    # (and rewriting long text columns for every open alert each day is slow in DuckDB).
    con.execute(
        """
        update alerts.alerts a set
            last_seen_on = greatest(a.last_seen_on, $d),
            probability = coalesce(v.probability, a.probability),
            arr = coalesce(v.arr, a.arr),
            priority = coalesce(v.priority, a.priority),
            updated_at = $at
        from (
            select k.rule_id, k.account_id, p.probability, cast(e.arr as double) as arr,
                r.weight * coalesce(cast(e.arr as double), 0)
                    * case when r.model is null then 1.0 else coalesce(p.probability, 0.5) end
                    as priority
            from _ea_keys k
            join _ea_rules r using (rule_id)
            left join _ea_eval e using (account_id)
            left join lateral (
                select case r.model when 'churn' then e.churn_probability
                                    when 'expansion' then e.expansion_probability end
                       as probability
            ) p on true
        ) v
        where a.rule_id = v.rule_id and a.account_id = v.account_id
          and a.status in ('open', 'acknowledged')
        """,
        {"d": as_of, "at": at},
    )
    con.execute(
        """
        create or replace temp table _ea_new as
        select k.*,
            'al_' || left(md5(k.rule_id || '|' || k.account_id || '|' || cast($d as string)), 20)
                as new_alert_id,
            exists (
                select 1 from alerts.snoozes s
                where s.rule_id = k.rule_id and s.account_id = k.account_id
                  and s.snoozed_until >= $d
            ) as is_snoozed,
            exists (
                select 1 from alerts.alerts c
                where c.rule_id = k.rule_id and c.account_id = k.account_id
                  and c.status in ('resolved', 'expired')
                  -- counted from the day after the episode was last seen (or the resolution
                  -- day if earlier), so a wall-clock resolution during a replay cannot mute
                  -- a rule for the rest of the replay
                  and (least(cast(c.resolved_at as date), c.last_seen_on + 1)
                       + cast(r.cooldown_days as integer) > $d
                       or c.alert_id = 'al_' || left(md5(k.rule_id || '|' || k.account_id
                                                        || '|' || cast($d as string)), 20))
            ) as is_cooling
        from _ea_keys k join _ea_rules r using (rule_id)
        where not exists (
            select 1 from alerts.alerts a
            where a.rule_id = k.rule_id and a.account_id = k.account_id
              and a.status in ('open', 'acknowledged')
        )
        """,
        {"d": as_of},
    )
    result.suppressed_snooze, result.suppressed_cooldown = con.execute(
        "select count(*) filter (where is_snoozed), count(*) filter (where is_cooling "
        "and not is_snoozed) from _ea_new"
    ).fetchall()[0]


def _apply(con, ruleset: RuleSet, routing: Routing, as_of, at, result: EvaluationResult) -> None:
    con.execute(
        """
        insert into alerts.alerts (
            alert_id, rule_id, alert_type, title, account_id, account_name, episode_start_date,
            first_raised_on, last_seen_on, status, severity, priority, probability, arr,
            owner_email, escalation_email, sla_due_at, explanation, explanation_json,
            drivers_json, recommended_action, recommendation_text, in_digest_summary, updated_at)
        select new_alert_id, rule_id, alert_type, title, account_id, account_name, $d, $d, $d,
            'open', severity, priority, probability, arr, owner_email, escalation_email,
            $at + to_milliseconds(cast(round(sla_hours * 3600000) as bigint)), explanation,
            explanation_json, drivers_json, recommended_action, recommendation_text, false, $at
        from _ea_raise
        """,
        {"d": as_of, "at": at},
    )
    # Control group: recorded like any alert, never delivered (notifications skips is_holdout).
    mark_holdout(con, routing.holdout, as_of)
    raised = [a for (a,) in con.execute("select new_alert_id from _ea_raise").fetchall()]
    details = json.dumps({"as_of": str(as_of)})
    audit_many(
        con,
        [(a, "raised", None, "open", ENGINE_ACTOR, "condition met", details) for a in raised],
        at,
    )
    result.new_alerts = con.execute(
        "select count(*) from alerts.alerts where first_raised_on = ? and status != 'expired'",
        [as_of],
    ).fetchall()[0][0]
    # 3. Open alerts whose condition no longer holds (on complete data) resolve themselves.
    evaluated = [r.id for r in ruleset.enabled]
    if evaluated:
        marks = ", ".join("?" for _ in evaluated)
        result.resolved_alerts = _close(
            con,
            f"""
            select alert_id, status from alerts.alerts a
            where a.status in ('open', 'acknowledged') and a.rule_id in ({marks})
              and a.episode_start_date <= ?
              and not exists (select 1 from _ea_keys h
                              where h.rule_id = a.rule_id and h.account_id = a.account_id)
              and (a.account_id = '{WHOLE_WAREHOUSE}'
                   or a.account_id in (select account_id from _ea_eval where _gate_ok))
            """,
            [*evaluated, as_of],
            "resolved",
            at,
            "'condition_cleared'",
        )
    # 4. Expiry: rule switched off, account gone from the mart, or open for too long.
    expire_days = {r.id: r.expire_after_days for r in ruleset.rules}
    has_rows = result.accounts_evaluated > 0
    frame = pd.DataFrame(
        {"rule_id": list(expire_days), "expire_after_days": list(expire_days.values())}
    )
    con.register("_ea_expire_df", frame)
    enabled_ids = [r.id for r in ruleset.enabled] or ["\x00none"]
    result.expired_alerts = _expire(con, enabled_ids, has_rows, as_of, at)
    con.unregister("_ea_expire_df")
    # 5. Alert budget: each owner gets their most important new alerts individually.
    _apply_budget(con, routing, as_of, result)
    # 6. SLA breaches as of the end of the day.
    result.escalations = len(escalate_overdue(con, at))
    for sev, n in con.execute(
        "select severity, count(*) from alerts.alerts where status in ('open', 'acknowledged') "
        "group by 1"
    ).fetchall():
        result.open_by_severity[sev] = n
    for typ, n in con.execute(
        "select alert_type, count(*) from alerts.alerts where status in ('open', 'acknowledged') "
        "group by 1"
    ).fetchall():
        result.open_by_type[typ] = n
    cur = con.execute(
        """
        select alert_id, account_name, rule_id, severity, priority, explanation
        from alerts.alerts where first_raised_on = ? order by priority desc nulls last limit 5
        """,
        [as_of],
    )
    names = [d[0] for d in cur.description]
    result.examples = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _expire(con, enabled_ids: list[str], has_rows: bool, as_of, at) -> int:
    marks = ", ".join("?" for _ in enabled_ids)
    inner = f"""
        select alert_id, status, why from (
            select a.alert_id, a.status,
                case
                    when a.rule_id not in ({marks}) then
                        'rule ' || a.rule_id || ' is disabled or no longer in rules.yml'
                    when a.account_id != '{WHOLE_WAREHOUSE}' and ?
                         and a.account_id not in (select account_id from _ea_eval)
                        then 'account no longer in marts.account_health'
                    when date_diff('day', a.episode_start_date, cast(? as date))
                         >= e.expire_after_days
                        then 'still open after ' || e.expire_after_days || ' days'
                end as why
            from alerts.alerts a left join _ea_expire_df e using (rule_id)
            where a.status in ('open', 'acknowledged')
        ) where why is not null
    """
    return _close(con, inner, [*enabled_ids, has_rows, as_of], "expired", at, "why")


def _apply_budget(con, routing: Routing, as_of, result: EvaluationResult) -> None:
    exempt = routing.budget_exempt_severities or ["\x00none"]
    marks = ", ".join("?" for _ in exempt)
    con.execute(
        f"""
        update alerts.alerts a set in_digest_summary = r.over
        from (
            select alert_id,
                row_number() over (
                    partition by owner_email
                    order by case severity when 'critical' then 0 when 'high' then 1
                             when 'medium' then 2 else 3 end,
                             priority desc nulls last, alert_id
                ) > ? and severity not in ({marks}) as over
            from alerts.alerts
            where first_raised_on = ? and status in ('open', 'acknowledged')
              and account_id != '{WHOLE_WAREHOUSE}'
        ) r
        where a.alert_id = r.alert_id
        """,
        [routing.daily_budget_per_owner, *exempt, as_of],
    )
    result.budget_overflow = dict(
        con.execute(
            """
            select owner_email, count(*) from alerts.alerts
            where first_raised_on = ? and in_digest_summary group by 1 order by 2 desc
            """,
            [as_of],
        ).fetchall()
    )
