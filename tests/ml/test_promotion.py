"""The promotion gate: baseline and champion by an interval that excludes zero, enough positive
accounts, and no flood of alerts for CSMs (shadow scoring of today's accounts)."""

import dataclasses

import pandas as pd
import pytest

from ml.config import churn_config
from ml.model import Calibrator, ScoringModel
from ml.registry import decide_promotion
from ml.shadow import shadow_score

CFG = churn_config()
GOOD = {
    "test_positive_accounts": 40.0,
    "model_pr_auc": 0.40,
    "best_baseline_pr_auc": 0.30,
    "diff_best_baseline_pr_auc": 0.10,
    "diff_best_baseline_pr_auc_lo": 0.04,
    "diff_best_baseline_pr_auc_hi": 0.16,
    "shadow_candidate_alerts_per_csm_week": 3.0,
}
CHAMPION = {
    "champion_version": 3.0,
    "champion_pr_auc": 0.35,
    "diff_champion_pr_auc": 0.05,
    "diff_champion_pr_auc_lo": 0.01,
    "diff_champion_pr_auc_hi": 0.09,
    "shadow_champion_alerts_per_csm_week": 2.0,
}


def test_a_clear_winner_is_promoted_and_the_reason_lists_every_check():
    first = decide_promotion(GOOD, CFG, "frequency")
    assert first.promote and "first champion" in first.reason and "frequency" in first.reason
    second = decide_promotion({**GOOD, **CHAMPION}, CFG, "frequency")
    assert second.promote and "replaces champion v3" in second.reason
    assert [ok for ok, _ in second.checks] == [True] * 4


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"diff_best_baseline_pr_auc_lo": -0.01}, "not above 0"),
        ({"diff_champion_pr_auc_lo": -0.02}, "vs champion v3"),
        ({"test_positive_accounts": 12.0}, "12 accounts with a positive label"),
        ({"shadow_candidate_alerts_per_csm_week": 4.5}, "vs the champion's 2.0"),
    ],
)
def test_anything_short_keeps_the_champion_and_says_why(change, why):
    decision = decide_promotion({**GOOD, **CHAMPION, **change}, CFG, "frequency")
    assert not decision.promote
    assert decision.reason.startswith("kept the champion") and why in decision.reason


def test_a_champion_that_cannot_score_todays_features_is_not_a_reason_to_refuse():
    old = {"champion_version": 2.0, "shadow_champion_alerts_per_csm_week": 2.0}
    decision = decide_promotion({**GOOD, **old}, CFG)
    assert decision.promote and "cannot score the current features" in decision.reason


def test_margin_and_flood_limits_come_from_the_config():
    strict = dataclasses.replace(CFG, min_margin=0.05)
    assert not decide_promotion(GOOD, strict).promote  # interval starts at 0.04
    lenient = dataclasses.replace(CFG, max_alerts_per_csm_week=2.0)
    assert not decide_promotion(GOOD, lenient).promote  # 3 alerts per CSM, no champion


def test_shadow_scoring_refuses_a_model_that_would_flood_csms(grid, churn_result):
    """The same booster with a calibration that calls everyone high risk: trained and judged
    on the same test period it ranks identically, but today it would alert every account."""
    today = grid[grid["as_of_date"] == grid["as_of_date"].max()].reset_index(drop=True)
    owners = pd.DataFrame(
        {
            "account_id": today["account_id"],
            "csm_email": [f"csm{i % 4}@x" for i in range(len(today))],
        }
    )
    champion = churn_result.model
    alarmist = ScoringModel(
        booster=champion.booster,
        calibrator=Calibrator(method="platt", a=champion.calibrator.a, b=champion.calibrator.b + 6),
        features=champion.features,
    )
    report = shadow_score(today, owners, alarmist, champion, CFG)
    assert report.csms == 4
    assert report.candidate_alerts > 2 * max(report.champion_alerts, 1)
    decision = decide_promotion({**GOOD, **CHAMPION, **report.metrics()}, CFG, "frequency")
    assert not decision.promote and "alerts per CSM per week" in decision.reason
    # the champion against itself passes the flood check
    calm = shadow_score(today, owners, champion, champion, CFG)
    assert calm.candidate_alerts == calm.champion_alerts
    assert decide_promotion({**GOOD, **CHAMPION, **calm.metrics()}, CFG).promote
