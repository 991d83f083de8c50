"""Dagster builds the marts on Spark when EA_DBT_TARGET=spark, and the later stages find them
in the DuckDB warehouse as usual."""

import json
import os
import subprocess
import sys

import pytest

from tests.spark.conftest import REPO

THROUGH = "2025-01-31"  # one month batch: the Spark path, not the data, is under test


# A full dbt build with its tests on Spark takes 8-18 minutes here, so beyond the slow marker it
# runs only when asked: EA_TEST_SPARK_DAGSTER=1 pytest tests/spark/test_dagster_spark.py
@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("EA_TEST_SPARK_DAGSTER"), reason="set EA_TEST_SPARK_DAGSTER=1 to run"
)
def test_marts_asset_builds_on_spark_and_copies_marts_back(tmp_path, spark_or_skip):
    env = {
        **os.environ,
        "EA_DBT_TARGET": "spark",
        "EA_SPARK_DIR": str(tmp_path / "spark"),
        "DUCKDB_DATABASE": str(tmp_path / "warehouse.duckdb"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "landing").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "tests.spark.dagster_spark_run", str(tmp_path), THROUGH],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stdout[-3000:] + result.stderr[-3000:]
    out = json.loads(lines[-1].removeprefix("RESULT "))
    assert out["success"]
    assert out["pool"] == "dbt_spark"
    assert out["metadata"]["engine"] == "spark"
    # the 4 tracked accounts of the generated data on that day (as a DuckDB build gives), read
    # from the DuckDB warehouse after the copy-back
    assert out["health_rows_on_as_of"] == 4
    assert (tmp_path / "spark" / "warehouse" / "marts.db" / "account_health").is_dir()
