"""Settings for training, scoring, anomaly detection and segmentation, passed in by the caller."""

from __future__ import annotations

from dataclasses import dataclass, field

# Model name -> its name in the MLflow registry (here, not in ml.registry, so callers can know
# the names without importing mlflow).
REGISTERED_NAMES = {"churn": "churn_model", "expansion": "expansion_model"}


@dataclass(frozen=True)
class TrainConfig:
    """How one model (churn or expansion) is trained, split, calibrated and judged.

    `label` is the mart column the model learns. `horizon_days` must match the horizon the label
    was built with: it is the gap left between train, validation and test so that no training
    label looks into the evaluation period.
    """

    model_name: str = "churn"
    label: str = "label_churn"
    # dbt var churn_horizon_days / expand_horizon_days.
    horizon_days: int = 30
    # Fractions of the distinct as-of dates (after dropping unobservable rows), oldest first.
    train_fraction: float = 0.6
    validation_fraction: float = 0.2
    min_positives_train: int = 20
    min_positives_validation: int = 5
    min_positives_test: int = 5
    seed: int = 42
    num_boost_round: int = 400
    early_stopping_rounds: int = 30
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_data_in_leaf: int = 20
    feature_fraction: float = 0.9
    lambda_l2: float = 1.0
    # "platt" keeps the ranking (and so the drivers) exactly; "isotonic" is more flexible.
    calibration: str = "platt"
    # Explicit feature list; None = every numeric column that is not a key, label or score.
    features: tuple[str, ...] | None = None
    # Heuristic baseline: 28-day activity fell by more than this share and seat use is below this.
    baseline_activity: str = "logins"
    baseline_drop: float = 0.3
    baseline_utilisation: float = 0.5
    # Share of the holdout treated as "alerted" for precision/recall/lift and lead time.
    top_fraction: float = 0.10
    lead_time_days: int = 30
    # How far before an event an alert still counts as "for" that event (longer than the
    # label horizon: the score may rise before the label window opens).
    lead_time_window_days: int = 120
    # Promotion: the candidate must beat baseline and champion on this holdout metric.
    primary_metric: str = "pr_auc"
    min_margin_over_baseline: float = 0.0
    min_margin_over_champion: float = 0.0

    def __post_init__(self) -> None:
        if self.calibration not in {"platt", "isotonic"}:
            raise ValueError(f"calibration must be 'platt' or 'isotonic', got {self.calibration!r}")
        if not 0 < self.train_fraction < 1 or not 0 < self.validation_fraction < 1:
            raise ValueError("train_fraction and validation_fraction must be between 0 and 1")
        if self.train_fraction + self.validation_fraction >= 1:
            raise ValueError(
                "train_fraction + validation_fraction must leave room for a test period"
            )


def churn_config(**overrides) -> TrainConfig:
    """Defaults for the churn model."""
    return TrainConfig(**{"model_name": "churn", "label": "label_churn", **overrides})


def expansion_config(**overrides) -> TrainConfig:
    """Defaults for the expansion model: the baseline looks for growth at high seat use."""
    defaults = {
        "model_name": "expansion",
        "label": "label_expand",
        "horizon_days": 60,
        "baseline_drop": -0.2,
        "baseline_utilisation": 0.8,
    }
    return TrainConfig(**{**defaults, **overrides})


@dataclass(frozen=True)
class InactivityConfig:
    """Churn defined by silence when no outcome data exists: no activity for `inactive_days`."""

    inactive_days: int = 30
    horizon_days: int = 90


@dataclass(frozen=True)
class ScoreConfig:
    """Probability cut-offs for the bands low < medium < high < very_high."""

    band_thresholds: tuple[float, float, float] = (0.10, 0.25, 0.50)


@dataclass(frozen=True)
class AnomalyConfig:
    """Robust z-score anomaly settings (same-weekday baseline per account and metric)."""

    metrics: tuple[str, ...] = ("logins", "active_users", "session_minutes", "docs_viewed")
    baseline_weeks: int = 8
    min_baseline_points: int = 4
    z_threshold: float = 3.5
    high_z: float = 6.0
    # Floor on the robust scale, per metric, in the metric's own unit: a flat history of zeros
    # (MAD = 0) must not turn one short session into an "infinite" anomaly.
    min_scales: dict[str, float] = field(
        default_factory=lambda: {
            "logins": 3.0,
            "active_users": 1.5,
            "session_minutes": 20.0,
            "docs_viewed": 4.0,
        }
    )
    default_min_scale: float = 2.0
    lookback_days: int = 28
    # ISO dates closed for everyone, and per region (matched to marts.dim_accounts.region).
    holidays: tuple[str, ...] = ()
    regional_holidays: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_holiday_file(cls, mapping: dict | None, **overrides) -> AnomalyConfig:
        """Settings with the holidays of a parsed `config/holidays.yml` ({all: [...], regions})."""
        import datetime as dt

        mapping = mapping or {}
        unknown = set(mapping) - {"all", "regions"}
        if unknown:
            raise ValueError(f"holidays file: unknown keys {sorted(unknown)} (use all, regions)")

        def dates(values, where: str) -> tuple[str, ...]:
            out = []
            for v in values or []:
                try:
                    out.append(dt.date.fromisoformat(str(v)).isoformat())
                except ValueError as exc:
                    raise ValueError(
                        f"holidays file, {where}: {v!r} is not a YYYY-MM-DD date"
                    ) from exc
            return tuple(out)

        return cls(
            holidays=dates(mapping.get("all"), "all"),
            regional_holidays={
                str(region): dates(days, f"regions.{region}")
                for region, days in (mapping.get("regions") or {}).items()
            },
            **overrides,
        )


@dataclass(frozen=True)
class SegmentConfig:
    """KMeans segmentation of accounts on scaled engagement features."""

    n_segments: int = 4
    seed: int = 42
    features: tuple[str, ...] = (
        "logins_28d",
        "active_users_28d",
        "session_minutes_28d",
        "seat_utilisation",
        "feature_breadth_28d",
        "docs_viewed_28d",
        "docs_shared_28d",
    )
