"""The date split: which rows are used never depends on their future, and the embargo holds."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.config import inactivity_config
from ml.split import date_split, usable_rows

RUN_DATE = pd.Timestamp("2025-12-29")
WINDOW = 56


def frame_from(seed: int, accounts: int, weeks: int) -> pd.DataFrame:
    """A weekly grid as marts.ml_features shapes it: past facts, the label, observability."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(RUN_DATE - pd.Timedelta(weeks=weeks - 1), RUN_DATE, freq="7D")
    f = pd.DataFrame(
        [(f"a{i}", d) for i in range(accounts) for d in dates], columns=["account_id", "as_of_date"]
    )
    f["days_since_last_activity"] = rng.integers(0, 200, len(f)).astype(float)
    f["is_dormant"] = f["days_since_last_activity"] >= 90
    f["is_in_population"] = (f["days_since_last_activity"] < 90) & ~f["is_dormant"]
    f["is_inactive_label_observable"] = f["as_of_date"] + pd.Timedelta(days=WINDOW) <= RUN_DATE
    f["label_inactive"] = np.where(
        f["is_inactive_label_observable"], rng.integers(0, 2, len(f)), np.nan
    )
    return f


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), accounts=st.integers(3, 30), weeks=st.integers(20, 60))
def test_which_rows_are_used_does_not_depend_on_their_labels(seed, accounts, weeks):
    """Rows are kept or dropped on past facts and dates alone: re-drawing every label (the
    future) leaves the training, validation and test rows exactly the same."""
    cfg = inactivity_config(horizon_days=WINDOW, test_fraction=0.3)
    f = frame_from(seed, accounts, weeks)
    other = f.copy()
    known = other["label_inactive"].notna()
    other.loc[known, "label_inactive"] = 1 - other.loc[known, "label_inactive"]
    keys = ["account_id", "as_of_date"]
    assert usable_rows(f, cfg)[keys].equals(usable_rows(other, cfg)[keys])
    try:
        a, b = date_split(f, cfg), date_split(other, cfg)
    except ValueError:
        return  # too little history for a split: the same for both
    for part in ("train", "validation", "test"):
        assert getattr(a, part)[keys].equals(getattr(b, part)[keys])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), gap=st.integers(0, 120), test_weeks=st.integers(1, 12))
def test_training_labels_never_reach_the_test_period(seed, gap, test_weeks):
    f = frame_from(seed, 10, 60)
    test_end = RUN_DATE - pd.Timedelta(days=WINDOW)
    test_start = test_end - pd.Timedelta(weeks=test_weeks)
    train_end = test_start - pd.Timedelta(days=gap)
    cfg = inactivity_config(
        horizon_days=WINDOW,
        train_end=train_end.date().isoformat(),
        test_start=test_start.date().isoformat(),
        test_end=test_end.date().isoformat(),
    )
    if gap <= WINDOW:
        with pytest.raises(ValueError, match="training labels would see the test period"):
            date_split(f, cfg)
        return
    split = date_split(f, cfg)
    latest = max(split.train["as_of_date"].max(), split.validation["as_of_date"].max())
    # a training row's label looks WINDOW days ahead: it must end before the test period
    assert latest + pd.Timedelta(days=WINDOW) < split.test["as_of_date"].min()
    assert split.test["as_of_date"].between(test_start, test_end).all()
    assert split.test["is_in_population"].all() and not split.test["is_dormant"].any()


def test_default_dates_leave_the_embargo_and_say_what_is_missing():
    f = frame_from(1, 10, 60)
    split = date_split(f, inactivity_config(horizon_days=WINDOW))
    assert split.train_end + pd.Timedelta(days=WINDOW) < split.test_start
    short = frame_from(1, 10, 9)
    with pytest.raises(ValueError, match="shorter than the 56-day embargo"):
        date_split(short, inactivity_config(horizon_days=WINDOW))
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        inactivity_config(test_start="next monday")
    assert dt.date.fromisoformat(split.describe("label_inactive")["test_start"])
