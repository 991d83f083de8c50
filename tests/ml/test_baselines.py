"""Baselines, and BG/NBD against the published CDNOW figures (data shipped in `lifetimes`)."""

from pathlib import Path

import lifetimes
import numpy as np
import pandas as pd
import pytest

from ml.baselines import Baselines, bgnbd_expected, bgnbd_p_alive, fit_bgnbd
from ml.config import inactivity_config

SUMMARY = Path(lifetimes.__file__).parent / "datasets" / "cdnow_customers_summary.csv"


@pytest.fixture(scope="module")
def cdnow_params():
    d = pd.read_csv(SUMMARY)  # 2,357 CDNOW customers, 39-week calibration period, in weeks
    return fit_bgnbd(d["frequency"], d["recency"], d["T"])


def test_bgnbd_fit_reproduces_the_papers_cdnow_parameters(cdnow_params):
    # Fader, Hardie & Lee (2005), table 1: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426.
    p = cdnow_params
    assert (p.r, p.alpha, p.a, p.b) == pytest.approx((0.243, 4.414, 0.793, 2.426), abs=2e-3)


def test_bgnbd_conditional_expectation_and_p_alive(cdnow_params):
    # The customer with x = 2, t_x = 30.43, T = 38.86 weeks expects ~1.226 purchases in the
    # next 39 weeks (the worked example of the lifetimes documentation).
    one = (np.array([2.0]), np.array([30.43]), np.array([38.86]))
    assert bgnbd_expected(cdnow_params, 39, *one)[0] == pytest.approx(1.226, abs=2e-3)
    # Without repeat purchases a customer is alive for BG/NBD; a long silence after repeats
    # makes death likely, and more so the longer it lasts.
    alive = bgnbd_p_alive(cdnow_params, [0, 5, 5], [0, 30, 10], [38, 38, 38])
    assert alive[0] == 1.0 and 0 < alive[2] < alive[1] < 1


def test_baselines_rank_the_riskier_row_higher_and_unknown_inputs_are_neutral():
    frame = pd.DataFrame(
        {
            "account_id": ["a", "b", "c"],
            "as_of_date": pd.to_datetime(["2025-01-06"] * 3),
            "days_since_last_activity": [1.0, 40.0, np.nan],
            "events_180d": [50.0, 2.0, np.nan],
            "health_score": [80.0, 20.0, np.nan],
            "active_days_total": [30.0, 3.0, 5.0],
            "days_first_to_last_activity": [200.0, 20.0, 100.0],
            "days_since_first_activity": [201.0, 300.0, 110.0],
        }
    )
    b = Baselines.fit(frame, inactivity_config(horizon_days=90))
    scores = b.score(frame)
    assert set(scores) == {"recency", "frequency", "health_score", "bgnbd", "bgnbd_expected"}
    for name, s in scores.items():
        assert s[1] > s[0], name  # b (quiet, rare, unhealthy) is riskier than a
    # c's unknown recency / frequency / health take the middle of the known scores
    assert scores["recency"][2] == pytest.approx(np.mean(scores["recency"][:2]))
