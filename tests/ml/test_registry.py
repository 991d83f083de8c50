import numpy as np
import pytest

from ml import registry
from ml.train import train_model


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One MLflow store for the module (creating one takes seconds): (uri, artifact dir)."""
    root = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{root / 'mlflow.db'}", root / "artifacts"


@pytest.fixture(scope="module")
def first_version(store, churn_result):
    uri, artifacts = store
    with pytest.raises(LookupError, match="champion"):
        registry.load_champion(uri, "churn_model")
    version = registry.log_and_register(churn_result, uri, artifacts)
    # plumbing: promoted by hand (the synthetic grid is no evidence for the gate)
    registry.promote(uri, version.registered_name, version.version)
    return version


def test_the_gate_refuses_a_model_trained_on_shuffled_labels_from_its_logged_run(
    grid, churn_cfg, store, first_version
):
    uri, artifacts = store
    shuffled = grid.copy()
    shuffled["label_churn"] = np.random.default_rng(3).permutation(shuffled["label_churn"].values)
    champion = registry.load_champion(uri, "churn_model")
    noise = train_model(
        shuffled, churn_cfg, extra_scorers={"champion": champion.model.predict_proba}
    )
    second = registry.log_and_register(
        noise, uri, artifacts, extra_metrics={"champion_version": float(champion.version)}
    )
    metrics = registry.run_metrics(uri, second.run_id)
    tags = registry.run_tags(uri, second.run_id)
    decision = registry.decide_promotion(
        metrics, registry.gate_config(metrics, tags["primary_metric"]), tags["best_baseline"]
    )
    assert not decision.promote
    assert "not above 0" in decision.reason and f"champion v{champion.version}" in decision.reason
    assert registry.champion_version(uri, "churn_model") == first_version.version
    # The model card and plots are logged with the run, under the directory we passed.
    for name in ("booster.txt", "model_card.md", "calibration.png", "lift.png"):
        assert any(artifacts.rglob(name)), name
    card = next(artifacts.rglob("model_card.md")).read_text()
    assert "Embargo" in card and "bootstrap" in card


def test_champion_loads_by_alias_and_scores_like_the_trained_model(
    grid, churn_result, store, first_version
):
    champion = registry.load_champion(store[0], "churn_model")
    assert (champion.version, champion.run_id) == (first_version.version, first_version.run_id)
    sample = grid.head(50)
    np.testing.assert_allclose(
        champion.model.predict_proba(sample), churn_result.model.predict_proba(sample)
    )
    candidate = registry.load_version(store[0], "churn_model", first_version.version)
    np.testing.assert_allclose(
        candidate.predict_proba(sample), champion.model.predict_proba(sample)
    )
