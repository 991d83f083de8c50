"""Engine-neutral warehouse access: raw tables out to Parquet for Spark, its marts back in."""

from pathlib import Path

import duckdb

from warehouse.catalog import table_columns, table_type

RAW_TABLES = ("events", "accounts", "users", "outcomes", "landed_partitions", "quarantine")
# Marts and intermediate tables the later stages read (scoring, alert evaluation, KPIs).
SPARK_SCHEMAS = ("marts", "intermediate")


def spark_dir_layout(spark_dir: Path) -> dict[str, Path]:
    """Where the Spark target keeps its files (the dbt profile uses the same layout)."""
    return {
        "raw": spark_dir / "raw",
        "warehouse": spark_dir / "warehouse",
        "metastore": spark_dir / "metastore",
    }


def export_raw_to_parquet(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> dict[str, int]:
    """Write each validated raw.<table> to <raw_dir>/<table>/part-0.parquet; returns row counts.

    Ingestion validates and deduplicates in DuckDB; Spark then reads exactly these rows (the
    dbt macro spark__register_raw_sources registers the folders as external tables). Each file
    is written next to its final name and renamed, so a reader never sees half a file.
    """
    counts = {}
    for table in RAW_TABLES:
        columns = table_columns(con, "raw", table)
        if not columns:
            raise RuntimeError(
                f"raw.{table} is missing from the warehouse: run ingestion before exporting "
                "the raw tables for Spark"
            )
        # JSON text stays text; everything else keeps its type.
        select = ", ".join(
            f'cast("{name}" as varchar) as "{name}"' if kind == "JSON" else f'"{name}"'
            for name, kind in columns.items()
        )
        folder = raw_dir / table
        folder.mkdir(parents=True, exist_ok=True)
        final, partial = folder / "part-0.parquet", folder / ".part-0.parquet.tmp"
        con.execute(f"copy (select {select} from raw.{table}) to '{partial}' (format parquet)")
        partial.replace(final)
        counts[table] = con.execute(f"select count(*) from raw.{table}").fetchone()[0]
    return counts


def _spark_tables(warehouse_dir: Path, schemas: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(schema, table, select over its Parquet files) for every Spark table with data."""
    found = []
    for schema in schemas:
        folder = warehouse_dir / f"{schema}.db"
        if not folder.is_dir():
            continue
        for table_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            if any(table_dir.rglob("*.parquet")):
                # partitioned tables keep the partition column in folder names (col=value)
                source = f"read_parquet('{table_dir}/**/*.parquet', hive_partitioning = true)"
                found.append((schema, table_dir.name, source))
    if not found:
        raise RuntimeError(
            f"no Spark tables under {warehouse_dir}: build the dbt project with the spark "
            "target first (EA_DBT_TARGET=spark)"
        )
    return found


def _as_duckdb_types(con: duckdb.DuckDBPyConnection, source: str) -> str:
    """Select list giving the DuckDB build's types: Spark's UTC timestamps become naive UTC."""
    columns = con.execute(f"describe select * from {source}").fetchall()
    return ", ".join(
        f'timezone(\'UTC\', "{name}") as "{name}"'
        if kind == "TIMESTAMP WITH TIME ZONE"
        else f'"{name}"'
        for name, kind, *_ in columns
    )


def attach_spark_tables(
    con: duckdb.DuckDBPyConnection, warehouse_dir: Path, schemas: tuple[str, ...] = SPARK_SCHEMAS
) -> list[str]:
    """Create DuckDB views <schema>.<table> over the Parquet files of Spark's tables.

    Use a separate DuckDB database (or an in-memory one): the names are those of the tables
    a DuckDB build writes. Returns the view names.
    """
    views = []
    for schema, table, source in _spark_tables(warehouse_dir, schemas):
        con.execute(f"create schema if not exists {schema}")
        con.execute(
            f"create or replace view {schema}.{table} as "
            f"select {_as_duckdb_types(con, source)} from {source}"
        )
        views.append(f"{schema}.{table}")
    return views


def load_spark_tables(
    con: duckdb.DuckDBPyConnection, warehouse_dir: Path, schemas: tuple[str, ...] = SPARK_SCHEMAS
) -> dict[str, int]:
    """Copy Spark's marts into the DuckDB warehouse (same names), so scoring, alert evaluation
    and KPIs read `marts.*` unchanged whichever engine built them. Returns rows per table.

    One transaction: readers see the old or the new tables, never a mix.
    """
    counts = {}
    con.execute("begin")
    try:
        for schema, table, source in _spark_tables(warehouse_dir, schemas):
            con.execute(f"create schema if not exists {schema}")
            if table_type(con, schema, table) == "VIEW":
                # DuckDB builds the intermediate models as views; Spark's are tables
                con.execute(f"drop view {schema}.{table}")
            con.execute(
                f"create or replace table {schema}.{table} as "
                f"select {_as_duckdb_types(con, source)} from {source}"
            )
            counts[f"{schema}.{table}"] = con.execute(
                f"select count(*) from {schema}.{table}"
            ).fetchone()[0]
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return counts
