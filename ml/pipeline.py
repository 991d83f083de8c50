"""One training run end to end, for the Dagster asset and `ea evaluate` alike: train on the date
split against baselines and the champion, shadow-score today's accounts, log and register.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ml import registry
from ml.config import REGISTERED_NAMES, TrainConfig
from ml.shadow import ShadowReport, shadow_score
from ml.train import TrainResult, train_model


@dataclass
class Candidate:
    result: TrainResult
    shadow: ShadowReport
    version: registry.RegisteredVersion
    champion_version: str | None


def train_candidate(
    frame: pd.DataFrame,
    events: pd.DataFrame | None,
    today: pd.DataFrame,
    owners: pd.DataFrame,
    config: TrainConfig,
    tracking_uri: str,
    artifact_root: Path,
    extra_metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
) -> Candidate:
    """Train a candidate and register it (no alias: promotion is `decide_from_run`).

    `today`: the scorable rows of the latest as-of date; `owners`: account_id, csm_email.

    Raises:
        InsufficientLabelsError, ValueError: from `train_model`.
    """
    registered_name = REGISTERED_NAMES.get(config.model_name, f"{config.model_name}_model")
    champion = registry.load_champion(tracking_uri, registered_name, missing_ok=True)
    extra = {"champion": champion.model.predict_proba} if champion else {}
    result = train_model(frame, config, events=events, extra_scorers=extra)
    shadow = shadow_score(today, owners, result.model, champion.model if champion else None, config)
    logged = {**shadow.metrics(), **(extra_metrics or {})}
    if champion is not None:
        logged["champion_version"] = float(champion.version)
    version = registry.log_and_register(
        result, tracking_uri, artifact_root, extra_metrics=logged, tags=tags
    )
    return Candidate(result, shadow, version, champion.version if champion else None)


def decide_from_run(tracking_uri: str, run_id: str) -> registry.PromotionDecision:
    """The gate's decision on a logged training run, with the settings that run used."""
    metrics = registry.run_metrics(tracking_uri, run_id)
    tags = registry.run_tags(tracking_uri, run_id)
    return registry.decide_promotion(
        metrics,
        registry.gate_config(metrics, tags.get("primary_metric", "pr_auc")),
        tags.get("best_baseline") or None,
    )
