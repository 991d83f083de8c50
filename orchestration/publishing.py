"""The analyst database, published at the end of every run that writes (an asset at the end of
the asset jobs, an op at the end of the op jobs), through `warehouse.publish_analyst_database`.

Kept outside `orchestration/defs/` so every stage module can end its jobs with it.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource

from orchestration.resources import PathsResource
from warehouse.analytics import ALWAYS_REFRESHED, publish_analyst_database, tables_changed_by

ANALYST_DB = dg.AssetKey(["analytics", "analyst_db"])
# Lowest priority: with its dependencies on every last asset of the graph it runs last anyway;
# this keeps it behind anything a retry re-queues, and last in jobs that select it by key.
LAST = {"dagster/priority": "-10"}


def publish_analyst_db(
    context, duckdb: DuckDBResource, paths: PathsResource, refresh: set[str] | None = None
) -> dict:
    """Publish the analyst database from the run's own connection; metadata for the event.
    `refresh`: the tables this run can have changed (None: all).
    """
    with duckdb.get_connection() as con:
        result = publish_analyst_database(con, paths.analyst, f"run {context.run_id[:8]}", refresh)
    context.log.info(f"analyst database published: {result.as_metadata()}")
    return {**result.as_metadata(), "table_rows": dg.MetadataValue.json(result.rows)}


def analyst_db_asset(after: list[dg.AssetKey]) -> dg.AssetsDefinition:
    """The analyst database, published after `after` (the last assets of every job)."""

    @dg.asset(
        key=ANALYST_DB,
        deps=after,
        group_name="analytics",
        kinds={"duckdb"},
        op_tags=LAST,
        description="The analyst database (`ea sql`, $EA_ANALYST_DATABASE): the curated, masked "
        "`analytics` tables copied into a new file and renamed over the old one at the end of "
        "the run, so analysts never lock the warehouse and see the state before or after a "
        "run, never half of one.",
    )
    def analyst_db(
        context: dg.AssetExecutionContext, duckdb: DuckDBResource, paths: PathsResource
    ) -> dg.MaterializeResult:
        # Only what this run wrote is rebuilt; the rest is copied from the last publish.
        selected = context.run.asset_selection or context.job_def.asset_layer.selected_asset_keys
        written = {".".join(k.path) for k in selected if len(k.path) == 2}
        refresh = tables_changed_by(written)
        return dg.MaterializeResult(metadata=publish_analyst_db(context, duckdb, paths, refresh))

    return analyst_db


@dg.op(
    ins={"after": dg.In(dg.Nothing)},
    tags=LAST,
    description="Publish the analyst database at the end of the run (as analytics/analyst_db).",
)
def publish_analyst_database_op(
    context: dg.OpExecutionContext, duckdb: DuckDBResource, paths: PathsResource
) -> None:
    meta = publish_analyst_db(context, duckdb, paths, set(ALWAYS_REFRESHED))
    context.log_event(dg.AssetMaterialization(asset_key=ANALYST_DB, metadata=meta))
