"""MLflow tracking and registry: log a training run, register it, gate and load the champion."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from importlib.metadata import version as package_version
from pathlib import Path

import mlflow
import mlflow.pyfunc
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ml.config import REGISTERED_NAMES, TrainConfig
from ml.evaluate import ranking_metrics
from ml.model import ScoringModel
from ml.train import TrainResult

EXPERIMENT = "engagement-alerts"
CHAMPION = "champion"
PYFUNC_ENTRY = Path(__file__).with_name("pyfunc_entry.py")


@dataclass(frozen=True)
class RegisteredVersion:
    registered_name: str
    version: str
    run_id: str
    model_uri: str


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


@dataclass
class ChampionModel:
    """The model currently holding the champion alias, ready to score."""

    model: ScoringModel
    registered_name: str
    version: str
    run_id: str


def _client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def ensure_experiment(tracking_uri: str, artifact_root: Path, name: str = EXPERIMENT) -> str:
    """The experiment id, creating it with its artifacts under `artifact_root` if needed."""
    client = _client(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_root.mkdir(parents=True, exist_ok=True)
    return client.create_experiment(name, artifact_location=artifact_root.resolve().as_uri())


def evaluate_champion_on_holdout(
    tracking_uri: str, registered_name: str, result: TrainResult
) -> dict[str, float]:
    """Score the current champion on the candidate's test rows (the same holdout).

    Returns `champion_*` metrics and `champion_version`; empty when there is no champion. A
    champion that cannot score these rows (its features no longer exist) gets
    `champion_comparable` = 0, so the gate can say so instead of guessing.
    """
    champion = load_champion(tracking_uri, registered_name, missing_ok=True)
    if champion is None:
        return {}
    out: dict[str, float] = {"champion_version": float(champion.version)}
    test = result.split.test
    try:
        proba = champion.model.predict_proba(test)
    except ValueError:
        out["champion_comparable"] = 0.0
        return out
    metrics = ranking_metrics(
        test[result.config.label].astype(int).to_numpy(), proba, result.config.top_fraction
    )
    out.update({f"champion_{k}": v for k, v in metrics.items()})
    out["champion_comparable"] = 1.0
    return out


def decide_promotion(metrics: dict[str, float], config: TrainConfig) -> PromotionDecision:
    """Pure gate: promote only if the candidate beats the baseline and the champion on one holdout.

    `metrics` holds `model_<m>`, `baseline_<m>` and, when a champion exists, `champion_<m>`
    (all measured on the same test rows), where m is `config.primary_metric`.
    """
    m = config.primary_metric
    for key in (f"model_{m}", f"baseline_{m}"):
        if key not in metrics:
            raise ValueError(f"Promotion needs metric {key!r}; the training run did not log it.")
    candidate, baseline = metrics[f"model_{m}"], metrics[f"baseline_{m}"]
    need = baseline + config.min_margin_over_baseline
    if not candidate > need:
        return PromotionDecision(
            False,
            f"candidate {m}={candidate:.4f} does not beat the heuristic baseline "
            f"{m}={baseline:.4f} (+ margin {config.min_margin_over_baseline}) on the holdout",
        )
    if "champion_version" not in metrics:
        return PromotionDecision(
            True, f"no champion yet; candidate {m}={candidate:.4f} beats baseline {baseline:.4f}"
        )
    champion_version = int(metrics["champion_version"])
    if metrics.get("champion_comparable", 1.0) == 0.0:
        return PromotionDecision(
            True,
            f"champion v{champion_version} cannot score the current features (schema changed); "
            f"candidate {m}={candidate:.4f} beats baseline {baseline:.4f}",
        )
    champion = metrics[f"champion_{m}"]
    if not candidate > champion + config.min_margin_over_champion:
        return PromotionDecision(
            False,
            f"candidate {m}={candidate:.4f} does not beat champion v{champion_version} "
            f"{m}={champion:.4f} (+ margin {config.min_margin_over_champion}) on the same holdout",
        )
    return PromotionDecision(
        True,
        f"candidate {m}={candidate:.4f} beats champion v{champion_version} ({champion:.4f}) "
        f"and baseline ({baseline:.4f}) on the same holdout",
    )


def _pip_requirements() -> list[str]:
    # Pinned explicitly: MLflow's own inference imports the model and is slow.
    return [
        f"{name}=={package_version(name)}"
        for name in ("lightgbm", "scikit-learn", "pandas", "numpy", "mlflow")
    ]


def log_and_register(
    result: TrainResult,
    tracking_uri: str,
    artifact_root: Path,
    extra_metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
) -> RegisteredVersion:
    """Log params, metrics, plots and the model in one run, and register a new model version.

    The new version gets no alias here: promotion is a separate, gated step (`promote`).
    """
    config = result.config
    registered_name = REGISTERED_NAMES.get(config.model_name, f"{config.model_name}_model")
    experiment_id = ensure_experiment(tracking_uri, artifact_root)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    params: dict[str, object] = {
        **{f"cfg_{k}": v for k, v in asdict(config).items() if k != "features"},
        **{f"lgb_{k}": v for k, v in result.params.items()},
        **{f"split_{k}": v for k, v in result.split.describe(config.label).items()},
        "n_features": len(result.model.features),
        "calibrator": json.dumps(result.model.calibrator.__dict__)[:500],
    }
    metrics = {**result.metrics, **(extra_metrics or {})}
    metrics = {k: float(v) for k, v in metrics.items() if v == v}  # NaN is not loggable
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"{config.model_name}-{result.split.test_start.date().isoformat()}",
        tags={"model_name": config.model_name, **(tags or {})},
    ) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            for plot in result.write_plots(tmp_path / "plots"):
                mlflow.log_artifact(str(plot), artifact_path="plots")
            report = tmp_path / "report"
            report.mkdir()
            (report / "features.json").write_text(json.dumps(result.model.features, indent=1))
            result.importance.to_csv(report / "feature_importance.csv", index=False)
            result.leads.to_csv(report / "lead_times.csv", index=False)
            mlflow.log_artifacts(str(report), artifact_path="report")
            artifacts = result.model.save(tmp_path / "model")
            info = mlflow.pyfunc.log_model(
                name="model",
                # Models from code: the stored model is this file plus plain-text artifacts.
                python_model=str(PYFUNC_ENTRY),
                artifacts=artifacts,
                registered_model_name=registered_name,
                pip_requirements=_pip_requirements(),
            )
    version = str(info.registered_model_version)
    client = _client(tracking_uri)
    client.set_model_version_tag(registered_name, version, "model_name", config.model_name)
    return RegisteredVersion(
        registered_name=registered_name,
        version=version,
        run_id=run.info.run_id,
        model_uri=f"models:/{registered_name}/{version}",
    )


def run_metrics(tracking_uri: str, run_id: str) -> dict[str, float]:
    """The metrics a training run logged (what the promotion gate judges)."""
    return dict(_client(tracking_uri).get_run(run_id).data.metrics)


def promote(tracking_uri: str, registered_name: str, version: str) -> None:
    """Point the champion alias at `version`."""
    _client(tracking_uri).set_registered_model_alias(registered_name, CHAMPION, str(version))


def champion_version(tracking_uri: str, registered_name: str) -> str | None:
    """The version holding the champion alias, or None."""
    try:
        mv = _client(tracking_uri).get_model_version_by_alias(registered_name, CHAMPION)
    except MlflowException:
        return None
    return str(mv.version)


def load_champion(
    tracking_uri: str, registered_name: str, missing_ok: bool = False
) -> ChampionModel | None:
    """Load the champion by alias (never from a file in git).

    Raises:
        LookupError: no version holds the champion alias (unless `missing_ok`).
    """
    client = _client(tracking_uri)
    try:
        mv = client.get_model_version_by_alias(registered_name, CHAMPION)
    except MlflowException as exc:
        if missing_ok:
            return None
        raise LookupError(
            f"No '{CHAMPION}' version of {registered_name!r} in the model registry at "
            f"{tracking_uri}: train the model (and let it pass the promotion check) first."
        ) from exc
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    loaded = mlflow.pyfunc.load_model(f"models:/{registered_name}@{CHAMPION}")
    wrapper = loaded.unwrap_python_model()
    return ChampionModel(
        model=wrapper.scoring_model,
        registered_name=registered_name,
        version=str(mv.version),
        run_id=str(mv.run_id),
    )
