"""Labels never look past the as-of date plus the label window, and no row of marts.ml_features
is kept or dropped because of what happens after its as-of date.

Two twin accounts share every event up to day K; after K one goes silent. Built by dbt with a
14-day dormancy period (the inactivity label window), their rows must be the same rows, and
every feature and label must be equal wherever the label window ends before K.
"""

import datetime as dt

import duckdb
import pandas as pd
import pytest

from tests.marts import rawdata
from tests.marts.conftest import make_world, marts_module, materialize

WINDOW = 14
K = 40  # the twins are identical through day K; after it the twin is silent


def day(n: int) -> dt.date:
    return rawdata.START + dt.timedelta(days=n)


@pytest.fixture(scope="module")
def frame(tmp_path_factory) -> pd.DataFrame:
    world = make_world(tmp_path_factory.mktemp("ml_labels"))
    world.load_raw()
    with duckdb.connect(str(world.db)) as con:
        con.execute(
            "insert into raw.events select 'twin-' || message_id, 'a_101', "
            "replace(user_id, 'u_001_', 'u_101_'), * exclude (message_id, account_id, user_id) "
            "from raw.events where account_id = 'a_001' and event_date <= ?",
            [day(K)],
        )
        con.execute(
            "insert into raw.users select replace(user_id, 'u_001_', 'u_101_'), 'a_101', "
            "* exclude (user_id, account_id) from raw.users where account_id = 'a_001'"
        )
        con.execute(
            "insert into raw.accounts select 'a_101', account_name || ' twin', "
            "* exclude (account_id, account_name) from raw.accounts where account_id = 'a_001'"
        )
    marts = marts_module()
    with pytest.MonkeyPatch.context() as mp:
        plain = marts.dbt_vars
        mp.setattr(
            marts,
            "dbt_vars",
            lambda *a, **k: {
                **plain(*a, **k),
                "dormant_after_days": WINDOW,
                "active_lookback_days": WINDOW,
            },
        )
        assert materialize(world, rawdata.END).success
    return world.frame(
        "select * from marts.ml_features where account_id in ('a_001', 'a_101') "
        "order by account_id, as_of_date"
    )


def test_no_row_is_kept_or_dropped_because_of_its_future(frame):
    dates = frame.groupby("account_id")["as_of_date"].apply(list)
    assert dates["a_001"] == dates["a_101"]  # the silence removes no row, before or after
    twin = frame[frame["account_id"] == "a_101"].set_index("as_of_date")
    late = twin[pd.to_datetime(twin.index) > pd.Timestamp(day(K + WINDOW))]
    assert not late.empty and not late["is_in_population"].any()  # present, flagged


def test_features_and_labels_are_equal_until_the_label_window_reaches_the_difference(frame):
    a = frame[frame["account_id"] == "a_001"].set_index("as_of_date").drop(columns="account_id")
    b = frame[frame["account_id"] == "a_101"].set_index("as_of_date").drop(columns="account_id")
    as_of = pd.to_datetime(a.index)
    # Features look back only: equal through day K.
    features = [c for c in a.columns if not c.startswith(("label_", "is_"))]
    same_past = as_of <= pd.Timestamp(day(K))
    pd.testing.assert_frame_equal(a.loc[same_past, features], b.loc[same_past, features])
    # Labels look WINDOW days ahead and no further: equal while as_of + WINDOW < the first day
    # the twins differ (K + 1).
    window_before = as_of + pd.Timedelta(days=WINDOW) < pd.Timestamp(day(K + 1))
    assert window_before.sum() >= 4
    pd.testing.assert_series_equal(
        a.loc[window_before, "label_inactive"], b.loc[window_before, "label_inactive"]
    )
    # ... and the silence shows in the labels of the rows whose window covers it.
    covered = ~window_before & b["is_inactive_label_observable"].to_numpy()
    assert (b.loc[covered, "label_inactive"] == 1).any()
    assert (a.loc[covered, "label_inactive"] == 0).all()
    # Rows whose window has not passed on the run's as-of date have no label at all.
    open_window = as_of + pd.Timedelta(days=WINDOW) > pd.Timestamp(rawdata.END)
    assert b.loc[open_window, "label_inactive"].isna().all()
