"""Dormancy: an account silent for the dormancy period is dormant until it is active again."""

import datetime as dt

import duckdb
import pytest

from tests.marts import rawdata
from tests.marts.conftest import make_world, marts_module, materialize

DORMANT_AFTER = 14
# a_001 is silent on days 30-49 and back on day 50; a_004 is silent from day 46 to the end.
A1_SILENT = (30, 49)
A4_LAST = 45


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = make_world(tmp_path_factory.mktemp("dormancy"))
    world.load_raw()
    with duckdb.connect(str(world.db)) as con:
        con.execute(
            "delete from raw.events where (account_id = 'a_001' and event_date between ? and ?) "
            "or (account_id = 'a_004' and event_date > ?)",
            [day(A1_SILENT[0]), day(A1_SILENT[1]), day(A4_LAST)],
        )
    marts = marts_module()
    with pytest.MonkeyPatch.context() as mp:
        plain = marts.dbt_vars
        mp.setattr(
            marts,
            "dbt_vars",
            lambda *a, **k: {**plain(*a, **k), "dormant_after_days": DORMANT_AFTER},
        )
        assert materialize(world, rawdata.END).success
    return world


def day(n: int) -> dt.date:
    return rawdata.START + dt.timedelta(days=n)


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
    ) == [("a_001",), ("a_004",)]


def test_dim_accounts_says_which_accounts_are_dormant_on_the_as_of_date(world):
    rows = world.query(
        "select account_id, is_dormant, dormant_since_date from marts.dim_accounts "
        "where is_dormant or account_id = 'a_001' order by 1"
    )
    assert rows == [
        ("a_001", False, None),
        ("a_004", True, day(A4_LAST + DORMANT_AFTER)),
    ]
