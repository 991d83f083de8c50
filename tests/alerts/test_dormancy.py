"""A dormant account is not alerted: its open alerts expire and it gets one went-dormant notice."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from alerts.engine import evaluate
from tests.alerts.conftest import COLUMNS, HEALTHY, TEMPLATES, days

DORMANT_REASON = "account is dormant (no activity for the dormancy period)"
DROP = {"active_users_28d": 3, "active_users_prev_28d": 12, "logins_trend_28d": -0.7}


def _day(wh, day: dt.date, accounts: dict[str, dict], dormant: dict[str, int]) -> None:
    """One day of rows; `dormant` maps account -> days dormant (0 = went dormant today)."""
    rows = []
    for account_id, overrides in accounts.items():
        values = {**HEALTHY, **overrides}
        n = dormant.get(account_id)
        since = None if n is None else day - dt.timedelta(days=n)
        rows.append([account_id, day, *(values[c] for c in HEALTHY), n is not None, since, n])
    frame = pd.DataFrame(
        rows, columns=[*COLUMNS, "is_dormant", "dormant_since_date", "days_dormant"]
    )
    frame["days_dormant"] = frame["days_dormant"].astype("Int64")
    wh.con.register("_dormant_df", frame)
    wh.con.execute("insert into marts.account_health by name select * from _dormant_df")
    wh.con.unregister("_dormant_df")
    for account_id in accounts:
        wh.score(day, account_id, 80)  # the shipped usage rules need a churn score of 75+
    wh.con.execute(
        "insert into marts.data_freshness values (?, true, 100, 0, ?)",
        [day, dt.datetime.combine(day, dt.time(23))],
    )


def _alerts(wh):
    return wh.con.execute(
        "select rule_id, account_id, status, resolution_reason from alerts.alerts "
        "order by first_raised_on, rule_id"
    ).fetchall()


def test_dormant_account_gets_one_notice_no_risk_alerts_and_comes_back(wh, rules, routing):
    wh.con.execute(
        "alter table marts.account_health add column is_dormant boolean default false; "
        "alter table marts.account_health add column dormant_since_date date; "
        "alter table marts.account_health add column days_dormant integer"
    )
    wh.add_accounts(["a", "b"])
    d0, d1, d2, d3 = days(4)
    # Day 0: a's usage has collapsed: an engagement-drop alert.
    _day(wh, d0, {"a": DROP, "b": {}}, {})
    evaluate(wh.con, rules, routing, d0, TEMPLATES)
    assert [(r, a, s) for r, a, s, _ in _alerts(wh)] == [("engagement_drop", "a", "open")]

    # Day 1: a has gone dormant. The same collapsed numbers raise nothing new; the open alert
    # expires because the account is dormant, and the one notice goes out.
    _day(wh, d1, {"a": DROP, "b": {}}, {"a": 0})
    result = evaluate(wh.con, rules, routing, d1, TEMPLATES)
    assert result.new_alerts == 1
    assert _alerts(wh) == [
        (
            "engagement_drop",
            "a",
            "expired",
            "account is dormant (no activity for the dormancy period)",
        ),
        ("went_dormant", "a", "open", None),
    ]

    # Day 2: still dormant: nothing new, no second notice.
    _day(wh, d2, {"a": DROP, "b": {}}, {"a": 1})
    assert evaluate(wh.con, rules, routing, d2, TEMPLATES).new_alerts == 0
    assert len(_alerts(wh)) == 2

    # Day 3: someone at a is active again: the notice resolves and the ordinary rules see a
    # again (the drop holds; only the rule's cooldown after the expired alert holds it back).
    _day(wh, d3, {"a": DROP, "b": {}}, {})
    result = evaluate(wh.con, rules, routing, d3, TEMPLATES)
    assert ("went_dormant", "a", "resolved", "condition_cleared") in _alerts(wh)
    assert result.suppressed_cooldown == 1


def test_accounts_dormant_long_ago_raise_nothing_on_the_first_run(wh, rules, routing):
    """A history load where most accounts went silent long ago: no alert, and no notice."""
    wh.con.execute(
        "alter table marts.account_health add column is_dormant boolean default false; "
        "alter table marts.account_health add column dormant_since_date date; "
        "alter table marts.account_health add column days_dormant integer"
    )
    ids = [f"old{i}" for i in range(20)]
    wh.add_accounts([*ids, "live"])
    silent = {
        "active_users_28d": 0,
        "active_users_prev_28d": 0,
        "logins_28d": 0,
        "logins_prev_28d": 0,
        "days_since_last_activity": 400,
        "health_score": 5.0,
        "health_tier": "critical",
        "seat_utilisation": 0.0,
        "feature_breadth_28d": 0,
    }
    d0 = days(1)[0]
    _day(wh, d0, {**dict.fromkeys(ids, silent), "live": {}}, dict.fromkeys(ids, 300))
    result = evaluate(wh.con, rules, routing, d0, TEMPLATES)
    assert result.new_alerts == 0
    assert _alerts(wh) == []
