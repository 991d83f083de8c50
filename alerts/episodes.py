"""The alert state machine for one day: continue, raise, resolve and expire episodes."""

from __future__ import annotations

import json

import pandas as pd

from alerts.inputs import DORMANT_TYPE, WHOLE_WAREHOUSE
from alerts.lifecycle import audit_many

ENGINE_ACTOR = "system:alert-engine"


def close(con, ids_sql: str, params: list, status: str, at, reason_sql: str) -> int:
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


def continue_and_select_new(con, as_of, at) -> tuple[int, int, int]:
    """Continue open episodes that still hold; list the other hits as candidate new alerts
    (temp table _ea_new). Returns (continued, suppressed by snooze, suppressed by cooldown).
    """
    continued = con.execute(
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
                       -- a critical rule cools down only after a person resolved it: the
                       -- engine closing it (cleared, expired) must not mute a condition
                       and (r.severity != 'critical' or (c.status = 'resolved' and exists (
                            select 1 from alerts.audit_log l
                            where l.alert_id = c.alert_id and l.event = 'resolved'
                              and l.actor not like 'system:%')))
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
    snoozed, cooling = con.execute(
        "select count(*) filter (where is_snoozed), count(*) filter (where is_cooling "
        "and not is_snoozed) from _ea_new"
    ).fetchall()[0]
    return continued, snoozed, cooling


def insert_raised(con, as_of, at) -> None:
    """Insert the episodes of temp table _ea_raise as open alerts."""
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


def audit_raised(con, as_of, at) -> None:
    """One `raised` audit event per new episode."""
    raised = [a for (a,) in con.execute("select new_alert_id from _ea_raise").fetchall()]
    details = json.dumps({"as_of": str(as_of)})
    audit_many(
        con,
        [(a, "raised", None, "open", ENGINE_ACTOR, "condition met", details) for a in raised],
        at,
    )


def resolve_cleared(con, rule_ids: list[str], as_of, at) -> int:
    """Open alerts whose condition no longer holds (on complete data) resolve themselves."""
    if not rule_ids:
        return 0
    marks = ", ".join("?" for _ in rule_ids)
    return close(
        con,
        f"""
        select alert_id, status from alerts.alerts a
        where a.status in ('open', 'acknowledged') and a.rule_id in ({marks})
          and a.episode_start_date <= ?
          and not exists (select 1 from _ea_keys h
                          where h.rule_id = a.rule_id and h.account_id = a.account_id)
          -- hysteresis: false for clear_after_days days in a row (a short dip keeps it open)
          and a.last_seen_on <= cast(? as date) - (
              select cast(r.clear_after_days as integer) from _ea_rules r
              where r.rule_id = a.rule_id)
          and (a.account_id = '{WHOLE_WAREHOUSE}'
               or a.account_id in (select account_id from _ea_eval where _gate_ok))
        """,
        [*rule_ids, as_of, as_of],
        "resolved",
        at,
        "'condition_cleared'",
    )


def expire(con, rules, has_rows: bool, as_of, at) -> int:
    """Expiry: rule switched off, account gone from the mart, or open for too long."""
    expire_days = {r.id: r.expire_after_days for r in rules}
    frame = pd.DataFrame(
        {"rule_id": list(expire_days), "expire_after_days": list(expire_days.values())}
    )
    enabled_ids = [r.id for r in rules if r.enabled] or ["\x00none"]
    con.register("_ea_expire_df", frame)
    try:
        return _expire(con, enabled_ids, has_rows, as_of, at)
    finally:
        con.unregister("_ea_expire_df")


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
                    when a.alert_type != '{DORMANT_TYPE}' and a.account_id in (
                            select account_id from _ea_eval where coalesce(is_dormant, false))
                        then 'account is dormant (no activity for the dormancy period)'
                    -- a critical alert never expires while its condition holds
                    when date_diff('day', a.episode_start_date, cast(? as date))
                         >= e.expire_after_days
                         and not (a.severity = 'critical' and a.last_seen_on >= cast(? as date))
                        then 'still open after ' || e.expire_after_days || ' days'
                end as why
            from alerts.alerts a left join _ea_expire_df e using (rule_id)
            where a.status in ('open', 'acknowledged')
        ) where why is not null
    """
    return close(con, inner, [*enabled_ids, has_rows, as_of, as_of], "expired", at, "why")
