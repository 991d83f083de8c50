"""SQL for analysts and the data team: `ea sql [QUERY]` (or stdin, or a prompt).

By default it reads the analyst database: the curated, email-masked `analytics` schema that
every pipeline run publishes (`$EA_ANALYST_DATABASE`, default `$EA_DATA_DIR/analyst.duckdb`).
It never holds a lock the pipeline needs, and queries run under memory, thread and time limits.
Start with `select * from analytics.account_health limit 5`; `.tables` lists the tables.

`--full` is the data team's path: the whole warehouse (`$DUCKDB_DATABASE`, raw data included),
read-only with filesystem access off. DuckDB lets no one read a file another process writes, so
each statement waits for a running pipeline step to finish writing (`--wait` seconds) and holds
the file only while it runs; a long `--full` query delays the pipeline's next write.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import duckdb

from warehouse.analyst import (
    AnalystDatabaseMissingError,
    AnalystLimits,
    AnalystSession,
    QueryTimeoutError,
    analyst_database_path,
)
from warehouse.connect import WarehouseNotFoundError, open_read_only

TABLES_SQL = (
    "select table_schema as schema, table_name as name, table_type as type "
    "from information_schema.tables where table_schema not in ('information_schema', 'pg_catalog')"
    " order by 1, 2"
)


class WarehouseBusyError(RuntimeError):
    """The pipeline kept the warehouse for writing longer than `--wait`."""


_ERRORS = (duckdb.Error, QueryTimeoutError, WarehouseBusyError)


def _print(columns: list[str], rows: list[tuple], fmt: str, out) -> None:
    if not columns:
        return
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows(rows)
    elif fmt == "json":
        for row in rows:
            out.write(json.dumps(dict(zip(columns, row, strict=True)), default=str) + "\n")
    else:
        widths = [len(c) for c in columns]
        text = [["NULL" if v is None else str(v) for v in row] for row in rows]
        for row in text:
            widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
        out.write(" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + "\n")
        out.write("-+-".join("-" * w for w in widths) + "\n")
        for row in text:
            out.write(" | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + "\n")
        out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")


def _fetch(con, query: str) -> tuple[list[str], list[tuple]]:
    rel = con.sql(query)
    if rel is None:
        return [], []
    return rel.columns, rel.fetchall()


class FullWarehouse:
    """The data team's read-only access to the whole warehouse, one open per statement."""

    def __init__(self, path: str | Path, wait_seconds: float = 60.0):
        self.path = Path(path)
        self.wait_seconds = wait_seconds
        self._open().close()  # fail now on a missing file rather than at the first query

    def _open(self):
        deadline = time.monotonic() + self.wait_seconds
        told = False
        while True:
            try:
                return open_read_only(self.path)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise WarehouseBusyError(
                        f"cannot open {self.path} read-only: a pipeline run is writing it and "
                        f"did not finish within {self.wait_seconds:g} s; try again when it has "
                        "finished (or pass --wait SECONDS), or query the analyst database "
                        "(ea sql without --full), which runs never lock"
                    ) from exc
                if not told:
                    print("waiting for the pipeline to finish writing...", file=sys.stderr)
                    told = True
                time.sleep(0.5)

    def query(self, query: str) -> tuple[list[str], list[tuple]]:
        con = self._open()
        try:
            return _fetch(con, query)
        finally:
            con.close()

    def refresh(self) -> None:
        """Every statement already reads the warehouse as it is now."""

    def close(self) -> None:
        """Nothing stays open between statements."""


def run_query(session, query: str, fmt: str = "table", out=None) -> None:
    """Run one query (or several separated by `;`, the last one printed)."""
    out = out or sys.stdout
    if query.strip() in (".tables", "\\dt"):
        query = TABLES_SQL
    _print(*session.query(query), fmt, out)


def _prompt(session, fmt: str, label: str) -> int:
    print(f"{label}; end statements with ';', .tables lists tables, .refresh reopens the newest "
          "snapshot, .quit leaves")  # fmt: skip
    buffer: list[str] = []
    while True:
        try:
            line = input("sql> " if not buffer else "...> ")
        except EOFError:
            print()
            return 0
        command = line.strip()
        if not buffer and command in (".quit", ".exit", "\\q"):
            return 0
        if not buffer and command == ".refresh":
            session.refresh()
            continue
        if not buffer and command in (".tables", "\\dt"):
            run_query(session, line, fmt)
            continue
        buffer.append(line)
        if line.rstrip().endswith(";"):
            try:
                run_query(session, "\n".join(buffer), fmt)
            except _ERRORS as exc:
                print(f"error: {exc}", file=sys.stderr)
            buffer = []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ea sql",
        description=__doc__.split("\n\n")[0],
        epilog='examples:\n  ea sql "select * from analytics.alerts limit 10"\n'
        "  ea sql --format csv < query.sql > result.csv\n"
        '  ea sql --full "select count(*) from raw.events"',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("query", nargs="?", help="SQL to run; omit to read stdin or get a prompt")
    parser.add_argument(
        "--full",
        action="store_true",
        help="the data team's path: the whole warehouse ($DUCKDB_DATABASE), read-only",
    )
    parser.add_argument(
        "--database",
        default=None,
        help="file to read (default: the analyst database, or $DUCKDB_DATABASE with --full)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=60.0,
        help="with --full: seconds to wait while a pipeline run writes (default 60)",
    )
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    args = parser.parse_args(argv)
    try:
        if args.full:
            path = args.database or os.environ.get("DUCKDB_DATABASE")
            if not path:
                parser.error("no warehouse: set DUCKDB_DATABASE or pass --database PATH")
            session, label = FullWarehouse(path, args.wait), "full warehouse (read-only)"
        else:
            path = args.database or analyst_database_path()
            session = AnalystSession(path, AnalystLimits.from_env())
            label = "analyst database (analytics schema, read-only)"
    except (WarehouseNotFoundError, AnalystDatabaseMissingError, WarehouseBusyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.query is None and sys.stdin.isatty():
            return _prompt(session, args.format, label)
        query = args.query if args.query is not None else sys.stdin.read()
        try:
            run_query(session, query, args.format)
        except WarehouseBusyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except (duckdb.Error, QueryTimeoutError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    finally:
        session.close()


if __name__ == "__main__":
    raise SystemExit(main())
