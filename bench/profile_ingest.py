"""Seconds per SQL statement of a landing-folder load, outside Dagster.

    .venv/bin/python -m bench.profile_ingest --landing data/bench_runs/large/landing \
        --database /tmp/profile.duckdb [--days 62]

Loads the complete landing folders (the first `--days` of them, or all) into a new warehouse
file with `ingest.load_landing_days`, the function the `raw_landing` asset calls, timing every
statement the loader sends. Statements are grouped by their first words (the same statement of
every batch adds up), and the slowest are printed with their share of the whole load. This is
where the figures of docs/benchmark.md's "Ingest statement by statement" come from.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import duckdb

from ingest.loader import find_landing_days, load_landing_days
from ingest.schema import ensure_raw_schema


class TimedConnection:
    """A DuckDB connection that adds up the seconds each statement takes."""

    def __init__(self, con) -> None:
        self.con = con
        self.seconds: dict[str, float] = {}

    def execute(self, sql: str, *args):
        started = time.perf_counter()
        result = self.con.execute(sql, *args)
        key = re.sub(r"\s+", " ", sql.strip())[:80]
        self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started
        return result

    def __getattr__(self, name):
        return getattr(self.con, name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, required=True, help="a landing folder")
    parser.add_argument("--database", type=Path, required=True, help="a new DuckDB file")
    parser.add_argument("--days", type=int, default=0, help="only the first N days (0: all)")
    parser.add_argument("--top", type=int, default=15, help="statements to print")
    args = parser.parse_args(argv)
    if args.database.exists():
        parser.error(f"{args.database} exists; give a new file (it is filled from scratch)")
    days = list(find_landing_days(args.landing))
    if not days:
        parser.error(f"no complete landing folder (with _manifest.json) in {args.landing}")
    days = days[: args.days] if args.days else days
    con = duckdb.connect(str(args.database))
    try:
        timed = TimedConnection(con)
        ensure_raw_schema(timed)
        started = time.perf_counter()
        load_landing_days(timed, args.landing, days)
        total = time.perf_counter() - started
        (events,) = con.execute("select count(*) from raw.events").fetchone()
    finally:
        con.close()
    print(f"{len(days)} landing days, {events:,} events stored, {total:.1f} s")
    for key, seconds in sorted(timed.seconds.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{seconds:8.2f} s  {100 * seconds / total:5.1f} %  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
