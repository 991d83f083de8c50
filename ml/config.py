"""Settings for training, scoring, anomaly detection and segmentation, passed in by the caller."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

# Model name -> its name in the MLflow registry (here, not in ml.registry, so callers can know
# the names without importing mlflow).
REGISTERED_NAMES = {"churn": "churn_model", "expansion": "expansion_model"}


# What a churn or expansion label is, per label source: the mart column, the column that says
# it is known, the population it is defined on, the dbt var of its window (days after
# as_of_date it looks at) and what the real outcome date of a positive is.
LABEL_SOURCES = {
    "outcomes": {
        "label": "label_churn",
        "observable": "is_label_observable",
        "population": None,  # every current customer that is not dormant
        "window_var": "churn_horizon_days",
        "description": "a churned outcome within {window} days after the as-of date",
        "population_description": "current customers (not churned, not dormant)",
    },
    "inactivity": {
        "label": "label_inactive",
        "observable": "is_inactive_label_observable",
        "population": "is_in_population",
        "window_var": "dormant_after_days",
        "description": "no activity at all in the {window} days after the as-of date",
        "population_description": "accounts active in the {lookback} days up to the as-of date "
        "(not dormant)",
    },
    "expansion": {
        "label": "label_expand",
        "observable": "is_label_observable",
        "population": None,
        "window_var": "expand_horizon_days",
        "description": "an expanded outcome within {window} days after the as-of date",
        "population_description": "current customers (not churned, not dormant)",
    },
}


@dataclass(frozen=True)
class TrainConfig:
    """How one model is trained, split, calibrated, judged against baselines and promoted.

    The split is by date: the test period is [test_start, test_end]; training uses as-of dates
    up to train_end, which must be more than `horizon_days` (the label window) before
    test_start, so no training label sees the test period (the embargo). A share of the
    training-window accounts is held out as validation (early stopping, calibration, alert
    threshold), judged on their rows of the window's last `validation_days`. Dates left empty
    follow `test_fraction` of the observable span.
    """

    model_name: str = "churn"
    label_source: str = "outcomes"
    # The label window in days (a dbt var: churn_horizon_days, dormant_after_days, ...); also
    # the embargo between training and test.
    horizon_days: int = 30
    # The inactivity population's look-back (dbt var active_lookback_days), for the model card.
    lookback_days: int = 90
    train_end: str | None = None
    test_start: str | None = None
    test_end: str | None = None
    test_fraction: float = 0.25
    validation_share: float = 0.2
    validation_days: int = 91
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
    # Share of the scored rows treated as "alerted" for precision / recall / lift and lead time;
    # the threshold is chosen on validation.
    top_fraction: float = 0.10
    # Baselines: "frequency" = fewest events in the last frequency_days (the longest window the
    # frame has up to that); "calendar" = renewal within calendar_days.
    frequency_days: int = 180
    calendar_days: int = 30
    # Account-level bootstrap of the test period.
    bootstrap_samples: int = 200
    confidence: float = 0.95
    lead_time_days: int = 30
    # How far before an event an alert still counts as "for" that event.
    lead_time_window_days: int = 180
    # Promotion: beat the best baseline and the champion on primary_metric by a margin whose
    # bootstrap interval (lower bound) is above min_margin, with at least min_positive_accounts
    # accounts with a positive row in the test period.
    primary_metric: str = "pr_auc"
    min_margin: float = 0.0
    min_positive_accounts: int = 20
    # Shadow scoring of today's accounts: refuse when the candidate would alert more than
    # max_alert_ratio x the champion's alerts per CSM per week, or (no champion) more than
    # max_alerts_per_csm_week. An account counts as alerted when its probability reaches
    # the lower bound of the first of shadow_bands (ScoreConfig.band_thresholds).
    max_alert_ratio: float = 2.0
    max_alerts_per_csm_week: float = 15.0
    shadow_bands: tuple[str, ...] = ("high", "very_high")

    def __post_init__(self) -> None:
        if self.calibration not in {"platt", "isotonic"}:
            raise ValueError(f"calibration must be 'platt' or 'isotonic', got {self.calibration!r}")
        if self.label_source not in LABEL_SOURCES:
            raise ValueError(
                f"label_source must be one of {sorted(LABEL_SOURCES)}, got {self.label_source!r}"
            )
        if not 0 < self.test_fraction < 1:
            raise ValueError("test_fraction must be between 0 and 1")
        if not 0 < self.validation_share < 1:
            raise ValueError("validation_share must be between 0 and 1")
        for name in ("train_end", "test_start", "test_end"):
            value = getattr(self, name)
            if value:
                try:
                    dt.date.fromisoformat(value)
                except ValueError as exc:
                    raise ValueError(f"{name} must be a YYYY-MM-DD date, got {value!r}") from exc

    @property
    def label(self) -> str:
        return LABEL_SOURCES[self.label_source]["label"]

    @property
    def observable_column(self) -> str:
        return LABEL_SOURCES[self.label_source]["observable"]

    @property
    def population_column(self) -> str | None:
        return LABEL_SOURCES[self.label_source]["population"]

    def describe_label(self) -> str:
        return LABEL_SOURCES[self.label_source]["description"].format(window=self.horizon_days)

    def describe_population(self) -> str:
        return LABEL_SOURCES[self.label_source]["population_description"].format(
            lookback=self.lookback_days
        )


def churn_config(**overrides) -> TrainConfig:
    """Defaults for the churn model (outcome labels unless label_source='inactivity')."""
    return TrainConfig(**{"model_name": "churn", "label_source": "outcomes", **overrides})


def inactivity_config(**overrides) -> TrainConfig:
    """Churn defined by silence: no activity in the dormancy period after the as-of date."""
    defaults = {"model_name": "churn", "label_source": "inactivity", "horizon_days": 90}
    return TrainConfig(**{**defaults, **overrides})


def expansion_config(**overrides) -> TrainConfig:
    """Defaults for the expansion model (its baselines look at the same ranking in reverse)."""
    defaults = {"model_name": "expansion", "label_source": "expansion", "horizon_days": 60}
    return TrainConfig(**{**defaults, **overrides})


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
