"""Labels never look past the as-of date plus the label window, and no row of marts.ml_features
is kept or dropped because of what happens after its as-of date.

Two twin accounts share every event up to day K; after K one goes silent. Built by dbt with a
14-day dormancy period (the inactivity label window), their rows must be the same rows, and
every feature and label must be equal wherever the label window ends before K.
"""

import pandas as pd
import pytest

from tests.marts import rawdata
from tests.marts.conftest import DORMANT_AFTER, TWIN_UNTIL
from tests.marts.conftest import day_number as day

WINDOW = DORMANT_AFTER
K = TWIN_UNTIL  # a_002 and its twin a_102 are identical through day K; after it a_102 is silent


@pytest.fixture(scope="module")
def frame(silent_world) -> pd.DataFrame:
    return silent_world.frame(
        "select * from marts.ml_features where account_id in ('a_002', 'a_102') "
        "order by account_id, as_of_date"
    )


def test_no_row_is_kept_or_dropped_because_of_its_future(frame):
    dates = frame.groupby("account_id")["as_of_date"].apply(list)
    assert dates["a_002"] == dates["a_102"]  # the silence removes no row, before or after
    twin = frame[frame["account_id"] == "a_102"].set_index("as_of_date")
    late = twin[pd.to_datetime(twin.index) > pd.Timestamp(day(K + WINDOW))]
    assert not late.empty and not late["is_in_population"].any()  # present, flagged


def test_features_and_labels_are_equal_until_the_label_window_reaches_the_difference(frame):
    a = frame[frame["account_id"] == "a_002"].set_index("as_of_date").drop(columns="account_id")
    b = frame[frame["account_id"] == "a_102"].set_index("as_of_date").drop(columns="account_id")
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
