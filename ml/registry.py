"""MLflow tracking and registry: log a training run, register it, gate and load the champion."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path

import mlflow
import mlflow.pyfunc
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ml.card import card_json, model_card
from ml.config import REGISTERED_NAMES, TrainConfig
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
    # (passed, what was checked with its figures), in the order checked
    checks: list[tuple[bool, str]] = field(default_factory=list)


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


# The settings the gate judges with, logged with each run so the check reads what the run used.
GATE_SETTINGS = (
    "min_margin",
    "min_positive_accounts",
    "max_alert_ratio",
    "max_alerts_per_csm_week",
)


def gate_metrics(config: TrainConfig) -> dict[str, float]:
    return {f"gate_{k}": float(getattr(config, k)) for k in GATE_SETTINGS}


def gate_config(metrics: dict[str, float], primary_metric: str) -> TrainConfig:
    """A TrainConfig carrying the gate settings a run logged (defaults for ones it did not)."""
    values = {k: metrics[f"gate_{k}"] for k in GATE_SETTINGS if f"gate_{k}" in metrics}
    if "min_positive_accounts" in values:
        values["min_positive_accounts"] = int(values["min_positive_accounts"])
    return TrainConfig(primary_metric=primary_metric, **values)


def decide_promotion(
    metrics: dict[str, float], config: TrainConfig, best_baseline: str | None = None
) -> PromotionDecision:
    """Pure gate over one run's logged numbers: every condition must hold, else the champion
    stays and the reason says which failed, with the figures.

    1. at least `min_positive_accounts` accounts with a positive row in the test period;
    2. the candidate beats the best baseline on the primary metric by a margin whose bootstrap
       interval is above `min_margin` (`diff_best_baseline_<m>_lo`);
    3. likewise the current champion on the same test rows (`diff_champion_<m>_lo`), unless
       there is none or it cannot score today's features (said in the reason);
    4. shadow scoring of today's accounts: the candidate's alerts per CSM per week are at most
       `max_alert_ratio` x the champion's, or `max_alerts_per_csm_week` without a champion.
    """
    m = config.primary_metric
    checks: list[tuple[bool, str]] = []
    positives = metrics.get("test_positive_accounts")
    if positives is None:
        raise ValueError("Promotion needs test_positive_accounts; the run did not log it.")
    checks.append(
        (
            positives >= config.min_positive_accounts,
            f"{positives:.0f} accounts with a positive label in the test period "
            f"(need {config.min_positive_accounts})",
        )
    )
    lo = metrics.get(f"diff_best_baseline_{m}_lo")
    if lo is None:
        raise ValueError(f"Promotion needs diff_best_baseline_{m}_lo; the run did not log it.")
    diff = metrics[f"diff_best_baseline_{m}"]
    hi = metrics[f"diff_best_baseline_{m}_hi"]
    name = best_baseline or "the best baseline"
    checks.append(
        (
            lo > config.min_margin,
            f"{m} {metrics[f'model_{m}']:.3f} vs {name} {metrics.get(f'best_baseline_{m}', 0):.3f}:"
            f" difference {diff:+.3f}, interval [{lo:+.3f}, {hi:+.3f}] "
            f"({'above' if lo > config.min_margin else 'not above'} {config.min_margin:g})",
        )
    )
    has_champion = "champion_version" in metrics
    champion_version = int(metrics["champion_version"]) if has_champion else None
    if has_champion and f"diff_champion_{m}_lo" in metrics:
        c_lo = metrics[f"diff_champion_{m}_lo"]
        checks.append(
            (
                c_lo > config.min_margin,
                f"{m} vs champion v{champion_version} {metrics[f'champion_{m}']:.3f}: difference "
                f"{metrics[f'diff_champion_{m}']:+.3f}, interval [{c_lo:+.3f}, "
                f"{metrics[f'diff_champion_{m}_hi']:+.3f}]",
            )
        )
    elif has_champion:
        checks.append(
            (True, f"champion v{champion_version} cannot score the current features; not compared")
        )
    cand = metrics.get("shadow_candidate_alerts_per_csm_week")
    if cand is not None:
        champ = metrics.get("shadow_champion_alerts_per_csm_week")
        if has_champion and champ is not None:
            limit = config.max_alert_ratio * max(champ, 1.0)
            checks.append(
                (
                    cand <= limit,
                    f"shadow scoring of today's accounts: {cand:.1f} alerts per CSM per week vs "
                    f"the champion's {champ:.1f} (limit {config.max_alert_ratio:g}x = {limit:.1f})",
                )
            )
        else:
            checks.append(
                (
                    cand <= config.max_alerts_per_csm_week,
                    f"shadow scoring of today's accounts: {cand:.1f} alerts per CSM per week "
                    f"(no champion; limit {config.max_alerts_per_csm_week:g})",
                )
            )
    failed = [text for ok, text in checks if not ok]
    if failed:
        return PromotionDecision(False, "kept the champion: " + "; ".join(failed), checks)
    who = f"replaces champion v{champion_version}" if has_champion else "first champion"
    return PromotionDecision(True, f"promoted ({who}): " + "; ".join(t for _, t in checks), checks)


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
        "label": config.label,
        "population": config.describe_population()[:250],
        **{f"lgb_{k}": v for k, v in result.params.items()},
        **{f"split_{k}": v for k, v in result.split.describe(config.label).items()},
        "n_features": len(result.model.features),
        "calibrator": json.dumps(result.model.calibrator.__dict__)[:500],
    }
    metrics = {**result.metrics, **gate_metrics(config), **(extra_metrics or {})}
    metrics = {k: float(v) for k, v in metrics.items() if v == v}  # NaN is not loggable
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"{config.model_name}-{result.split.test_start.date().isoformat()}",
        tags={
            "model_name": config.model_name,
            "label_source": config.label_source,
            "primary_metric": config.primary_metric,
            "best_baseline": result.best_baseline or "",
            **(tags or {}),
        },
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
            result.strata.to_csv(report / "strata.csv", index=False)
            for scorer, leads in result.leads.items():
                leads.to_csv(report / f"lead_times_{scorer}.csv", index=False)
            mlflow.log_artifacts(str(report), artifact_path="report")
            (tmp_path / "model_card.md").write_text(model_card(result))
            (tmp_path / "model_card.json").write_text(card_json(result))
            mlflow.log_artifact(str(tmp_path / "model_card.md"))
            mlflow.log_artifact(str(tmp_path / "model_card.json"))
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


def log_more_metrics(tracking_uri: str, run_id: str, metrics: dict[str, float]) -> None:
    """Add metrics to a finished run (evaluation slices computed after registration)."""
    client = _client(tracking_uri)
    for key, value in metrics.items():
        if value == value:  # NaN is not loggable
            client.log_metric(run_id, key, float(value))


def run_tags(tracking_uri: str, run_id: str) -> dict[str, str]:
    return dict(_client(tracking_uri).get_run(run_id).data.tags)


def load_version(tracking_uri: str, registered_name: str, version: str) -> ScoringModel:
    """A registered version's scoring model (the candidate, for shadow scoring)."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    loaded = mlflow.pyfunc.load_model(f"models:/{registered_name}/{version}")
    return loaded.unwrap_python_model().scoring_model


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
