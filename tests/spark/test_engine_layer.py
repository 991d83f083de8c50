"""The engine-neutral layer: raw tables out to Parquet, Spark's Parquet marts back into DuckDB."""

import datetime as dt
import os
import subprocess
import sys

import duckdb
import pytest

from orchestration.engine import (
    RAW_TABLES,
    attach_spark_tables,
    export_raw_to_parquet,
    load_spark_tables,
)
from tests.marts import rawdata
from tests.spark.conftest import REPO


def test_raw_export_holds_every_raw_row_and_is_repeatable(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        rawdata.build_raw(con, rawdata.START + dt.timedelta(days=9))
        first = export_raw_to_parquet(con, tmp_path / "raw")
        rawdata.build_raw(con, rawdata.START + dt.timedelta(days=10))
        second = export_raw_to_parquet(con, tmp_path / "raw")
        in_parquet = con.execute(
            f"select count(*) from read_parquet('{tmp_path}/raw/events/*.parquet')"
        ).fetchone()[0]
        in_duckdb = con.execute("select count(*) from raw.events").fetchone()[0]
    assert set(first) == set(RAW_TABLES)
    assert second["events"] > first["events"] > 0
    # a re-export replaces the files, it does not add to them
    assert in_parquet == in_duckdb == second["events"]
    assert not list((tmp_path / "raw").rglob("*.tmp"))


def test_raw_export_without_ingestion_says_what_to_run(tmp_path):
    with duckdb.connect() as con, pytest.raises(RuntimeError, match="run ingestion"):
        export_raw_to_parquet(con, tmp_path / "raw")


def _spark_like_warehouse(root):
    """Parquet laid out as Spark writes it: <schema>.db/<table>/, partition folders col=value,
    timestamps stored as UTC instants."""
    (root / "marts.db" / "account_health").mkdir(parents=True)
    (root / "marts.db" / "dim_accounts").mkdir(parents=True)
    with duckdb.connect() as con:
        con.execute("set timezone = 'UTC'")
        con.execute(
            "copy (select 'a_1' as account_id, 61.5::decimal(5, 1) as health_score, "
            "date '2025-03-16' as as_of_date) to "
            f"'{root}/marts.db/account_health' (format parquet, partition_by (as_of_date))"
        )
        con.execute(
            "copy (select 'a_1' as account_id, timestamptz '2025-03-16 08:00:00+00' as loaded_at) "
            f"to '{root}/marts.db/dim_accounts/part-0.parquet' (format parquet)"
        )


def test_spark_marts_read_back_with_duckdb_types(tmp_path):
    _spark_like_warehouse(tmp_path / "wh")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("create schema marts")
        con.execute("create table marts.account_health as select 1 as stale")
        counts = load_spark_tables(con, tmp_path / "wh")
        health = con.execute("select * from marts.account_health").fetchall()
        loaded_at = con.execute("select loaded_at from marts.dim_accounts").fetchone()[0]
        kinds = dict(con.execute("describe marts.dim_accounts").fetchall()[i][:2] for i in (1,))
    assert counts == {"marts.account_health": 1, "marts.dim_accounts": 1}
    # the old DuckDB table is replaced; the partition column comes back as a date
    assert health == [("a_1", pytest.approx(61.5), dt.date(2025, 3, 16))]
    assert loaded_at == dt.datetime(2025, 3, 16, 8, 0)
    assert kinds["loaded_at"] == "TIMESTAMP"


def test_spark_views_and_a_clear_error_without_a_spark_build(tmp_path):
    _spark_like_warehouse(tmp_path / "wh")
    with duckdb.connect() as con:
        assert attach_spark_tables(con, tmp_path / "wh") == [
            "marts.account_health",
            "marts.dim_accounts",
        ]
        assert con.execute("select count(*) from marts.account_health").fetchone()[0] == 1
        with pytest.raises(RuntimeError, match="EA_DBT_TARGET=spark"):
            attach_spark_tables(con, tmp_path / "empty")


def test_unknown_engine_is_refused_with_the_choices():
    result = subprocess.run(
        [sys.executable, "-c", "import orchestration.defs.marts"],
        cwd=REPO,
        env={**os.environ, "EA_DBT_TARGET": "postgres"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "EA_DBT_TARGET='postgres'" in result.stderr and "duckdb, spark" in result.stderr
