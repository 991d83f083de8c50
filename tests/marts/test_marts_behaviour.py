"""What a CSM or analyst would check by hand on marts built from a small known dataset."""

import datetime as dt

import dagster as dg

from tests.marts.rawdata import (
    CHURN_DATE,
    END,
    LATE_DAY,
    MISSING_DAY,
    SEATS_CHANGE_DATE,
    START,
)


def _health(world, account_id, day):
    cols = (
        "active_users_28d, logins_28d, logins_trend_28d, active_users_trend_28d, seat_utilisation, "
        "seats, health_score, health_tier, score_seat_utilisation, score_usage_trend, "
        "score_admin_recency, days_since_admin_activity"
    )
    row = world.query(
        f"select {cols} from marts.account_health where account_id = ? and as_of_date = ?",
        [account_id, day],
    )
    assert len(row) == 1, f"expected one account_health row for {account_id} on {day}"
    return dict(zip([c.strip() for c in cols.split(",")], row[0], strict=True))


def test_users_who_stop_logging_in_show_a_falling_trend_and_a_lower_score(built):
    world, _ = built
    steady, fading = _health(world, "a_001", END), _health(world, "a_002", END)
    assert fading["logins_trend_28d"] < -0.5
    assert fading["active_users_trend_28d"] < 0
    assert steady["logins_trend_28d"] > -0.1
    assert fading["health_score"] < steady["health_score"] - 30
    assert fading["health_tier"] in ("at_risk", "critical")
    assert steady["health_tier"] == "healthy"
    # the drop is explained by the components that moved
    assert fading["score_usage_trend"] < steady["score_usage_trend"]
    assert fading["score_admin_recency"] == 0  # admin gone for more than 30 days
    # a month earlier, before the fade, the two accounts looked alike
    early = dt.date(2025, 1, 26)
    assert (
        abs(
            _health(world, "a_002", early)["health_score"]
            - _health(world, "a_001", early)["health_score"]
        )
        < 5
    )


def test_seat_utilisation_is_active_users_over_seats_of_that_day(built):
    world, _ = built
    before = _health(world, "a_004", SEATS_CHANGE_DATE - dt.timedelta(days=1))
    after = _health(world, "a_004", END)
    assert (before["seats"], before["active_users_28d"]) == (5, 4)
    assert before["seat_utilisation"] == 4 / 5
    assert (after["seats"], after["active_users_28d"]) == (10, 4)
    assert after["seat_utilisation"] == 4 / 10
    # and the CRM history keeps both versions
    versions = world.query(
        "select seats, valid_from, valid_to from marts.dim_accounts_history "
        "where account_id = 'a_004' order by version_number"
    )
    assert versions == [(5, START, SEATS_CHANGE_DATE), (10, SEATS_CHANGE_DATE, None)]


def test_a_day_that_never_landed_is_marked_missing_not_zero(built):
    world, _ = built
    rows = world.query(
        "select account_id, is_data_landed, logins, active_users "
        "from marts.fct_account_daily_engagement where activity_date = ? order by 1",
        [MISSING_DAY],
    )
    assert [r[0] for r in rows] == ["a_001", "a_002", "a_003", "a_004"]
    assert all(r[1:] == (False, None, None) for r in rows)
    assert world.query(
        "select is_landed, events_loaded from marts.data_freshness where activity_date = ?",
        [MISSING_DAY],
    ) == [(False, 0)]
    # the health row a week later says its window is incomplete
    complete = world.query(
        "select is_data_complete from marts.account_health where account_id = 'a_001' "
        "and as_of_date = ?",
        [MISSING_DAY + dt.timedelta(days=3)],
    )
    assert complete == [(False,)]


def test_every_account_day_is_present_including_quiet_days(built):
    world, _ = built
    per_account = dict(
        world.query(
            "select account_id, count(*) from marts.fct_account_daily_engagement group by 1"
        )
    )
    days = (END - START).days + 1
    assert per_account == {
        "a_001": days,
        "a_002": days,  # including the days after its users went quiet (zeros, not gaps)
        "a_003": (CHURN_DATE - START).days + 1,  # ends on its churn day
        "a_004": days,
        # a_005 gave no tracking consent: no engagement rows at all
    }
    quiet = world.query(
        "select logins from marts.fct_account_daily_engagement "
        "where account_id = 'a_002' and activity_date = ?",
        [END - dt.timedelta(days=1)],
    )
    assert quiet == [(1,)]  # only user 8 is left


def test_late_events_count_on_their_own_day(built):
    world, _ = built
    assert world.query(
        "select logins from marts.fct_account_daily_engagement "
        "where account_id = 'a_001' and activity_date = ?",
        [LATE_DAY],
    ) == [(8,)]
    assert world.query(
        "select late_events_after from marts.data_freshness where activity_date = ?", [LATE_DAY]
    ) == [(32,)]


def test_ml_features_are_weekly_with_labels_from_later_outcomes(built):
    world, _ = built
    rows = world.query(
        "select as_of_date, label_churn, is_label_observable from marts.ml_features "
        "where account_id = 'a_003' order by as_of_date"
    )
    dates = [r[0] for r in rows]
    assert all(d.weekday() == 0 for d in dates)
    assert max(dates) < CHURN_DATE
    labelled = {d for d, churn, _ in rows if churn == 1}
    assert labelled == {d for d in dates if 0 < (CHURN_DATE - d).days <= 30}
    # the run's own as-of date is there for scoring, never observable
    assert world.query(
        "select count(*), bool_or(is_label_observable) from marts.ml_features where as_of_date = ?",
        [END],
    ) == [(3, False)]


def test_dbt_tests_are_reported_as_asset_checks_and_marts_carry_metadata(built):
    _, result = built
    checks = result.get_asset_check_evaluations()
    assert len(checks) > 50
    failed = [c.check_name for c in checks if not c.passed]
    assert failed == []
    health = [
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey(["marts", "account_health"])
    ]
    meta = health[0].materialization.metadata
    assert meta["as_of_date"].value == END.isoformat()
    assert meta["full_refresh"].value is True
    assert meta["accounts_on_as_of_date"].value == 3
    assert meta["rows"].value > 100
