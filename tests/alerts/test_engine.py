"""Alert engine behaviour over hand-made days: ids, episodes, cooldown, gate, SLA, audit, budget."""

from __future__ import annotations

import datetime as dt

import pytest

from alerts import TransitionError, snooze, transition
from alerts.engine import EvaluationError, alert_id_for, evaluate
from alerts.rules import columns_from_connection, parse_rules
from tests.alerts.conftest import TEMPLATES, days

DROP = {"active_users_28d": 3, "active_users_prev_28d": 12}


def _rules(wh, cooldown=14, sla=48, extra=None):
    doc = {
        "rules": [
            {
                "id": "usage_drop",
                "title": "Usage dropped",
                "type": "engagement_drop",
                "condition": "active_users_prev_28d >= 3 "
                "and active_users_28d <= 0.6 * active_users_prev_28d",
                "severity": "high",
                "cooldown_days": cooldown,
                "sla_hours": sla,
                "recommendation": {"action": "call", "template": "engagement_drop.j2"},
            },
            {
                "id": "data_gap",
                "title": "Data not landed",
                "type": "data_freshness",
                "condition": "is_data_complete = false or day_is_landed = false",
                "severity": "high",
                "cooldown_days": 0,
                "sla_hours": 12,
                "routing": {"owner": "data_team", "escalation": "data_team"},
                "recommendation": {"action": "email", "template": "data_freshness.j2"},
            },
            *(extra or []),
        ]
    }
    return parse_rules(doc, columns_from_connection(wh.con), TEMPLATES)


def _alerts(wh, where="true"):
    return wh.con.execute(
        f"select alert_id, rule_id, account_id, status, episode_start_date, last_seen_on, "
        f"resolution_reason from alerts.alerts where {where} order by 1"
    ).fetchall()


def _run(wh, rules, routing, day):
    return evaluate(wh.con, rules, routing, day, TEMPLATES)


def test_ids_are_deterministic_and_rerun_changes_nothing(wh, routing):
    rules = _rules(wh)
    d = days(1)[0]
    wh.day(d, {"a1": DROP, "a2": {}}, churn={"a1": 0.8, "a2": 0.1})
    first = _run(wh, rules, routing, d)
    table = wh.con.execute("select * exclude (updated_at) from alerts.alerts").fetchall()
    audit = wh.con.execute("select event_id from alerts.audit_log order by 1").fetchall()
    second = _run(wh, rules, routing, d)
    assert first.new_alerts == second.new_alerts == 1
    assert wh.con.execute("select * exclude (updated_at) from alerts.alerts").fetchall() == table
    assert wh.con.execute("select event_id from alerts.audit_log order by 1").fetchall() == audit
    (alert,) = _alerts(wh)
    assert alert[0] == alert_id_for("usage_drop", "a1", d)
    text = wh.con.execute("select recommendation_text from alerts.alerts").fetchall()[0][0]
    assert text.startswith("Active users at a1 fell from 12 to 3 over the last 28 days.")


def test_condition_that_stays_true_continues_then_auto_resolves(wh, routing):
    rules = _rules(wh)
    d = days(3)
    wh.day(d[0], {"a1": DROP})
    wh.day(d[1], {"a1": {**DROP, "active_users_28d": 2}})
    wh.day(d[2], {"a1": {}})
    _run(wh, rules, routing, d[0])
    r1 = _run(wh, rules, routing, d[1])
    assert r1.continued_alerts == 1 and r1.new_alerts == 0
    (alert,) = _alerts(wh)
    assert alert[3:6] == ("open", d[0], d[1])
    explanation = wh.con.execute("select explanation from alerts.alerts").fetchall()[0][0]
    # The explanation is the one the alert was raised with (the values that fired it).
    assert "active users 28d 3" in explanation and "-75% vs previous 28 days" in explanation
    r2 = _run(wh, rules, routing, d[2])
    assert r2.resolved_alerts == 1
    (alert,) = _alerts(wh)
    assert alert[3] == "resolved" and alert[6] == "condition_cleared"


def test_cooldown_suppresses_repeat_and_later_episode_gets_new_id(wh, routing):
    rules = _rules(wh, cooldown=3)
    d = days(8)
    pattern = [DROP, {}, DROP, DROP, {}, {}, DROP, DROP]  # cleared on d1, back on d2 & d6
    for day, acc in zip(d, pattern, strict=True):
        wh.day(day, {"a1": acc})
    results = [_run(wh, rules, routing, day) for day in d]
    # d1 clears (last seen d0): the 3-day cooldown runs d1..d3, so d2 and d3 are suppressed.
    assert [r.suppressed_cooldown for r in results] == [0, 0, 1, 1, 0, 0, 0, 0]
    rows = _alerts(wh)
    by_start = {r[4]: (r[0], r[3]) for r in rows}
    assert by_start == {
        d[0]: (alert_id_for("usage_drop", "a1", d[0]), "resolved"),
        d[6]: (alert_id_for("usage_drop", "a1", d[6]), "open"),
    }


def test_manual_resolution_starts_cooldown_from_the_episode_not_the_wall_clock(wh, routing):
    rules = _rules(wh, cooldown=3)
    d = days(5)
    for day in d:
        wh.day(day, {"a1": DROP})
    _run(wh, rules, routing, d[0])
    (alert,) = _alerts(wh)
    # Resolved years "later" by the clock (a CRM task closed during a replay).
    transition(wh.con, alert[0], "resolved", "crm", "task done", dt.datetime(2030, 1, 1))
    results = [_run(wh, rules, routing, day) for day in d[1:]]
    assert [r.suppressed_cooldown for r in results] == [1, 1, 1, 0]
    assert results[-1].new_alerts == 1


def test_snooze_hides_and_suppresses_repeats(wh, routing):
    rules = _rules(wh, cooldown=0, sla=24)
    d = days(6)
    for day, acc in zip(d, [DROP, DROP, {}, DROP, DROP, DROP], strict=True):
        wh.day(day, {"a1": acc})
    _run(wh, rules, routing, d[0])
    (alert,) = _alerts(wh)
    snooze(wh.con, alert[0], d[4], "alice@example.com", "on holiday", dt.datetime(2025, 3, 4, 9))
    r1 = _run(wh, rules, routing, d[1])
    assert r1.escalations == 0  # SLA passed but the alert is snoozed
    _run(wh, rules, routing, d[2])  # clears -> resolved
    r3 = _run(wh, rules, routing, d[3])
    assert r3.suppressed_snooze == 1 and r3.new_alerts == 0
    _run(wh, rules, routing, d[4])
    r5 = _run(wh, rules, routing, d[5])  # snooze over
    assert r5.new_alerts == 1
    events = [
        e
        for (e,) in wh.con.execute(
            "select event from alerts.audit_log where alert_id = ? order by event_at", [alert[0]]
        ).fetchall()
    ]
    assert events == ["raised", "snoozed", "resolved"]


def test_sla_breach_escalates_once_to_manager_and_ack_stops_it(wh, routing):
    rules = _rules(wh, sla=24)
    d = days(4)
    for day in d:
        wh.day(day, {"a1": DROP, "a2": {**DROP, "manager_email": "max@example.com"}})
    _run(wh, rules, routing, d[0])
    ids = {acc: aid for aid, _, acc, *_ in _alerts(wh)}
    transition(
        wh.con,
        ids["a2"],
        "acknowledged",
        "bob@example.com",
        "calling them",
        dt.datetime(2025, 3, 4, 8),
    )
    r1 = _run(wh, rules, routing, d[1])  # due at end of d0 + 24h = end of d1 -> breached
    assert r1.escalations == 1
    _run(wh, rules, routing, d[2])
    _run(wh, rules, routing, d[3])
    esc = wh.con.execute("select alert_id, escalated_to from alerts.escalations").fetchall()
    assert esc == [(ids["a1"], "mona@example.com")]
    assert wh.con.execute(
        "select count(*) from alerts.audit_log where event = 'escalated'"
    ).fetchall() == [(1,)]


def test_freshness_gate_holds_alerts_and_raises_one_data_alert(wh, routing):
    rules = _rules(wh)
    d = days(3)
    wh.day(d[0], {"a1": DROP, "a2": DROP})
    # d1: a1's data is incomplete (looks recovered, but we cannot know) and a2 is still bad.
    wh.day(d[1], {"a1": {"is_data_complete": False}, "a2": {**DROP, "is_data_complete": False}})
    wh.day(d[2], {"a1": {}, "a2": DROP}, landed=True)
    _run(wh, rules, routing, d[0])
    r1 = _run(wh, rules, routing, d[1])
    assert r1.accounts_gated == 2 and r1.resolved_alerts == 0  # a1 not auto-resolved on bad data
    fresh = wh.con.execute(
        "select account_id, owner_email, explanation from alerts.alerts "
        "where alert_type = 'data_freshness'"
    ).fetchall()
    assert len(fresh) == 1 and fresh[0][:2] == ("*", "data-team@example.com")
    assert "2 account(s)" in fresh[0][2]
    r2 = _run(wh, rules, routing, d[2])
    assert r2.resolved_alerts == 2  # a1 usage alert and the data alert both clear
    assert {(a[2], a[3]) for a in _alerts(wh)} == {
        ("a1", "resolved"),
        ("a2", "open"),
        ("*", "resolved"),
    }


def test_day_not_landed_gates_every_account(wh, routing):
    rules = _rules(wh)
    d = days(1)[0]
    wh.day(d, {"a1": DROP, "a2": DROP}, landed=False)
    r = _run(wh, rules, routing, d)
    assert r.accounts_gated == 2
    assert [a[1:3] for a in _alerts(wh)] == [("data_gap", "*")]
    assert (
        "has not fully landed"
        in wh.con.execute("select explanation from alerts.alerts").fetchall()[0][0]
    )


def test_audit_log_records_every_state_change(wh, routing):
    rules = _rules(wh)
    d = days(2)
    wh.day(d[0], {"a1": DROP, "a2": DROP})
    wh.day(d[1], {"a1": DROP, "a2": {}})
    _run(wh, rules, routing, d[0])
    ids = {acc: aid for aid, _, acc, *_ in _alerts(wh)}
    at = dt.datetime(2025, 3, 4, 10)
    transition(wh.con, ids["a1"], "acknowledged", "alice@example.com", "looking", at)
    with pytest.raises(TransitionError, match="needs a resolution reason"):
        transition(wh.con, ids["a1"], "resolved", "alice@example.com", "", at)
    later = at + dt.timedelta(hours=2)
    transition(wh.con, ids["a1"], "resolved", "alice@example.com", "customer re-onboarded", later)
    assert transition(wh.con, ids["a1"], "resolved", "x", "again", at)["changed"] is False
    with pytest.raises(TransitionError, match="cannot move to 'acknowledged'"):
        transition(wh.con, ids["a1"], "acknowledged", "alice@example.com", None, at)
    with pytest.raises(TransitionError, match="no alert with id"):
        transition(wh.con, "al_missing", "resolved", "alice@example.com", "x", at)
    _run(wh, rules, routing, d[1])
    log = wh.con.execute(
        "select alert_id, event, from_status, to_status, actor, reason from alerts.audit_log "
        "order by event_at, event"
    ).fetchall()
    assert (
        ids["a1"],
        "acknowledged",
        "open",
        "acknowledged",
        "alice@example.com",
        "looking",
    ) in log
    assert (
        ids["a1"],
        "resolved",
        "acknowledged",
        "resolved",
        "alice@example.com",
        "customer re-onboarded",
    ) in log
    assert (
        ids["a2"],
        "resolved",
        "open",
        "resolved",
        "system:alert-engine",
        "condition_cleared",
    ) in log
    # Every alert's current status is the `to_status` of its latest audit event.
    mismatched = wh.con.execute(
        """
        select a.alert_id from alerts.alerts a
        join (select alert_id, max_by(to_status, event_at) as last_to from alerts.audit_log
              where event in ('raised', 'acknowledged', 'resolved', 'expired') group by 1) l
          using (alert_id)
        where a.status != l.last_to
        """
    ).fetchall()
    assert mismatched == []
    assert len(log) == 5


def test_budget_rolls_lower_priority_alerts_into_digest_summary(wh, routing):
    critical = {
        "id": "big_drop",
        "title": "Big account drop",
        "type": "churn_risk",
        "condition": "arr >= 100000 and active_users_28d <= 0.6 * active_users_prev_28d",
        "severity": "critical",
        "sla_hours": 24,
        "recommendation": {"action": "executive_escalation", "template": "churn_risk.j2"},
    }
    rules = _rules(wh, extra=[critical])
    d = days(1)[0]
    accounts = {f"a{i}": {**DROP, "arr": 1000 * (i + 1)} for i in range(7)}
    accounts["big"] = {**DROP, "arr": 200000}
    wh.day(d, accounts)
    r = _run(wh, rules, routing, d)
    # Budget 5: the critical alert, then the four highest-priority high alerts.
    assert r.new_alerts == 9 and r.budget_overflow == {"alice@example.com": 4}
    rows = wh.con.execute(
        "select account_id, severity, in_digest_summary from alerts.alerts "
        "order by severity = 'critical' desc, priority desc"
    ).fetchall()
    assert rows[0][1:] == ("critical", False)
    summary = [acc for acc, _, rolled in rows if rolled]
    assert sorted(summary) == ["a0", "a1", "a2", "a3"]  # the four smallest accounts roll up


def test_disabling_a_rule_expires_its_open_alerts(wh, routing):
    d = days(2)
    wh.day(d[0], {"a1": DROP})
    wh.day(d[1], {"a1": DROP})
    _run(wh, _rules(wh), routing, d[0])
    rules = _rules(wh)
    rules.by_id("usage_drop").enabled = False
    r = _run(wh, rules, routing, d[1])
    assert r.expired_alerts == 1
    assert _alerts(wh)[0][3] == "expired"


def test_earlier_date_is_refused_and_missing_inputs_are_named(wh, routing):
    rules = _rules(wh)
    d = days(2)
    wh.day(d[0], {"a1": {}})
    wh.day(d[1], {"a1": {}})
    _run(wh, rules, routing, d[1])
    with pytest.raises(EvaluationError, match="already evaluated up to 2025-03-04"):
        _run(wh, rules, routing, d[0])
    wh.con.execute("drop table ml.anomalies")
    with pytest.raises(EvaluationError, match="ml.anomalies"):
        _run(wh, rules, routing, d[1])


def test_shipped_rules_raise_explained_alerts_with_recommendations(wh, rules, routing):
    d = days(1)[0]
    wh.add_accounts(["a1", "a2"])
    wh.day(
        d,
        {"a1": {"days_to_renewal": 30, "health_tier": "at_risk", "plan": "enterprise"}, "a2": {}},
        churn={"a1": 0.82, "a2": 0.05},
    )
    _run(wh, rules, routing, d)
    rows = wh.con.execute(
        "select rule_id, severity, priority, probability, owner_email, escalation_email, "
        "recommended_action, recommendation_text, explanation, drivers_json "
        "from alerts.alerts where account_id = 'a1' order by rule_id"
    ).fetchall()
    by_rule = {r[0]: r for r in rows}
    assert set(by_rule) == {"churn_risk_high", "renewal_at_risk"}
    renewal = by_rule["renewal_at_risk"]
    assert renewal[1] == "critical" and renewal[2] == pytest.approx(8 * 24000 * 0.82)
    # routing.yml sends critical enterprise escalations to the director.
    assert renewal[4:6] == ("alice@example.com", "cs-director@example.com")
    assert renewal[6] == "executive_escalation"
    assert "Renewal in 30 days" in renewal[7] and "Account A1" in renewal[7]
    assert "days_to_renewal between 0 and 90 (days to renewal 30)" in renewal[8]
    assert "Top drivers: logins trend 28d (+0.80)" in renewal[8]
    assert '"feature": "logins_trend_28d"' in renewal[9]


def test_alert_open_too_long_expires_with_reason(wh, routing):
    rules = _rules(wh, cooldown=10)
    rules.by_id("usage_drop").expire_after_days = 2
    d = days(4)
    for day in d:
        wh.day(day, {"a1": DROP})
    results = [_run(wh, rules, routing, day) for day in d]
    assert [r.expired_alerts for r in results] == [0, 0, 1, 0]
    (alert,) = _alerts(wh)
    assert alert[3] == "expired" and alert[6] == "still open after 2 days"
    assert results[3].suppressed_cooldown == 1  # a stale alert is not re-raised the next day
