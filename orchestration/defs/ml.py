"""Dagster definitions for the ml stage: gated model training, scoring, anomalies, segments."""

import datetime as dt
import time
from pathlib import Path

import dagster as dg
import yaml
from dagster_duckdb import DuckDBResource

from ml.anomaly import write_anomalies
from ml.config import (
    REGISTERED_NAMES,
    AnomalyConfig,
    InactivityConfig,
    TrainConfig,
    churn_config,
    expansion_config,
)
from ml.features import inactivity_labels
from ml.feedback import feedback_labels
from ml.segment import segment_accounts, write_segments
from ml.split import InsufficientLabelsError
from orchestration import warmup
from orchestration.asof import AsOfConfig, resolve_as_of
from orchestration.resources import PathsResource, schedule_default

# mlflow, scikit-learn and lightgbm (ml.registry, ml.score, ml.train) take seconds to import, and
# every run process, sensor and test imports these definitions: the assets that need them import
# them when they run.

GROUP = "ml"
HOLIDAYS_FILE = "holidays.yml"
DBT_PROJECT_FILE = Path(__file__).resolve().parents[2] / "dbt_project" / "dbt_project.yml"
ML_FEATURES = dg.AssetKey(["marts", "ml_features"])
ACCOUNT_HEALTH = dg.AssetKey(["marts", "account_health"])
DAILY_ENGAGEMENT = dg.AssetKey(["marts", "fct_account_daily_engagement"])


class MlflowResource(dg.ConfigurableResource):
    """Where runs and registered models live (a sqlite file by default, a server in production)."""

    tracking_uri: str

    def ui_hint(self) -> str:
        return f"mlflow ui --backend-store-uri {self.tracking_uri} -p 5000"


class TrainingConfig(dg.Config):
    """Run config of a training run. Horizons must match the dbt vars of marts.ml_features."""

    horizon_days: int = 0  # 0 = the dbt var (churn_horizon_days / expand_horizon_days)
    num_boost_round: int = 400
    # "outcomes": labels from the mart; "inactivity": churn = no activity for inactive_days.
    label_source: str = "outcomes"
    inactive_days: int = 30


def dbt_label_horizons() -> dict[str, int]:
    """The label horizons marts.ml_features is built with (dbt vars), so the split gap matches."""
    path = DBT_PROJECT_FILE
    if not path.exists():
        raise dg.Failure(f"{path} is missing: the ml stage reads the label horizons from it.")
    variables = yaml.safe_load(path.read_text()).get("vars", {})
    try:
        return {
            "churn": int(variables["churn_horizon_days"]),
            "expansion": int(variables["expand_horizon_days"]),
        }
    except KeyError as exc:
        raise dg.Failure(
            f"{path} has no var {exc.args[0]!r}; set it or pass horizon_days in the run config."
        ) from exc


def _train_config(model_name: str, run: TrainingConfig) -> TrainConfig:
    overrides: dict[str, object] = {
        "num_boost_round": run.num_boost_round,
        "horizon_days": run.horizon_days or dbt_label_horizons()[model_name],
    }
    return (churn_config if model_name == "churn" else expansion_config)(**overrides)


def _load_training_frame(con, model_name: str, run: TrainingConfig, horizon_days: int):
    frame = con.execute("select * from marts.ml_features order by as_of_date, account_id").df()
    if frame.empty:
        raise dg.Failure("marts.ml_features is empty: build the marts before training.")
    if run.label_source == "inactivity" and model_name == "churn":
        daily = con.execute(
            "select account_id, activity_date, (logins > 0 or active_users > 0) as is_active "
            "from marts.fct_account_daily_engagement where is_data_landed"
        ).df()
        inactivity = InactivityConfig(inactive_days=run.inactive_days, horizon_days=horizon_days)
        frame = inactivity_labels(frame, daily, inactivity.inactive_days, inactivity.horizon_days)
    elif run.label_source not in {"outcomes", "inactivity"}:
        raise dg.Failure(
            f"label_source must be 'outcomes' or 'inactivity', not {run.label_source!r}"
        )
    return frame


def _model_asset(model_name: str) -> dg.AssetsDefinition:
    registered_name = REGISTERED_NAMES[model_name]

    @dg.asset(
        key=["ml", f"{model_name}_model"],
        deps=[ML_FEATURES],
        group_name=GROUP,
        kinds={"lightgbm", "mlflow"},
        description=f"Train, evaluate and register a new version of `{registered_name}`. "
        "The champion alias moves only if the promotion check passes.",
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: TrainingConfig,
        duckdb: DuckDBResource,
        paths: PathsResource,
        mlflow: MlflowResource,
    ) -> dg.MaterializeResult:
        from ml import registry
        from ml.feedback import feedback_slice_metrics
        from ml.train import train_model

        started = time.monotonic()
        cfg = _train_config(model_name, config)
        with duckdb.get_connection() as con:
            frame = _load_training_frame(con, model_name, config, cfg.horizon_days)
            feedback = feedback_labels(con)
        try:
            result = train_model(frame, cfg)
        except InsufficientLabelsError as exc:
            raise dg.Failure(str(exc)) from exc
        champion = registry.evaluate_champion_on_holdout(
            mlflow.tracking_uri, registered_name, result
        )
        # CSM feedback on risk alerts is an evaluation slice of the churn model (docs/kpis.md).
        slice_metrics = (
            feedback_slice_metrics(result.model, frame, feedback) if model_name == "churn" else {}
        )
        version = registry.log_and_register(
            result,
            mlflow.tracking_uri,
            paths.data / "mlflow-artifacts",
            extra_metrics={**champion, **slice_metrics},
            tags={"dagster_run_id": context.run_id, "label_source": config.label_source},
        )
        m = result.metrics
        context.log.info(f"Features ({len(result.model.features)}): {result.model.features}")
        return dg.MaterializeResult(
            metadata={
                "registered_model": registered_name,
                "version": version.version,
                "run_id": version.run_id,
                "model_uri": version.model_uri,
                "mlflow_ui": dg.MetadataValue.md(f"`{mlflow.ui_hint()}`"),
                "features": dg.MetadataValue.json(result.model.features),
                "rows": dg.MetadataValue.json(result.split.describe(cfg.label)),
                "metrics_vs_baseline": dg.MetadataValue.md(_metrics_table(m, champion)),
                "model_pr_auc": m["model_pr_auc"],
                "baseline_pr_auc": m["baseline_pr_auc"],
                "model_roc_auc": m["model_roc_auc"],
                "feedback_slice": dg.MetadataValue.json(slice_metrics),
                "lead_share_ge_30d": dg.MetadataValue.float(
                    m.get(f"lead_share_ge_{cfg.lead_time_days}d", float("nan"))
                ),
                "best_iteration": result.best_iteration,
                "seconds": round(time.monotonic() - started, 2),
            }
        )

    return _asset


def _metrics_table(m: dict[str, float], champion: dict[str, float]) -> str:
    names = ["roc_auc", "pr_auc", "brier", "precision_at_top", "recall_at_top", "lift_at_top"]
    lines = ["| metric | model | baseline | champion |", "|---|---|---|---|"]
    for n in names:
        cells = [m.get(f"model_{n}"), m.get(f"baseline_{n}"), champion.get(f"champion_{n}")]
        lines.append(
            f"| {n} | " + " | ".join("—" if c is None else f"{c:.4f}" for c in cells) + " |"
        )
    return "\n".join(lines)


def _promotion_check(model_name: str, asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    registered_name = REGISTERED_NAMES[model_name]

    @dg.asset_check(
        asset=asset,
        name="promote_if_better",
        blocking=True,
        description="Move the champion alias to the new version only if it beats the current "
        "champion and the heuristic baseline on the same holdout.",
    )
    def _check(context: dg.AssetCheckExecutionContext, mlflow: MlflowResource):
        from ml import registry

        event = context.instance.get_latest_materialization_event(asset.key)
        if event is None or event.asset_materialization is None:
            return dg.AssetCheckResult(
                passed=False, metadata={"reason": "the model has not been trained yet"}
            )
        meta = event.asset_materialization.metadata
        version, run_id = meta["version"].value, meta["run_id"].value
        decision = registry.decide_promotion(
            registry.run_metrics(mlflow.tracking_uri, run_id),
            _train_config(model_name, TrainingConfig()),
        )
        if decision.promote:
            registry.promote(mlflow.tracking_uri, registered_name, version)
        return dg.AssetCheckResult(
            passed=decision.promote,
            severity=dg.AssetCheckSeverity.ERROR,
            description=decision.reason,
            metadata={
                "reason": decision.reason,
                "candidate_version": version,
                "champion_version": registry.champion_version(mlflow.tracking_uri, registered_name)
                or "none",
            },
        )

    return _check


churn_model = _model_asset("churn")
expansion_model = _model_asset("expansion")
churn_promotion = _promotion_check("churn", churn_model)
expansion_promotion = _promotion_check("expansion", expansion_model)


@dg.asset(
    key=["ml", "account_scores"],
    deps=[ACCOUNT_HEALTH, churn_model, expansion_model],
    group_name=GROUP,
    kinds={"duckdb", "lightgbm"},
    description="ml.account_scores: churn and expansion probability, band and top drivers per "
    "account for the as-of date, from each model's champion.",
)
def account_scores(
    context: dg.AssetExecutionContext,
    config: AsOfConfig,
    duckdb: DuckDBResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    warmup.wait("ml")  # a landed day's run imports the ML stack while dbt builds the marts
    from ml import registry
    from ml.score import load_scoring_frame, score_frame, write_scores

    started = time.monotonic()
    with duckdb.get_connection() as con:
        as_of = resolve_as_of(con, config)
        try:
            frame = load_scoring_frame(con, as_of)
        except ValueError as exc:
            raise dg.Failure(str(exc)) from exc
    if frame.empty:
        context.log.info(f"Every account is dormant on {as_of}: nothing to score.")
        return dg.MaterializeResult(
            metadata={"as_of_date": as_of.isoformat(), "rows": 0, "dormant_only": True}
        )
    scored, missing = [], []
    for model_name, registered_name in REGISTERED_NAMES.items():
        champion = registry.load_champion(mlflow.tracking_uri, registered_name, missing_ok=True)
        if champion is None:
            missing.append(registered_name)
            continue
        scored.append(score_frame(frame, champion, model_name, as_of))
    if not scored:
        raise dg.Failure(
            f"No champion for {missing}: run `training_job` (the promotion check must pass) first."
        )
    for name in missing:
        context.log.warning(f"{name} has no champion yet; its scores are not written for {as_of}.")
    with duckdb.get_connection() as con:
        written = sum(write_scores(con, s) for s in scored)
    bands = {s["model_name"].iloc[0]: s["band"].value_counts().to_dict() for s in scored}
    top = scored[0].nlargest(3, "probability")
    return dg.MaterializeResult(
        metadata={
            "as_of_date": as_of.isoformat(),
            "rows": written,
            "models": [f"{s['model_name'].iloc[0]} v{s['model_version'].iloc[0]}" for s in scored],
            "models_without_champion": missing,
            "bands": dg.MetadataValue.json(bands),
            "examples": dg.MetadataValue.json(
                top[["account_id", "model_name", "probability", "band", "driver_1"]]
                .round(4)
                .to_dict("records")
            ),
            "seconds": round(time.monotonic() - started, 2),
        }
    )


@dg.asset(
    key=["ml", "anomalies"],
    deps=[DAILY_ENGAGEMENT],
    group_name=GROUP,
    kinds={"duckdb"},
    description="ml.anomalies: days where an account's engagement left its own same-weekday "
    "range (robust z, median/MAD); unlanded days and holidays are never judged.",
)
def anomalies(
    context: dg.AssetExecutionContext,
    config: AsOfConfig,
    duckdb: DuckDBResource,
    paths: PathsResource,
) -> dg.MaterializeResult:
    started = time.monotonic()
    holiday_file = paths.config / HOLIDAYS_FILE
    if holiday_file.exists():
        try:
            cfg = AnomalyConfig.from_holiday_file(yaml.safe_load(holiday_file.read_text()))
        except ValueError as exc:
            raise dg.Failure(f"{holiday_file}: {exc}") from exc
    else:
        context.log.warning(f"No {holiday_file}: holidays will be judged like any other day.")
        cfg = AnomalyConfig()
    with duckdb.get_connection() as con:
        as_of = resolve_as_of(con, config)
        try:
            n = write_anomalies(con, as_of, cfg)
        except ValueError as exc:
            raise dg.Failure(str(exc)) from exc
        by_severity = dict(
            con.execute(
                "select severity, count(*) from ml.anomalies where activity_date > ? "
                "and activity_date <= ? group by 1",
                [as_of - dt.timedelta(days=cfg.lookback_days), as_of],
            ).fetchall()
        )
        examples = con.execute(
            "select account_id, activity_date::varchar as day, metric, expected, observed, "
            "round(robust_z, 1) as z from ml.anomalies where activity_date <= ? "
            "order by abs(robust_z) desc limit 5",
            [as_of],
        ).df()
    return dg.MaterializeResult(
        metadata={
            "as_of_date": as_of.isoformat(),
            "anomalies": n,
            "holidays_configured": len(cfg.holidays)
            + sum(len(v) for v in cfg.regional_holidays.values()),
            "by_severity": dg.MetadataValue.json(by_severity),
            "examples": dg.MetadataValue.json(examples.to_dict("records")),
            "seconds": round(time.monotonic() - started, 2),
        }
    )


@dg.asset(
    key=["ml", "segments"],
    deps=[ACCOUNT_HEALTH],
    group_name=GROUP,
    kinds={"duckdb", "scikitlearn"},
    description="ml.segments: KMeans engagement segments for the as-of date, named from centres.",
)
def segments(config: AsOfConfig, duckdb: DuckDBResource) -> dg.MaterializeResult:
    from ml.score import load_scoring_frame

    started = time.monotonic()
    with duckdb.get_connection() as con:
        as_of = resolve_as_of(con, config)
        try:
            frame = load_scoring_frame(con, as_of)
            result = segment_accounts(frame)
        except ValueError as exc:
            raise dg.Failure(str(exc)) from exc
        n = write_segments(con, as_of, result)
    sizes = result.groupby(["segment_id", "segment_name"]).size()
    return dg.MaterializeResult(
        metadata={
            "as_of_date": as_of.isoformat(),
            "accounts": n,
            "segments": dg.MetadataValue.json(
                {f"{i} {name}": int(c) for (i, name), c in sizes.items()}
            ),
            "seconds": round(time.monotonic() - started, 2),
        }
    )


training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets(churn_model, expansion_model),
    description="Retrain both models; each champion moves only if its promotion check passes.",
)

weekly_training = dg.ScheduleDefinition(
    name="weekly_training",
    job=training_job,
    cron_schedule="0 3 * * 1",  # Mondays 03:00 UTC, after the Monday CRM snapshot has landed
    execution_timezone="UTC",
    default_status=schedule_default(),
)


def mlflow_resource() -> MlflowResource:
    return MlflowResource(tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI"))


_ASSETS = [
    churn_model,
    expansion_model,
    account_scores,
    anomalies,
    segments,
]

defs = dg.Definitions(
    assets=_ASSETS,
    asset_checks=[churn_promotion, expansion_promotion],
    jobs=[training_job],
    schedules=[weekly_training],
    resources={"mlflow": mlflow_resource()},
)
