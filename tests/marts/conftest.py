"""Fixtures for the marts tests: a private warehouse with hand-built raw tables, built by dbt."""

import datetime as dt
import importlib
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from orchestration.resources import PathsResource
from tests.marts import rawdata

REPO = Path(__file__).resolve().parents[2]


@dataclass
class World:
    """One isolated warehouse: its data dir, DuckDB file and config dir."""

    root: Path

    @property
    def db(self) -> Path:
        return self.root / "data" / "warehouse.duckdb"

    @property
    def config_dir(self) -> Path:
        return REPO / "config"

    def load_raw(self, through: dt.date = rawdata.END) -> None:
        with duckdb.connect(str(self.db)) as con:
            rawdata.build_raw(con, through)

    def query(self, sql: str, params=None) -> list[tuple]:
        with duckdb.connect(str(self.db), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def frame(self, sql: str):
        with duckdb.connect(str(self.db), read_only=True) as con:
            return con.execute(sql).df()


def make_world(root: Path) -> World:
    (root / "data" / "landing").mkdir(parents=True)
    return World(root)


def marts_module():
    return importlib.import_module("orchestration.defs.marts")


def materialize(
    world: World, as_of: dt.date, full_refresh: bool = False
) -> dg.ExecuteInProcessResult:
    """Run the marts' dbt assets in-process through Dagster, as the daily job would."""
    marts = marts_module()
    with pytest.MonkeyPatch.context() as mp:
        # the dbt profile reads the database path from the environment of the dbt process
        mp.setenv("DUCKDB_DATABASE", str(world.db))
        return dg.materialize(
            [marts.marts_dbt],
            resources={
                "dbt": marts.defs.resources["dbt"],
                "duckdb": DuckDBResource(database=str(world.db)),
                "paths": PathsResource(
                    data_dir=str(world.root / "data"),
                    landing_dir=str(world.root / "data" / "landing"),
                    config_dir=str(world.config_dir),
                ),
            },
            run_config={
                "ops": {
                    "marts_dbt": {
                        "config": {"as_of_date": as_of.isoformat(), "full_refresh": full_refresh}
                    }
                }
            },
        )


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> tuple[World, dg.ExecuteInProcessResult]:
    """Raw tables through END, marts built by Dagster as of END (a first run: full build)."""
    world = make_world(tmp_path_factory.mktemp("marts_built"))
    world.load_raw()
    result = materialize(world, rawdata.END)
    assert result.success
    return world, result
