"""Dagster definitions for analyst access: the masked `analytics` views in the warehouse (the
analyst database every run publishes is in orchestration/publishing.py).
"""

import time

import dagster as dg
from dagster_duckdb import DuckDBResource

from warehouse.analytics import ANALYTICS_SCHEMA, create_analytics_views

ANALYTICS_VIEWS = dg.AssetKey(["analytics", "views"])


@dg.asset(
    key=ANALYTICS_VIEWS,
    deps=[
        dg.AssetKey(["marts", "account_health"]),
        dg.AssetKey(["ml", "account_scores"]),
        dg.AssetKey(["alerts", "alerts"]),
    ],
    group_name="analytics",
    kinds={"duckdb"},
    description="The `analytics` views in the warehouse (the data team's `ea sql --full`): "
    "curated views over marts, scores, alerts and deliveries with every email masked.",
)
def analytics_views(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
    started = time.perf_counter()
    with duckdb.get_connection() as con:
        result = create_analytics_views(con)
    if result["skipped"]:
        context.log.warning(f"not built yet, views skipped: {result['skipped']}")
    return dg.MaterializeResult(
        metadata={
            "schema": ANALYTICS_SCHEMA,
            "views": dg.MetadataValue.json(result["created"]),
            "view_count": len(result["created"]),
            "skipped_sources": dg.MetadataValue.json(result["skipped"]),
            "seconds": round(time.perf_counter() - started, 3),
        }
    )


defs = dg.Definitions(assets=[analytics_views])
