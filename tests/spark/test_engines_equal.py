"""The dbt project on DuckDB and on Spark gives the same marts, row for row, also after an
incremental day (one small generated dataset, both engines, real dbt runs)."""

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from orchestration.engine import attach_spark_tables, export_raw_to_parquet
from tests.marts import rawdata
from tests.spark.conftest import run_dbt

# Two month batches (January, February) include the missing landing day and Monday snapshots;
# then one incremental day, a Monday (a new CRM snapshot lands).
FIRST_AS_OF = dt.date(2025, 2, 16)
NEXT_DAY = dt.date(2025, 2, 17)
# Models only: the data tests already run on DuckDB (tests/marts) and the same SQL runs here.
SELECTION = [
    "--resource-type",
    "model",
    "--resource-type",
    "seed",
    "--exclude",
    "path:models/outcomes",
]
TABLES = (
    "intermediate.int_user_days_aggregated",
    "intermediate.int_document_interactions_aggregated",
    "intermediate.int_feature_usage_aggregated",
    "marts.fct_account_daily_engagement",
    "marts.account_health",
    "marts.dim_accounts",
    "marts.dim_accounts_history",
    "marts.ml_features",
    "marts.feature_adoption",
    "marts.data_freshness",
    "marts.feature_catalog",
)


def load_and_export(root: Path, through: dt.date) -> None:
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        rawdata.build_raw(con, through)
        export_raw_to_parquet(con, root / "spark" / "raw")


def build_both(root: Path, args: list[str]) -> dict[str, float]:
    return {
        target: run_dbt(target, root, ["build", *SELECTION, *args])
        for target in ("duckdb", "spark")
    }


def differences(root: Path) -> dict[str, tuple[int, int, int]]:
    """table -> (rows, rows only on DuckDB, rows only on Spark), compared in DuckDB's types."""
    out = {}
    with duckdb.connect() as con:
        con.execute(f"attach '{root / 'warehouse.duckdb'}' as duck (read_only)")
        con.execute("attach ':memory:' as spark")
        con.execute("use spark")
        attach_spark_tables(con, root / "spark" / "warehouse")
        for table in TABLES:
            schema, name = table.split(".")
            columns = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_catalog = 'duck' and table_schema = ? and table_name = ? "
                "order by ordinal_position",
                [schema, name],
            ).fetchall()
            # doubles summed in a different order may differ in the last bits
            select = ", ".join(
                f"round(cast({c} as double), 9)"
                if kind in ("DOUBLE", "FLOAT")
                else f"cast({c} as {kind})"
                for c, kind in columns
            )
            query = (
                "select count(*) from (select {s} from {a}.{t} except all select {s} from {b}.{t})"
            )
            only_duck = con.execute(
                query.format(s=select, a="duck", b="spark", t=table)
            ).fetchone()[0]
            only_spark = con.execute(
                query.format(s=select, a="spark", b="duck", t=table)
            ).fetchone()[0]
            rows = con.execute(f"select count(*) from duck.{table}").fetchone()[0]
            out[table] = (rows, only_duck, only_spark)
    return out


# 5-11 minutes on a busy 2-core machine (JVM start, per-statement planning): CI, `make test`.
@pytest.mark.slow
def test_duckdb_and_spark_build_identical_marts(tmp_path, spark_or_skip):
    load_and_export(tmp_path, FIRST_AS_OF)
    full = build_both(
        tmp_path,
        [
            "--full-refresh",
            "--vars",
            f"{{as_of_date: '{FIRST_AS_OF}', history_start: '{rawdata.START}', "
            "microbatch_size: month}",
            "--event-time-start",
            rawdata.START.isoformat(),
            "--event-time-end",
            (FIRST_AS_OF + dt.timedelta(days=1)).isoformat(),
        ],
    )
    after_full = differences(tmp_path)
    for table, (rows, only_duck, only_spark) in after_full.items():
        assert rows > 0, f"{table} is empty: the comparison would prove nothing"
        assert (only_duck, only_spark) == (0, 0), (
            f"{table} differs after the full build: {after_full}"
        )

    load_and_export(tmp_path, NEXT_DAY)
    incremental = build_both(
        tmp_path,
        [
            "--vars",
            f"{{as_of_date: '{NEXT_DAY}', history_start: '{rawdata.START}', microbatch_size: day}}",
            "--event-time-start",
            NEXT_DAY.isoformat(),
            "--event-time-end",
            (NEXT_DAY + dt.timedelta(days=1)).isoformat(),
        ],
    )
    after_day = differences(tmp_path)
    assert after_day["marts.account_health"][0] > after_full["marts.account_health"][0]
    for table, (_, only_duck, only_spark) in after_day.items():
        assert (only_duck, only_spark) == (0, 0), (
            f"{table} differs after one incremental day: {after_day}"
        )
    print(f"seconds full build {full}, incremental day {incremental}")
