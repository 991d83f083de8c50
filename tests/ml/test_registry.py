import numpy as np
import pytest

from ml import registry
from ml.config import churn_config
from ml.train import train_model
from tests.ml.conftest import HORIZON


def test_champion_gate_refuses_a_model_trained_on_shuffled_labels(
    grid, churn_cfg, churn_result, mlflow_uri, tmp_path
):
    artifacts = tmp_path / "artifacts"
    first = registry.log_and_register(churn_result, mlflow_uri, artifacts)
    decision = registry.decide_promotion(registry.run_metrics(mlflow_uri, first.run_id), churn_cfg)
    assert decision.promote, decision.reason
    registry.promote(mlflow_uri, first.registered_name, first.version)

    shuffled = grid.copy()
    shuffled["label_churn"] = np.random.default_rng(3).permutation(shuffled["label_churn"].values)
    noise = train_model(shuffled, churn_config(horizon_days=HORIZON))
    champion = registry.evaluate_champion_on_holdout(mlflow_uri, "churn_model", noise)
    second = registry.log_and_register(noise, mlflow_uri, artifacts, extra_metrics=champion)
    decision = registry.decide_promotion(registry.run_metrics(mlflow_uri, second.run_id), churn_cfg)
    assert not decision.promote
    assert "does not beat" in decision.reason
    assert registry.champion_version(mlflow_uri, "churn_model") == first.version
    # Artifacts live under the directory we passed, not in the working directory.
    assert any(artifacts.rglob("booster.txt"))
    assert any(artifacts.rglob("calibration.png"))


def test_candidate_must_beat_the_champion_on_the_same_holdout(churn_cfg):
    base = {"model_pr_auc": 0.5, "baseline_pr_auc": 0.2}
    assert registry.decide_promotion(base, churn_cfg).promote
    worse = {**base, "champion_version": 3.0, "champion_pr_auc": 0.55, "champion_comparable": 1.0}
    decision = registry.decide_promotion(worse, churn_cfg)
    assert not decision.promote and "champion v3" in decision.reason
    tie = {**base, "champion_version": 3.0, "champion_pr_auc": 0.5, "champion_comparable": 1.0}
    assert not registry.decide_promotion(tie, churn_cfg).promote
    with pytest.raises(ValueError, match="baseline_pr_auc"):
        registry.decide_promotion({"model_pr_auc": 0.5}, churn_cfg)


def test_champion_loads_by_alias_and_scores_like_the_trained_model(
    grid, churn_result, mlflow_uri, tmp_path
):
    with pytest.raises(LookupError, match="champion"):
        registry.load_champion(mlflow_uri, "churn_model")
    version = registry.log_and_register(churn_result, mlflow_uri, tmp_path / "a")
    registry.promote(mlflow_uri, version.registered_name, version.version)
    champion = registry.load_champion(mlflow_uri, "churn_model")
    assert (champion.version, champion.run_id) == (version.version, version.run_id)
    sample = grid.head(50)
    np.testing.assert_allclose(
        champion.model.predict_proba(sample), churn_result.model.predict_proba(sample)
    )
