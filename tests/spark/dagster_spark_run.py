"""Run the marts_dbt asset through Dagster with EA_DBT_TARGET=spark (a fresh process: the engine
is chosen when orchestration.defs.marts is imported). Prints the result as JSON."""

import datetime as dt
import json
import os
import sys
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from orchestration.resources import PathsResource
from tests.marts import rawdata


def main(root: Path, through: dt.date) -> dict:
    assert os.environ.get("EA_DBT_TARGET") == "spark"
    from orchestration.defs import marts

    db = root / "warehouse.duckdb"
    with duckdb.connect(str(db)) as con:
        rawdata.build_raw(con, through)
    result = dg.materialize(
        [marts.marts_dbt],
        resources={
            "dbt": marts.defs.resources["dbt"],
            "duckdb": DuckDBResource(database=str(db)),
            "paths": PathsResource(
                data_dir=str(root),
                landing_dir=str(root / "landing"),
                config_dir=str(Path(__file__).resolve().parents[2] / "config"),
            ),
        },
        run_config={"ops": {"marts_dbt": {"config": {"as_of_date": through.isoformat()}}}},
    )
    meta = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        if mat.asset_key.path == ["marts", "account_health"]:
            meta = {k: v.value for k, v in mat.metadata.items() if k in ("engine", "rows")}
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "select count(*) from marts.account_health where as_of_date = ?", [through]
        ).fetchone()[0]
    return {
        "success": result.success,
        "pool": marts.marts_dbt.op.pool,
        "metadata": meta,
        "health_rows_on_as_of": rows,
    }


if __name__ == "__main__":
    out = main(Path(sys.argv[1]), dt.date.fromisoformat(sys.argv[2]))
    print("RESULT " + json.dumps(out, default=str))
