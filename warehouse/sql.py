"""Read-only SQL for analysts: `python -m warehouse.sql [QUERY]` (or stdin, or a prompt).

The warehouse file is opened read-only with filesystem access off, so nothing run here can change
the warehouse or write files. Start with `select * from analytics.account_health limit 5`; the
`analytics` schema has the curated, email-masked views (`.tables` lists them at the prompt).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys

import duckdb

from warehouse.connect import WarehouseNotFoundError, open_read_only

TABLES_SQL = (
    "select table_schema as schema, table_name as name, table_type as type "
    "from information_schema.tables where table_schema not in ('information_schema', 'pg_catalog')"
    " order by 1, 2"
)


def _print(rel, fmt: str, out) -> None:
    if rel is None:
        return
    columns = rel.columns
    rows = rel.fetchall()
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


def run_query(con, query: str, fmt: str = "table", out=None) -> None:
    """Run one query (or several separated by `;`, the last one printed)."""
    out = out or sys.stdout
    if query.strip() in (".tables", "\\dt"):
        query = TABLES_SQL
    _print(con.sql(query), fmt, out)


def _prompt(con, fmt: str) -> int:
    print("read-only warehouse; end statements with ';', .tables lists tables, .quit leaves")
    buffer: list[str] = []
    while True:
        try:
            line = input("sql> " if not buffer else "...> ")
        except EOFError:
            print()
            return 0
        if not buffer and line.strip() in (".quit", ".exit", "\\q"):
            return 0
        if not buffer and line.strip() in (".tables", "\\dt"):
            run_query(con, line, fmt)
            continue
        buffer.append(line)
        if line.rstrip().endswith(";"):
            try:
                run_query(con, "\n".join(buffer), fmt)
            except duckdb.Error as exc:
                print(f"error: {exc}", file=sys.stderr)
            buffer = []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m warehouse.sql", description=__doc__.splitlines()[0]
    )
    parser.add_argument("query", nargs="?", help="SQL to run; omit to read stdin or get a prompt")
    parser.add_argument(
        "--database",
        default=os.environ.get("DUCKDB_DATABASE"),
        help="warehouse file (default: $DUCKDB_DATABASE)",
    )
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    args = parser.parse_args(argv)
    if not args.database:
        parser.error("no warehouse: set DUCKDB_DATABASE or pass --database PATH")
    try:
        con = open_read_only(args.database)
    except WarehouseNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except duckdb.IOException as exc:
        print(
            f"error: cannot open {args.database} read-only ({exc}); a pipeline run may be "
            "writing it right now: try again when it has finished",
            file=sys.stderr,
        )
        return 2
    try:
        if args.query is None and sys.stdin.isatty():
            return _prompt(con, args.format)
        query = args.query if args.query is not None else sys.stdin.read()
        try:
            run_query(con, query, args.format)
        except duckdb.Error as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    finally:
        con.close()


if __name__ == "__main__":
    raise SystemExit(main())
