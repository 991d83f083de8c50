"""Fixtures for the Spark tests: run dbt on either target against one small generated warehouse."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DBT_DIR = REPO / "dbt_project"
DBT = str(Path(sys.executable).with_name("dbt"))


def spark_available() -> str | None:
    """Why the Spark target cannot run here (None = it can)."""
    try:
        import dbt.adapters.spark  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError:
        return "the Spark extra is not installed: make install-spark"
    if not shutil.which("java"):
        return "Java 17 is needed for pyspark"
    return None


def run_dbt(target: str, root: Path, args: list[str]) -> float:
    """Run one dbt command on `target` ('duckdb' | 'spark') in `root`; returns seconds taken."""
    env = {
        **os.environ,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
        "EA_DBT_TARGET": target,
        "DUCKDB_DATABASE": str(root / "warehouse.duckdb"),
        "EA_SPARK_DIR": str(root / "spark"),
    }
    started = time.monotonic()
    result = subprocess.run(
        [
            DBT,
            *args,
            "--project-dir",
            str(DBT_DIR),
            "--profiles-dir",
            str(DBT_DIR),
            # each target and run keeps its own artifacts: tests and Dagster may run at once
            "--target-path",
            str(root / f"target-{target}"),
            "--log-path",
            str(root / "logs"),
        ],
        # Spark writes metastore_db/derby.log into the working directory when unconfigured
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"dbt {args[0]} on {target} failed:\n{result.stdout[-4000:]}"
    return time.monotonic() - started


@pytest.fixture
def spark_or_skip():
    reason = spark_available()
    if reason:
        pytest.skip(reason)
