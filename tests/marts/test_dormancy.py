"""Dormancy: an account silent for the dormancy period is dormant until it is active again."""

import datetime as dt

import pytest

from tests.marts.conftest import A1_SILENT, A4_LAST, DORMANT_AFTER, TWIN_UNTIL
from tests.marts.conftest import day_number as day


@pytest.fixture(scope="module")
def world(silent_world):
    return silent_world


def test_a_silence_of_the_dormancy_period_is_one_episode_with_its_real_start(world):
    episodes = world.query(
        "select account_id, last_active_date, inactive_since_date, dormant_since_date, "
        "returned_on_date, is_current from marts.account_dormancy order by account_id"
    )
    last1 = day(A1_SILENT[0] - 1)
    assert episodes == [
        (
            "a_001",
            last1,
            last1 + dt.timedelta(days=1),
            last1 + dt.timedelta(days=DORMANT_AFTER),
            day(A1_SILENT[1] + 1),
            False,
        ),
        (
            "a_004",
            day(A4_LAST),
            day(A4_LAST + 1),
            day(A4_LAST + DORMANT_AFTER),
            None,
            True,
        ),
        (
            "a_102",
            day(TWIN_UNTIL),
            day(TWIN_UNTIL + 1),
            day(TWIN_UNTIL + DORMANT_AFTER),
            None,
            True,
        ),
    ]


def test_dormant_days_are_flagged_in_account_health_and_end_when_the_account_is_back(world):
    rows = dict(
        world.query(
            "select as_of_date, is_dormant from marts.account_health where account_id = 'a_001'"
        )
    )
    first_dormant = day(A1_SILENT[0] - 1 + DORMANT_AFTER)
    assert rows[first_dormant - dt.timedelta(days=1)] is False
    assert rows[first_dormant] is True and rows[day(A1_SILENT[1])] is True
    assert rows[day(A1_SILENT[1] + 1)] is False  # active again: back
    counted = world.query(
        "select days_dormant from marts.account_health where account_id = 'a_001' "
        "and as_of_date = ?",
        [first_dormant],
    )
    assert counted == [(0,)]
    # No other account is ever dormant: quiet days that are not the whole period do not count.
    assert world.query(
        "select distinct account_id from marts.account_health where is_dormant order by 1"
    ) == [("a_001",), ("a_004",), ("a_102",)]


def test_dim_accounts_says_which_accounts_are_dormant_on_the_as_of_date(world):
    rows = world.query(
        "select account_id, is_dormant, dormant_since_date from marts.dim_accounts "
        "where is_dormant or account_id = 'a_001' order by 1"
    )
    assert rows == [
        ("a_001", False, None),
        ("a_004", True, day(A4_LAST + DORMANT_AFTER)),
        ("a_102", True, day(TWIN_UNTIL + DORMANT_AFTER)),
    ]
