import numpy as np
import pytest

from ml import registry
from ml.config import churn_config
from ml.train import train_model
from tests.ml.conftest import HORIZON


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One MLflow store for the module (creating one takes seconds): (uri, artifact dir)."""
    root = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{root / 'mlflow.db'}", root / "artifacts"


@pytest.fixture(scope="module")
def first_version(store, churn_result, churn_cfg):
    uri, artifacts = store
    with pytest.raises(LookupError, match="champion"):
        registry.load_champion(uri, "churn_model")
    version = registry.log_and_register(churn_result, uri, artifacts)
    decision = registry.decide_promotion(registry.run_metrics(uri, version.run_id), churn_cfg)
    assert decision.promote, decision.reason
    registry.promote(uri, version.registered_name, version.version)
    return version


def test_champion_gate_refuses_a_model_trained_on_shuffled_labels(
    grid, churn_cfg, store, first_version
):
    uri, artifacts = store
    shuffled = grid.copy()
    shuffled["label_churn"] = np.random.default_rng(3).permutation(shuffled["label_churn"].values)
    noise = train_model(shuffled, churn_config(horizon_days=HORIZON))
    champion = registry.evaluate_champion_on_holdout(uri, "churn_model", noise)
    assert champion["champion_version"] == float(first_version.version)
    second = registry.log_and_register(noise, uri, artifacts, extra_metrics=champion)
    decision = registry.decide_promotion(registry.run_metrics(uri, second.run_id), churn_cfg)
    assert not decision.promote
    assert "does not beat the heuristic baseline" in decision.reason
    assert registry.champion_version(uri, "churn_model") == first_version.version
    # Artifacts live under the directory we passed, not in the working directory.
    assert any(artifacts.rglob("booster.txt"))
    assert any(artifacts.rglob("calibration.png"))
    assert any(artifacts.rglob("contribution_summary.png"))


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
    grid, churn_result, store, first_version
):
    champion = registry.load_champion(store[0], "churn_model")
    assert (champion.version, champion.run_id) == (first_version.version, first_version.run_id)
    sample = grid.head(50)
    np.testing.assert_allclose(
        champion.model.predict_proba(sample), churn_result.model.predict_proba(sample)
    )
