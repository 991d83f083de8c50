"""Backtest on a small hand-made history: planted churners are found ahead of time."""

from __future__ import annotations

import datetime as dt

import pytest

from alerts.backtest import backtest
from alerts.engine import EvaluationError
from tests.alerts.conftest import D0, days
from tests.alerts.test_engine import _rules


def _history(wh, n_days=60, churn_day=45, percentile=None):
    """Two churners decline from day 20; one account dips and recovers; two stay healthy.
    With `percentile`, every account has a middling churn score at that percentile."""
    for i, day in enumerate(days(n_days)):
        falling = max(1, 12 - max(0, i - 20))  # 12 active users until day 20, then down
        accounts = {
            "c1": {"active_users_28d": falling},
            "c2": {"active_users_28d": falling, "csm_email": "bob@example.com"},
            "dip": {"active_users_28d": 4 if 10 <= i < 15 else 12},
            "h1": {},
            "h2": {"csm_email": "bob@example.com"},
        }
        if i >= churn_day:
            accounts.pop("c1")
            accounts.pop("c2")
        scores = dict.fromkeys(accounts, percentile) if percentile else None
        wh.day(day, accounts, percentile=scores)
    wh.con.execute("create schema if not exists raw")
    wh.con.execute(
        "create table raw.outcomes (account_id string, outcome string, effective_date date, "
        "arr_delta double)"
    )
    churn = D0 + dt.timedelta(days=churn_day)
    wh.con.executemany(
        "insert into raw.outcomes values (?, ?, ?, ?)",
        [["c1", "churned", churn, -24000], ["c2", "churned", churn, -24000],
         ["h1", "renewed", churn, 0]],
    )  # fmt: skip


def test_backtest_finds_planted_churners_with_lead_time(wh):
    _history(wh)
    rules = _rules(wh)
    start, end = days(60)[0], days(60)[-1]
    frame = backtest(wh.con, rules, start, end, horizon_days=60)
    overall = frame.set_index("rule_id").loc["__overall__"]
    assert overall["churned_accounts"] == 2 and overall["churners_caught"] == 2
    assert overall["recall"] == 1.0
    # Alerts: c1, c2 (true) and the dip (false positive).
    assert overall["alerts_raised"] == 3 and overall["precision"] == pytest.approx(0.667)
    # 12 -> <= 7.2 active users after day 25; churn on day 45: ~20 days of warning.
    assert overall["median_lead_days"] == 20
    assert overall["alerts_per_csm_per_week"] == pytest.approx(3 / (2 * 60 / 7), abs=1e-3)
    stored = wh.con.execute(
        "select rule_id, alerts_raised, recall from alerts.backtest_results order by rule_id"
    ).fetchall()
    assert stored == [("__overall__", 3, 1.0), ("usage_drop", 3, 1.0)]
    backtest(wh.con, rules, start, end, horizon_days=60)  # re-run replaces, never duplicates
    assert wh.con.execute("select count(*) from alerts.backtest_results").fetchall() == [(2,)]


def test_backtest_uses_only_each_days_data(wh):
    """Replaying days 0-20 sees only the dip: declines that start later are not seen early."""
    _history(wh)
    rules = _rules(wh)
    frame = backtest(wh.con, rules, days(60)[0], days(20)[-1], horizon_days=60, write=False)
    overall = frame.set_index("rule_id").loc["__overall__"]
    assert overall["churners_caught"] == 0 and overall["alerts_raised"] == 1  # only the dip


def test_backtest_needs_outcomes(wh):
    wh.day(days(1)[0], {"a1": {}})
    with pytest.raises(EvaluationError, match="raw.outcomes is missing"):
        backtest(wh.con, _rules(wh), days(1)[0], days(1)[0])
