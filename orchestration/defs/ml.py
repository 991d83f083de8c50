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
    TrainConfig,
    churn_config,
    expansion_config,
)
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
    """Run config of a training run (docs/ml.md). Empty / 0 values follow the dbt vars."""

    # "auto": churn outcomes when the warehouse has any, else inactivity (no activity in the
    # dormancy period); "outcomes" or "inactivity" to choose. The expansion model ignores it.
    label_source: str = "auto"
    horizon_days: int = 0  # 0 = the label window the marts were built with (dbt var)
    train_end: str = ""  # YYYY-MM-DD; empty = test_start minus the label window
    test_start: str = ""  # empty = the last quarter of the observable span
    test_end: str = ""  # empty = the last observable as-of date
    num_boost_round: int = 400
    bootstrap_samples: int = 200
    primary_metric: str = "pr_auc"
    min_positive_accounts: int = 20
    max_alert_ratio: float = 2.0
    max_alerts_per_csm_week: float = 15.0


def dbt_label_horizons() -> dict[str, int]:
    """The label windows marts.ml_features is built with (dbt vars), so the embargo matches."""
    path = DBT_PROJECT_FILE
    if not path.exists():
        raise dg.Failure(f"{path} is missing: the ml stage reads the label windows from it.")
    variables = yaml.safe_load(path.read_text()).get("vars", {})
    try:
        return {
            "outcomes": int(variables["churn_horizon_days"]),
            "expansion": int(variables["expand_horizon_days"]),
            "inactivity": int(variables["dormant_after_days"]),
            "lookback": int(variables["active_lookback_days"]),
        }
    except KeyError as exc:
        raise dg.Failure(
            f"{path} has no var {exc.args[0]!r}; set it or pass horizon_days in the run config."
        ) from exc


def resolve_label_source(con, model_name: str, requested: str) -> str:
    """The label source to train on: expansion for that model; for churn the requested one,
    or with "auto" outcomes when any churn outcome labels a row, else inactivity.
    """
    if model_name == "expansion":
        return "expansion"
    if requested not in {"auto", "outcomes", "inactivity"}:
        raise dg.Failure(
            f"label_source must be 'auto', 'outcomes' or 'inactivity', not {requested!r}"
        )
    if requested != "auto":
        return requested
    churned = con.execute("select count(*) from marts.ml_features where label_churn = 1").fetchall()
    return "outcomes" if churned[0][0] else "inactivity"


def train_config(model_name: str, run: TrainingConfig, label_source: str) -> TrainConfig:
    horizons = dbt_label_horizons()
    overrides: dict[str, object] = {
        "label_source": label_source,
        "num_boost_round": run.num_boost_round,
        "horizon_days": run.horizon_days or horizons[label_source],
        "lookback_days": horizons["lookback"],
        "train_end": run.train_end or None,
        "test_start": run.test_start or None,
        "test_end": run.test_end or None,
        "bootstrap_samples": run.bootstrap_samples,
        "primary_metric": run.primary_metric,
        "min_positive_accounts": run.min_positive_accounts,
        "max_alert_ratio": run.max_alert_ratio,
        "max_alerts_per_csm_week": run.max_alerts_per_csm_week,
    }
    try:
        return (churn_config if model_name == "churn" else expansion_config)(**overrides)
    except ValueError as exc:
        raise dg.Failure(f"training run config: {exc}") from exc


def load_training_frame(con):
    frame = con.execute("select * from marts.ml_features order by as_of_date, account_id").df()
    if frame.empty:
        raise dg.Failure("marts.ml_features is empty: build the marts before training.")
    return frame


def today_frame(con, frame):
    """Today's scorable rows (the latest as-of date, not dormant) and each account's CSM."""
    latest = frame["as_of_date"].max()
    today = frame[frame["as_of_date"] == latest]
    if "is_dormant" in today.columns:
        today = today[~today["is_dormant"].fillna(False).astype(bool)]
    owners = con.execute("select account_id, csm_email from marts.dim_accounts").df()
    return today.reset_index(drop=True), owners


def _model_asset(model_name: str) -> dg.AssetsDefinition:
    registered_name = REGISTERED_NAMES[model_name]

    @dg.asset(
        key=["ml", f"{model_name}_model"],
        deps=[ML_FEATURES],
        group_name=GROUP,
        kinds={"lightgbm", "mlflow"},
        description=f"Train `{registered_name}` on a date split, judge it against the baselines "
        "and the champion on the test period (bootstrap intervals), shadow-score today's "
        "accounts, and register a version with its model card. The champion alias moves only "
        "if the promotion check passes.",
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: TrainingConfig,
        duckdb: DuckDBResource,
        paths: PathsResource,
        mlflow: MlflowResource,
    ) -> dg.MaterializeResult:
        from ml import registry
        from ml.card import difference_table, metrics_table
        from ml.features import outcome_dates
        from ml.feedback import feedback_slice_metrics
        from ml.pipeline import train_candidate

        started = time.monotonic()
        with duckdb.get_connection() as con:
            frame = load_training_frame(con)
            label_source = resolve_label_source(con, model_name, config.label_source)
            events = outcome_dates(con, label_source)
            feedback = feedback_labels(con)
            today, owners = today_frame(con, frame)
        cfg = train_config(model_name, config, label_source)
        context.log.info(
            f"Label {cfg.label} ({cfg.describe_label()}), population: "
            f"{cfg.describe_population()}; {len(frame):,} rows."
        )
        try:
            candidate = train_candidate(
                frame,
                events,
                today,
                owners,
                cfg,
                mlflow.tracking_uri,
                paths.data / "mlflow-artifacts",
                tags={"dagster_run_id": context.run_id},
            )
        except InsufficientLabelsError as exc:
            raise dg.Failure(str(exc)) from exc
        except ValueError as exc:
            raise dg.Failure(f"training failed: {exc}") from exc
        result, shadow, version = candidate.result, candidate.shadow, candidate.version
        # CSM feedback on risk alerts is an evaluation slice of the churn model (docs/kpis.md).
        slice_metrics = (
            feedback_slice_metrics(result.model, frame, feedback) if model_name == "churn" else {}
        )
        registry.log_more_metrics(mlflow.tracking_uri, version.run_id, slice_metrics)
        m = result.metrics
        p = cfg.primary_metric
        context.log.info(f"Features ({len(result.model.features)}): {result.model.features}")
        return dg.MaterializeResult(
            metadata={
                "registered_model": registered_name,
                "version": version.version,
                "run_id": version.run_id,
                "model_uri": version.model_uri,
                "mlflow_ui": dg.MetadataValue.md(f"`{mlflow.ui_hint()}`"),
                "label": f"{cfg.label}: {cfg.describe_label()}",
                "population": cfg.describe_population(),
                "split": dg.MetadataValue.json(result.split.describe(cfg.label)),
                "metrics_vs_baselines": dg.MetadataValue.md(metrics_table(result)),
                "model_minus_others": dg.MetadataValue.md(difference_table(result)),
                "best_baseline": result.best_baseline or "none",
                f"model_{p}": m[f"model_{p}"],
                f"best_baseline_{p}": m.get(f"best_baseline_{p}", float("nan")),
                "model_roc_auc": m["model_roc_auc"],
                "shadow_alerts_per_csm_week": dg.MetadataValue.md(shadow.table()),
                "features": dg.MetadataValue.json(result.model.features),
                "features_without_data": dg.MetadataValue.json(result.empty_features),
                "feedback_slice": dg.MetadataValue.json(slice_metrics),
                "best_iteration": result.best_iteration,
                "seconds": round(time.monotonic() - started, 2),
            }
        )

    return _asset


def _promotion_check(model_name: str, asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    registered_name = REGISTERED_NAMES[model_name]

    @dg.asset_check(
        asset=asset,
        name="promote_if_better",
        blocking=True,
        description="Move the champion alias to the new version only if it beats the best "
        "baseline and the champion on the same test period (bootstrap interval above the "
        "margin), with enough positive accounts, and would not flood CSMs with alerts (shadow "
        "scoring of today's accounts).",
    )
    def _check(context: dg.AssetCheckExecutionContext, mlflow: MlflowResource):
        from ml import registry
        from ml.pipeline import decide_from_run

        event = context.instance.get_latest_materialization_event(asset.key)
        if event is None or event.asset_materialization is None:
            return dg.AssetCheckResult(
                passed=False, metadata={"reason": "the model has not been trained yet"}
            )
        meta = event.asset_materialization.metadata
        version, run_id = meta["version"].value, meta["run_id"].value
        decision = decide_from_run(mlflow.tracking_uri, run_id)
        if decision.promote:
            registry.promote(mlflow.tracking_uri, registered_name, version)
        checks = "\n".join(
            f"- {'pass' if ok else '**fail**'}: {text}" for ok, text in decision.checks
        )
        shadow = meta.get("shadow_alerts_per_csm_week")
        return dg.AssetCheckResult(
            passed=decision.promote,
            severity=dg.AssetCheckSeverity.ERROR,
            description=decision.reason,
            metadata={
                "reason": decision.reason,
                "checks": dg.MetadataValue.md(checks),
                "shadow_alerts_per_csm_week": shadow
                if shadow is not None
                else dg.MetadataValue.md("none"),
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
    from ml.score import ensure_schema, load_scoring_frame, score_frame, write_scores

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
        # No model has passed the promotion gate yet (or ever, on data where none beats the
        # baselines): the day has no scores, and the rules see NULL scores (never a default).
        context.log.warning(
            f"No champion for {missing}: nothing scored for {as_of}; train with `training_job` "
            "(a version becomes champion only through its promotion check)."
        )
        with duckdb.get_connection() as con:
            ensure_schema(con)
        return dg.MaterializeResult(
            metadata={
                "as_of_date": as_of.isoformat(),
                "rows": 0,
                "models_without_champion": missing,
                "seconds": round(time.monotonic() - started, 2),
            }
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
    from ml.score import load_health_frame

    started = time.monotonic()
    with duckdb.get_connection() as con:
        as_of = resolve_as_of(con, config)
        try:
            frame = load_health_frame(con, as_of)
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
