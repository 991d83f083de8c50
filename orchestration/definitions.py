"""The one Dagster entry point: every stage's definitions merged with the shared resources."""

import dagster as dg

from orchestration.defs import STAGES
from orchestration.defs.alerts import BACKTEST
from orchestration.defs.ingest import HISTORY_KEY, LANDING_DAY_JOB, landing_days
from orchestration.publishing import analyst_db_asset
from orchestration.resources import shared_resources


def _last_assets(stage_defs) -> list[dg.AssetKey]:
    """Assets nothing else depends on (the on-demand backtest and history load aside): what every
    job ends with.
    """
    keys, upstream = set(), set()
    for d in stage_defs:
        for assets_def in d.assets or []:
            if isinstance(assets_def, dg.AssetsDefinition):
                keys |= set(assets_def.keys)
                upstream |= set(assets_def.dependency_keys)
    return sorted(keys - upstream - {BACKTEST, HISTORY_KEY}, key=lambda k: k.to_user_string())


# Published at the end of every run of the jobs below (it depends on every last asset), so the
# analyst database shows the warehouse before or after a run, never half of one.
analyst_db = analyst_db_asset(_last_assets([stage.defs for stage in STAGES]))

# The history load is run on demand with its own config (load_history_job), never by the daily
# or landing-day jobs.
_HISTORY = dg.AssetSelection.assets(HISTORY_KEY)
_RAW = dg.AssetSelection.groups("raw") - _HISTORY
_TRAINING = dg.AssetSelection.assets(["ml", "churn_model"], ["ml", "expansion_model"])
_ON_DEMAND = dg.AssetSelection.assets(["alerts", "backtest"])
_DAILY = dg.AssetSelection.all() - _RAW - _HISTORY - _TRAINING - _ON_DEMAND

# Everything after ingestion, as of the latest landed day: marts (incremental), scores, alerts,
# deliveries. Models are not retrained here; scoring uses the registry's champions.
daily_job = dg.define_asset_job(
    "daily_job",
    selection=_DAILY,
    description="The daily run after a landing day is ingested: marts, scores, alerts, deliveries.",
)

# What the landing sensor launches: ingestion and the daily run in ONE run, so a landed day pays
# for one run start (a new process importing these definitions) instead of two, and critical
# alerts go out a few seconds after the folder is loaded.
landing_day_job = dg.define_asset_job(
    LANDING_DAY_JOB,
    selection=_RAW | _DAILY,
    partitions_def=landing_days,
    description="A landed day (or range of days) end to end: load it into raw, then marts, "
    "scores, alerts, critical emails, digests and KPIs as of the latest landed day.",
)

# The first run on a new warehouse (and the demo): the daily run plus training both models.
full_pipeline_job = dg.define_asset_job(
    "full_pipeline_job",
    selection=dg.AssetSelection.all() - _RAW - _HISTORY - _ON_DEMAND,
    description="Marts, training with champion gating, scoring, alerts and deliveries in one run.",
)


@dg.asset_sensor(
    asset_key=dg.AssetKey(["raw", "events"]),
    job=daily_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts the daily run after raw events are loaded by a run that did not already "
    "include it (ingest_job launched by hand or from the UI).",
)
def daily_after_ingest_sensor(context: dg.SensorEvaluationContext, asset_event):
    """One daily run per ingestion run of raw events (a range backfill counts once)."""
    run = context.instance.get_run_by_id(asset_event.run_id) if asset_event.run_id else None
    if run is not None and run.job_name == LANDING_DAY_JOB:
        return dg.SkipReason(f"run {asset_event.run_id[:8]} ran the daily assets itself")
    return dg.RunRequest(run_key=f"daily-after:{asset_event.run_id}")


defs = dg.Definitions.merge(
    *(stage.defs for stage in STAGES),
    dg.Definitions(
        assets=[analyst_db],
        resources=shared_resources(),
        executor=dg.in_process_executor,
        jobs=[daily_job, landing_day_job, full_pipeline_job],
        sensors=[daily_after_ingest_sensor],
    ),
)
