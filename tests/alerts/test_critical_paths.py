"""Silent paths of critical alerts in the engine, each one a regression test.

Each test reproduces a way a critical condition could hold on a landed day with no open alert
(or with an alert nobody would be sent): expiry followed by cooldown, a short dip muting the
rule, the engine's own close starting a cooldown, the holdout swallowing a critical alert.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from alerts import transition
from alerts.engine import evaluate
from alerts.holdout import Holdout, in_holdout
from tests.alerts.conftest import TEMPLATES, days

# renewal_at_risk (config/rules.yml, the shipped critical rule): renewal within 90 days, churn
# band high or very high, health tier not healthy.
AT_RISK = {"health_tier": "at_risk", "days_to_renewal": 80}


def _day(wh, d, holds: dict[str, bool]):
    wh.day(
        d,
        {a: (AT_RISK if h else {}) for a, h in holds.items()},
        churn={a: (0.8 if h else 0.1) for a, h in holds.items()},
    )


def _open_critical(wh, d) -> set[str]:
    """Accounts with an open or acknowledged critical alert seen on day d."""
    return {
        r[0]
        for r in wh.con.execute(
            "select account_id from alerts.alerts where severity = 'critical' "
            "and status in ('open', 'acknowledged') and last_seen_on = ?",
            [d],
        ).fetchall()
    }


def test_condition_that_keeps_holding_always_has_an_open_critical_alert(wh, rules, routing):
    # Before: expired after 45 days, then the 30-day cooldown muted it (no alert for 30 days).
    # Shortened here: expiry after 4 days, cooldown 30, 12 days of the condition.
    rules.by_id("renewal_at_risk").expire_after_days = 4
    wh.add_accounts(["a1"])
    for d in days(12):
        _day(wh, d, {"a1": True})
        evaluate(wh.con, rules, routing, d, TEMPLATES)
        assert _open_critical(wh, d) == {"a1"}, d
    statuses = wh.con.execute(
        "select status, count(*) from alerts.alerts where severity = 'critical' group by 1"
    ).fetchall()
    assert statuses == [("open", 1)]  # one episode, never expired


def test_short_dip_keeps_the_alert_open_and_does_not_mute_the_rule(wh, rules, routing):
    # Before: a one-day dip resolved the alert and the cooldown muted the rule for 30 days.
    wh.add_accounts(["a1"])
    pattern = [True] * 5 + [False] + [True] * 5 + [False] * 2 + [True] * 3
    for d, holds in zip(days(len(pattern)), pattern, strict=True):
        _day(wh, d, {"a1": holds})
        evaluate(wh.con, rules, routing, d, TEMPLATES)
        if holds:
            assert _open_critical(wh, d) == {"a1"}, d
    assert (
        wh.con.execute("select count(*) from alerts.alerts where severity = 'critical'").fetchall()[
            0
        ][0]
        == 1
    )


def test_engine_close_starts_no_cooldown_for_critical_rules(wh, rules, routing):
    # A real clearing (3 days false) resolves the alert; the condition coming back is news.
    wh.add_accounts(["a1"])
    pattern = [True] * 3 + [False] * 4 + [True] * 3
    for d, holds in zip(days(len(pattern)), pattern, strict=True):
        _day(wh, d, {"a1": holds})
        evaluate(wh.con, rules, routing, d, TEMPLATES)
        if holds:
            assert _open_critical(wh, d) == {"a1"}, d
    reasons = wh.con.execute(
        "select status, resolution_reason from alerts.alerts where severity = 'critical' "
        "order by first_raised_on"
    ).fetchall()
    assert reasons == [("resolved", "condition_cleared"), ("open", None)]


def test_a_person_resolving_starts_the_cooldown_recorded_with_who_and_why(wh, rules, routing):
    wh.add_accounts(["a1"])
    d = days(6)
    _day(wh, d[0], {"a1": True})
    evaluate(wh.con, rules, routing, d[0], TEMPLATES)
    (alert_id,) = wh.con.execute(
        "select alert_id from alerts.alerts where severity = 'critical'"
    ).fetchall()[0]
    transition(
        wh.con,
        alert_id,
        "resolved",
        "ann@example.com",
        "renewal signed",
        dt.datetime(2025, 3, 3, 12),
    )
    for day in d[1:]:
        _day(wh, day, {"a1": True})
        r = evaluate(wh.con, rules, routing, day, TEMPLATES)
        assert r.suppressed_cooldown == 1 and _open_critical(wh, day) == set()
    who = wh.con.execute(
        "select actor, reason from alerts.audit_log where event = 'resolved'"
    ).fetchall()
    assert who == [("ann@example.com", "renewal signed")]


def test_holdout_never_swallows_a_critical_alert_unless_told_to(wh, rules, routing):
    # Before: a critical alert of a holdout account was recorded and never delivered.
    accounts = [f"h{i:02d}" for i in range(30)]
    wh.add_accounts(accounts)
    holdout = Holdout(enabled=True, share=0.4, salt="t")
    held = {a for a in accounts if in_holdout(a, holdout)}
    assert held  # some accounts fall in the holdout group
    d = days(2)
    _day(wh, d[0], dict.fromkeys(accounts, True))
    evaluate(wh.con, rules, dataclasses.replace(routing, holdout=holdout), d[0], TEMPLATES)
    flagged = wh.con.execute(
        "select count(*) from alerts.alerts where is_holdout and severity = 'critical'"
    ).fetchall()[0][0]
    assert flagged == 0
    # An explicit setting puts them in the control group (the KPIs then report them).
    wh.con.execute("delete from alerts.alerts")
    wh.con.execute("delete from alerts.evaluation_runs")
    opt_in = dataclasses.replace(holdout, include_critical=True)
    evaluate(wh.con, rules, dataclasses.replace(routing, holdout=opt_in), d[0], TEMPLATES)
    flagged = {
        r[0]
        for r in wh.con.execute(
            "select account_id from alerts.alerts where is_holdout and severity = 'critical'"
        ).fetchall()
    }
    assert flagged == held
    assert all(in_holdout(a, opt_in, "critical") for a in held)
    assert not any(in_holdout(a, holdout, "critical") for a in held)
