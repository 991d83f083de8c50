"""The one Dagster entry point: every stage's definitions merged with the shared resources."""

import dagster as dg

from orchestration.defs import STAGES
from orchestration.resources import shared_resources

_RAW = dg.AssetSelection.groups("raw")
_TRAINING = dg.AssetSelection.assets(["ml", "churn_model"], ["ml", "expansion_model"])
_ON_DEMAND = dg.AssetSelection.assets(["alerts", "backtest"])

# Everything after ingestion, as of the latest landed day: marts (incremental), scores, alerts,
# deliveries. Models are not retrained here; scoring uses the registry's champions.
daily_job = dg.define_asset_job(
    "daily_job",
    selection=dg.AssetSelection.all() - _RAW - _TRAINING - _ON_DEMAND,
    description="The daily run after a landing day is ingested: marts, scores, alerts, deliveries.",
)

# The first run on a new warehouse (and the demo): the daily run plus training both models.
full_pipeline_job = dg.define_asset_job(
    "full_pipeline_job",
    selection=dg.AssetSelection.all() - _RAW - _ON_DEMAND,
    description="Marts, training with champion gating, scoring, alerts and deliveries in one run.",
)


@dg.asset_sensor(
    asset_key=dg.AssetKey(["raw", "events"]),
    job=daily_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts the daily run as soon as a landing day has been ingested.",
)
def daily_after_ingest_sensor(context: dg.SensorEvaluationContext, asset_event):
    """One daily run per ingestion run of raw events (a range backfill counts once)."""
    return dg.RunRequest(run_key=f"daily-after:{asset_event.run_id}")


defs = dg.Definitions.merge(
    *(stage.defs for stage in STAGES),
    dg.Definitions(
        resources=shared_resources(),
        executor=dg.in_process_executor,
        jobs=[daily_job, full_pipeline_job],
        sensors=[daily_after_ingest_sensor],
    ),
)
