"""Resources shared by every stage, configured from environment variables when built."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource


class PathsResource(dg.ConfigurableResource):
    """Where the pipeline finds its files: landing folder, editable config, generated data."""

    data_dir: str
    landing_dir: str
    config_dir: str

    @property
    def data(self) -> Path:
        return Path(self.data_dir)

    @property
    def landing(self) -> Path:
        return Path(self.landing_dir)

    @property
    def config(self) -> Path:
        return Path(self.config_dir)


# DuckDB's buffer pool, for Dagster's connections and dbt's alike: beyond it, joins, sorts and
# windows spill to `<warehouse>.tmp/`, so a run's memory stays bounded as the data grows.
DEFAULT_MEMORY_LIMIT = "2GB"


def duckdb_memory_limit() -> str:
    return os.environ.get("EA_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT


def shared_resources() -> dict[str, object]:
    """The resources every stage may ask for, by parameter name."""
    return {
        "duckdb": DuckDBResource(
            database=dg.EnvVar("DUCKDB_DATABASE"),
            connection_config={"memory_limit": duckdb_memory_limit()},
        ),
        "paths": PathsResource(
            data_dir=dg.EnvVar("EA_DATA_DIR"),
            landing_dir=dg.EnvVar("EA_LANDING_DIR"),
            config_dir=dg.EnvVar("EA_CONFIG_DIR"),
        ),
    }
