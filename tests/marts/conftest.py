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


# A world of silences (docs/ml.md): a_001 is silent on days 30-49 and back on day 50; a_004 is
# silent from day 46 to the end; a_102 is a twin of a_002 (same users, same events) through day
# TWIN_UNTIL and silent after it. Built with a 14-day dormancy period and population look-back.
DORMANT_AFTER = 14
A1_SILENT = (30, 49)
A4_LAST = 45
TWIN_UNTIL = 40


def day_number(n: int) -> dt.date:
    return rawdata.START + dt.timedelta(days=n)


@pytest.fixture(scope="session")
def silent_world(tmp_path_factory) -> World:
    world = make_world(tmp_path_factory.mktemp("silences"))
    world.load_raw()
    with duckdb.connect(str(world.db)) as con:
        con.execute(
            "delete from raw.events where (account_id = 'a_001' and event_date between ? and ?) "
            "or (account_id = 'a_004' and event_date > ?)",
            [day_number(A1_SILENT[0]), day_number(A1_SILENT[1]), day_number(A4_LAST)],
        )
        con.execute(
            "insert into raw.events select 'twin-' || message_id, 'a_102', "
            "replace(user_id, 'u_002_', 'u_102_'), * exclude (message_id, account_id, user_id) "
            "from raw.events where account_id = 'a_002' and event_date <= ?",
            [day_number(TWIN_UNTIL)],
        )
        con.execute(
            "insert into raw.users select replace(user_id, 'u_002_', 'u_102_'), 'a_102', "
            "* exclude (user_id, account_id) from raw.users where account_id = 'a_002'"
        )
        con.execute(
            "insert into raw.accounts select 'a_102', account_name || ' twin', "
            "* exclude (account_id, account_name) from raw.accounts where account_id = 'a_002'"
        )
    marts = marts_module()
    with pytest.MonkeyPatch.context() as mp:
        plain = marts.dbt_vars
        mp.setattr(
            marts,
            "dbt_vars",
            lambda *a, **k: {
                **plain(*a, **k),
                "dormant_after_days": DORMANT_AFTER,
                "active_lookback_days": DORMANT_AFTER,
            },
        )
        assert materialize(world, rawdata.END).success
    return world
