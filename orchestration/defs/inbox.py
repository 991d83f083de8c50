"""Dagster definitions for the alert inbox: apply people's actions, publish the inbox snapshot.

The inbox records actions in its own store at once; here they reach the warehouse inside runs
(never from a sensor: only runs write the warehouse, one at a time through the run queue).
"""

import time

import dagster as dg
from dagster_duckdb import DuckDBResource

from alerts.recipients import People
from alerts.schema import ensure_schema
from inbox import store
from inbox.apply import apply_pending
from inbox.snapshot import publish_app_snapshot
from orchestration.publishing import ANALYST_DB
from orchestration.resources import InboxResource, PathsResource

INBOX_ACTIONS = dg.AssetKey(["alerts", "inbox_actions"])
INBOX_SNAPSHOT = dg.AssetKey(["inbox", "snapshot"])
ALERTS = dg.AssetKey(["alerts", "alerts"])


@dg.asset(
    key=INBOX_ACTIONS,
    group_name="alerts",
    kinds={"duckdb", "sqlite"},
    description="Actions people took from email links and the alert inbox (acknowledge, snooze, "
    "resolve with feedback), written into alerts.alerts and alerts.audit_log with the person "
    "and the channel. Runs before the alerts are evaluated, and on its own when the inbox "
    "sensor sees new actions.",
)
def inbox_actions(
    context: dg.AssetExecutionContext,
    duckdb: DuckDBResource,
    paths: PathsResource,
    inbox: InboxResource,
) -> dg.MaterializeResult:
    started = time.perf_counter()
    store_con = store.connect(inbox.store(paths.data))
    try:
        with duckdb.get_connection() as con:
            ensure_schema(con)
            report = apply_pending(con, store_con)
    finally:
        store_con.close()
    if report.examples:
        context.log.info(f"inbox actions: {report.as_metadata()}")
    return dg.MaterializeResult(
        metadata={
            **{k: v for k, v in report.as_metadata().items() if k != "examples"},
            "examples": dg.MetadataValue.json(report.examples[:5]),
            "seconds": round(time.perf_counter() - started, 3),
        }
    )


@dg.asset(
    key=INBOX_SNAPSHOT,
    deps=[ALERTS, INBOX_ACTIONS, dg.AssetKey(["marts", "dim_accounts"])],
    group_name="inbox",
    kinds={"duckdb"},
    description="The alert inbox's snapshot (EA_APP_SNAPSHOT): recent alerts, who may see each "
    "(alerts.recipients), the accounts' latest metrics, the audit trail. Published by an atomic "
    "rename so the inbox never opens the warehouse.",
)
def inbox_snapshot(
    duckdb: DuckDBResource, paths: PathsResource, inbox: InboxResource
) -> dg.MaterializeResult:
    routing = paths.routing()
    path = inbox.snapshot(paths.data)
    with duckdb.get_connection() as con:
        try:
            counts = publish_app_snapshot(con, path, People.from_routing(routing or {}))
        except RuntimeError as exc:
            raise dg.Failure(description=str(exc)) from exc
    return dg.MaterializeResult(metadata={**counts, "path": str(path)})


inbox_actions_job = dg.define_asset_job(
    "inbox_actions_job",
    selection=dg.AssetSelection.assets(INBOX_ACTIONS, INBOX_SNAPSHOT, ANALYST_DB),
    description="Apply the actions people took in the inbox or from email links, then publish "
    "the inbox snapshot (run by inbox_actions_sensor).",
)


@dg.sensor(
    job=inbox_actions_job,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a small run when people have acted in the inbox or from an email link "
    "and the warehouse does not have it yet. Reads only the inbox's own store.",
)
def inbox_actions_sensor(
    context: dg.SensorEvaluationContext, paths: PathsResource, inbox: InboxResource
):
    path = inbox.store(paths.data)
    if not path.exists():
        return dg.SkipReason(f"no inbox store at {path} yet")
    con = store.connect(path)
    try:
        waiting, newest = store.pending_summary(con)
    finally:
        con.close()
    if not waiting:
        return dg.SkipReason("no actions waiting for the warehouse")
    # One run per newest action: more actions while a run waits are picked up by that run.
    return dg.RunRequest(run_key=f"inbox-actions:{newest}", tags={"inbox/waiting": str(waiting)})


defs = dg.Definitions(
    assets=[inbox_actions, inbox_snapshot],
    jobs=[inbox_actions_job],
    sensors=[inbox_actions_sensor],
)
