"""Load a whole event history — one or many export files of any size — into raw.* by event date.

`ea load-history --mapping FILE PATH...` (this module's `main`) and the Dagster job
`load_history_job` both call `load_history`. Each file is read once into a staging table (typed
candidate rows, see `ingest.byo.stage_export`); then the rows are loaded in batches of whole
event days, each in its own transaction and through `ingest.events.finish_events`, the
classification, dedupe and quarantine every landing day goes through. Each event day becomes a
landed day of the history (`raw.landed_partitions` source 'history'): every day from the first
to the last event day of all history files loaded, quiet days included.

A history load owns the rows of its files: loading a file again replaces that file's rows
(idempotent), loading another file adds to what is there, and ids already stored (by another
file or a landing folder) on the same or an earlier day are kept there, never duplicated.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ingest.byo import (
    EXTENSIONS,
    ByoMapping,
    StagedFile,
    out_of_memory,
    stage_export,
    staged_parquet,
)
from ingest.common import IngestError, transaction
from ingest.events import CANDIDATE_COLUMNS, finish_events
from ingest.schema import HISTORY_SOURCE, ensure_raw_schema

# Rows per batch transaction: bounds the working set of the classification and the dedupe.
DEFAULT_BATCH_ROWS = 2_000_000
# A run of at least this many days without any event inside the history is reported: those days
# count as quiet days (landed, no activity), which is wrong if a file is missing.
QUIET_GAP_DAYS = 7


@dataclass
class HistoryStats:
    """What one history load did."""

    files: list[StagedFile] = field(default_factory=list)
    first_day: dt.date | None = None  # this load's event days
    last_day: dt.date | None = None
    covered_from: dt.date | None = None  # every history file loaded so far
    covered_to: dt.date | None = None
    batches: int = 0
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: int = 0
    opted_out_dropped: int = 0
    quiet_gaps: list[tuple[dt.date, dt.date]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def bytes_read(self) -> int:
        return sum(f.bytes for f in self.files)

    def as_dict(self) -> dict:
        def day(d):
            return d.isoformat() if d else None

        return {
            "files": [
                {
                    "file": f.name, "bytes": f.bytes, "rows": f.rows, "good_rows": f.good_rows,
                    "first_day": day(f.first_date), "last_day": day(f.last_date),
                    "ignored_columns": f.ignored_columns, "seconds": f.seconds,
                }
                for f in self.files
            ],
            "first_day": day(self.first_day), "last_day": day(self.last_day),
            "covered_from": day(self.covered_from), "covered_to": day(self.covered_to),
            "batches": self.batches, "bytes_read": self.bytes_read, "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded, "rows_quarantined": self.rows_quarantined,
            "quarantined_by_reason": self.quarantined_by_reason,
            "duplicates_dropped": self.duplicates_dropped,
            "opted_out_dropped": self.opted_out_dropped,
            "quiet_gaps": [[day(a), day(b)] for a, b in self.quiet_gaps],
            "seconds": self.seconds,
        }  # fmt: skip


def history_files(paths: Iterable[Path | str], mapping: ByoMapping) -> list[Path]:
    """The files to load: each path given, and the files of each folder given (by extension)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.iterdir()
                if p.is_file()
                and not p.name.startswith((".", "_"))
                and p.name.lower().endswith(EXTENSIONS[mapping.format])
            )
            if not found:
                raise IngestError(
                    f"folder {path} holds no {mapping.format} files "
                    f"({', '.join(EXTENSIONS[mapping.format])}); name the files instead."
                )
            out += found
        elif path.is_file():
            out.append(path)
        else:
            raise IngestError(f"no such file or folder: {path}")
    unique: dict[Path, Path] = {}
    for p in out:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def _batches(day_rows: list[tuple[dt.date, int]], batch_rows: int) -> list[tuple[dt.date, dt.date]]:
    """Contiguous day ranges from the first to the last day, each about `batch_rows` rows."""
    starts: list[dt.date] = []
    size = 0
    for day, n in day_rows:
        if not starts or (size > 0 and size + n > batch_rows):
            starts.append(day)
            size = 0
        size += n
    last = day_rows[-1][0]
    ends = [s - dt.timedelta(days=1) for s in starts[1:]] + [last]
    return list(zip(starts, ends, strict=True))


def _days(a: dt.date, b: dt.date) -> list[dt.date]:
    return [a + dt.timedelta(days=i) for i in range((b - a).days + 1)]


def _quiet_gaps(day_rows: list[tuple[dt.date, int]]) -> list[tuple[dt.date, dt.date]]:
    gaps = []
    for (a, _), (b, _) in zip(day_rows, day_rows[1:], strict=False):
        if (b - a).days - 1 >= QUIET_GAP_DAYS:
            gaps.append((a + dt.timedelta(days=1), b - dt.timedelta(days=1)))
    return gaps


def _examples(con, directory: Path, name: str) -> str:
    rows = con.execute(
        f"""
        select source_line, reason, detail from {staged_parquet([directory])}
        where source_file = $f and reason is not null
        qualify row_number() over (partition by reason order by source_line) = 1
        order by source_line limit 3
        """,
        {"f": name},
    ).fetchall()
    return "; ".join(f"line {line}: {reason} ({detail})" for line, reason, detail in rows)


def _record_file_days(con, dates: list[dt.date], staged: dict[str, StagedFile]) -> None:
    """Replace raw.history_files rows of this batch (per file and event day) from its results."""
    con.execute(
        """
        delete from raw.history_files
        where source_file in (select source_file from _ev_scope) and list_contains($d, landing_date)
        """,
        {"d": dates},
    )
    con.execute(
        """
        insert into raw.history_files
        with c as (
            select source_file, landing_date, count(*) as rows_read,
                   count(*) filter (where reason is not null) as rows_quarantined,
                   count(*) filter (where reason is null and is_dropped) as opted_out_dropped,
                   count(*) filter (where reason is null and not is_dropped) as valid
            from _ev_class group by all
        ),
        n as (select source_file, landing_date, count(*) as rows_loaded from _ev_new group by all),
        f as (select unnest($names) as source_file, unnest($bytes) as bytes,
                     unnest($rows) as file_rows)
        select c.source_file, c.landing_date,
               cast(round(f.bytes * c.rows_read / greatest(f.file_rows, 1)) as bigint),
               c.rows_read, coalesce(n.rows_loaded, 0), c.rows_quarantined,
               c.valid - coalesce(n.rows_loaded, 0), c.opted_out_dropped, now()::timestamp
        from c left join n using (source_file, landing_date) join f using (source_file)
        """,
        {
            "names": list(staged),
            "bytes": [s.bytes for s in staged.values()],
            "rows": [s.rows for s in staged.values()],
        },
    )


def _record_history_days(con) -> None:
    """raw.landed_partitions 'history' rows: every day from the first to the last history day."""
    con.execute("delete from raw.landed_partitions where source = $s", {"s": HISTORY_SOURCE})
    con.execute(
        """
        insert into raw.landed_partitions
        with bounds as (select min(landing_date) as a, max(landing_date) as b
                        from raw.history_files),
        days as (select unnest(generate_series(a, b, interval 1 day))::date as landing_date
                 from bounds where a is not null),
        h as (
            select landing_date, count(distinct source_file) as files, sum(bytes_read) as bytes,
                   sum(rows_read) as rows_read, sum(rows_loaded) as rows_loaded,
                   sum(rows_quarantined) as rows_quarantined,
                   sum(duplicates_dropped) as duplicates_dropped,
                   sum(opted_out_dropped) as opted_out_dropped
            from raw.history_files group by landing_date
        )
        select d.landing_date, $s, coalesce(files, 0), coalesce(bytes, 0), coalesce(rows_read, 0),
               coalesce(rows_loaded, 0), coalesce(rows_quarantined, 0),
               coalesce(duplicates_dropped, 0), 0, coalesce(opted_out_dropped, 0),
               now()::timestamp
        from days d left join h using (landing_date)
        """,
        {"s": HISTORY_SOURCE},
    )


def load_history(
    con,
    paths: Iterable[Path | str],
    mapping: ByoMapping,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Callable[[str], None] | None = None,
    now: dt.datetime | None = None,
    through: dt.date | None = None,
) -> HistoryStats:
    """Load every row of the export files into raw.* by event date (see the module docstring).

    Raises IngestError, with nothing written, when a file cannot be read, lacks a mapped column,
    or has rows but not one usable event. An empty file loads nothing and changes nothing.
    Rows without a usable event time are quarantined under their file's first event day.
    Events after `through` (the day the export was taken), or without it more than a day after
    the load, are quarantined as future_timestamp.
    """
    started = time.perf_counter()
    say = progress or (lambda _message: None)
    stats = HistoryStats()
    files = history_files(paths, mapping)
    if not files:
        raise IngestError("no files to load: name one or more export files or folders")
    ensure_raw_schema(con)
    if not con.execute("select current_setting('preserve_insertion_order')").fetchone()[0]:
        raise IngestError(
            "this DuckDB connection has preserve_insertion_order = false, so rows could get "
            "wrong line numbers; run `set preserve_insertion_order = true` before loading."
        )
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if through is not None:
        not_after = dt.datetime.combine(through + dt.timedelta(days=1), dt.time()) - dt.timedelta(
            microseconds=1
        )
        label = f"after the export's last day ({through})"
    else:
        not_after, label = now + dt.timedelta(days=1), "more than a day after the load"
    staged: dict[str, StagedFile] = {}
    # Each file is staged as Parquet under DuckDB's temp directory: compressed on disk; a batch
    # skips the row groups outside its days.
    stage_root = _stage_root(con)
    directories: dict[str, Path] = {}
    try:
        for i, path in enumerate(files):
            name = path.resolve().as_posix()
            say(f"reading {name} ({path.stat().st_size:,} bytes, {mapping.format})")
            directory = stage_root / f"{i:05d}"
            s = stage_export(con, path, mapping, directory=directory, name=name,
                             not_after=not_after, not_after_label=label)  # fmt: skip
            stats.files.append(s)
            if s.empty:
                say(f"  {path.name}: empty, nothing to load")
                continue
            if s.good_rows == 0:
                raise IngestError(
                    f"{path}: none of its {s.rows:,} rows can be loaded "
                    f"({_examples(con, directory, name)}); "
                    "check the file and the mapping. Nothing was loaded."
                )
            staged[name] = s
            directories[name] = directory
            say(
                f"  {path.name}: {s.rows:,} rows, {s.rows - s.good_rows:,} with a problem, "
                f"events {s.first_date}..{s.last_date} ({s.seconds:.1f}s)"
            )
            if s.ignored_columns:
                say(f"  {path.name}: columns not in the mapping, ignored: "
                    f"{', '.join(s.ignored_columns)}")  # fmt: skip
            if s.zone_less:
                say(
                    f"  {path.name}: {s.zone_less:,} timestamps have no time zone and are "
                    "quarantined; add `timezone:` to the mapping to load them"
                )
        if not staged:
            say("nothing to load")
            stats.seconds = round(time.perf_counter() - started, 2)
            return stats
        con.execute(
            "create or replace temp view _hist_stage as select * from "
            + staged_parquet(list(directories.values()))
        )
        _load_staged(con, staged, stats, batch_rows, say)
    finally:
        con.execute("drop view if exists _hist_stage")
        con.execute("drop table if exists _hist_files")
        shutil.rmtree(stage_root, ignore_errors=True)
    stats.seconds = round(time.perf_counter() - started, 2)
    return stats


def _stage_root(con) -> Path:
    """A fresh folder for the staged Parquet, inside DuckDB's temp directory (it spills there)."""
    temp = con.execute("select current_setting('temp_directory')").fetchone()[0]
    base = Path(temp) if temp else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="history_stage_", dir=base))


def _load_batch(con, a, b, dates, names, staged, started) -> dict:
    """One transaction: the staged rows of days a..b through the shared classification."""
    with transaction(con):
        con.execute(f"create or replace temp table _ev_cand ({CANDIDATE_COLUMNS})")
        # Rows of the batch's days, and the problem rows of files that start in it.
        con.execute(
            """
            insert into _ev_cand by name
            select event_date as landing_date, * exclude (event_date)
            from _hist_stage where event_date between $a and $b
            union all by name
            select f.first_date as landing_date, s.* exclude (event_date)
            from _hist_stage s join _hist_files f using (source_file)
            where s.event_date is null and f.first_date between $a and $b
            """,
            {"a": a, "b": b},
        )
        day_stats = finish_events(
            con, dates, files={}, bytes_read={}, started=started, source=HISTORY_SOURCE,
            scope_files=names, check_known=False, record=False,
        )  # fmt: skip
        _record_file_days(con, dates, staged)
    return day_stats


def _load_staged(con, staged: dict[str, StagedFile], stats, batch_rows: int, say) -> None:
    names = list(staged)
    # Each row's landing day: its event date; rows with a problem: their file's first event day.
    con.execute(
        "create or replace temp table _hist_files as "
        "select unnest($n) as source_file, unnest($d)::date as first_date",
        {"n": names, "d": [s.first_date for s in staged.values()]},
    )
    day_rows = con.execute(
        """
        select coalesce(s.event_date, f.first_date) as day, count(*)
        from _hist_stage s join _hist_files f using (source_file) group by 1 order by 1
        """
    ).fetchall()
    good_days = con.execute(
        "select event_date, count(*) from _hist_stage where event_date is not null "
        "group by 1 order by 1"
    ).fetchall()
    stats.first_day, stats.last_day = day_rows[0][0], day_rows[-1][0]
    stats.quiet_gaps = _quiet_gaps(good_days)
    batches = _batches(day_rows, batch_rows)
    stats.batches = len(batches)
    say(
        f"loading {sum(n for _, n in day_rows):,} rows of {stats.first_day}..{stats.last_day} "
        f"in {len(batches)} batch(es) of whole days"
    )
    for i, (a, b) in enumerate(batches, start=1):
        t0 = time.perf_counter()
        dates = _days(a, b)
        try:
            day_stats = _load_batch(con, a, b, dates, names, staged, t0)
        except duckdb.OutOfMemoryException as exc:
            raise out_of_memory(
                con,
                f"loading {a}..{b} (batch {i} of {len(batches)}; the batches before it are "
                "loaded, re-run the same command to finish)",
            ) from exc
        read = loaded = quarantined = duplicates = 0
        for s in day_stats.values():
            read += s.rows_read
            loaded += s.rows_loaded
            quarantined += s.rows_quarantined
            duplicates += s.duplicates_dropped
            stats.opted_out_dropped += s.opted_out_dropped
            for reason, n in s.quarantined_by_reason.items():
                stats.quarantined_by_reason[reason] = stats.quarantined_by_reason.get(reason, 0) + n
        stats.rows_read += read
        stats.rows_loaded += loaded
        stats.rows_quarantined += quarantined
        stats.duplicates_dropped += duplicates
        seconds = time.perf_counter() - t0
        say(
            f"batch {i}/{len(batches)} {a}..{b}: {loaded:,} loaded, {quarantined:,} quarantined, "
            f"{duplicates:,} duplicates ({seconds:.1f}s, {read / max(seconds, 1e-6):,.0f} rows/s)"
        )
    with transaction(con):
        # Rows these files stored on days they no longer cover (a re-exported file) go.
        scope = {"n": names, "a": stats.first_day, "b": stats.last_day}
        for table, extra in (
            ("raw.events", ""),
            ("raw.history_files", ""),
            ("raw.quarantine", f" and source = '{HISTORY_SOURCE}'"),
        ):
            con.execute(
                f"delete from {table} where list_contains($n, source_file) "
                f"and landing_date not between $a and $b{extra}",
                scope,
            )
        _record_history_days(con)
    stats.covered_from, stats.covered_to = con.execute(
        "select min(landing_date), max(landing_date) from raw.history_files"
    ).fetchone()
    for a, b in stats.quiet_gaps:
        say(
            f"note: no events from {a} to {b} ({(b - a).days + 1} days); the history counts "
            "them as quiet days. If a file is missing, load it too."
        )
    if stats.quiet_gaps:
        # A handful of events long after the rest are usually clock errors; they stretch the
        # history (every day up to them counts as landed and quiet).
        a, b = stats.quiet_gaps[-1]
        tail = sum(n for day, n in good_days if day > b)
        if tail < 0.01 * sum(n for _, n in good_days):
            say(
                f"note: only {tail:,} events come after that last gap, up to {stats.last_day}; "
                f"if their clocks are wrong, load again with --through {a - dt.timedelta(days=1)}"
            )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ea load-history",
        description="Load a whole event history (CSV, Parquet, JSON Lines or whitespace-separated "
        "text; one or many files of any size) into the warehouse by event date, through a "
        "mapping file. Re-running with the same files changes nothing; other files add to it.",
        epilog="examples:\n"
        "  ea load-history --mapping my_mapping.yml export.csv\n"
        "  ea load-history --mapping config/examples/cdnow_mapping.yml "
        ".venv/lib/python3.11/site-packages/lifetimes/datasets/CDNOW_master.txt\n"
        "  ea load-history --mapping my_mapping.yml exports/   # every file of the folder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="export files or folders")
    p.add_argument(
        "--mapping", required=True, type=Path,
        help="the mapping file (see config/byo_mapping.example.yml)",
    )  # fmt: skip
    p.add_argument(
        "--database", default=os.environ.get("DUCKDB_DATABASE"),
        help="the warehouse file (default: $DUCKDB_DATABASE)",
    )  # fmt: skip
    p.add_argument(
        "--memory-limit", default=os.environ.get("EA_DUCKDB_MEMORY_LIMIT") or "2GB",
        help="DuckDB's memory limit; beyond it work spills to disk "
        "(default: $EA_DUCKDB_MEMORY_LIMIT or 2GB)",
    )  # fmt: skip
    p.add_argument(
        "--batch-rows", type=int, default=DEFAULT_BATCH_ROWS,
        help=f"rows per load transaction (whole days; default {DEFAULT_BATCH_ROWS:,})",
    )  # fmt: skip
    p.add_argument(
        "--through", type=dt.date.fromisoformat, metavar="YYYY-MM-DD",
        help="the export's last day: later events are quarantined as future_timestamp "
        "(default: up to a day after now)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result as JSON at the end")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.database:
        print("error: set DUCKDB_DATABASE or pass --database", file=sys.stderr)
        return 2
    def say(message: str) -> None:
        print(f"[history {time.strftime('%H:%M:%S')}] {message}", flush=True)

    try:
        mapping = ByoMapping.from_yaml(args.mapping)
        Path(args.database).parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(args.database, config={"memory_limit": args.memory_limit}) as con:
            stats = load_history(con, args.paths, mapping, batch_rows=args.batch_rows,
                                 progress=say, through=args.through)  # fmt: skip
    except IngestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except duckdb.IOException as exc:
        print(f"error: cannot open {args.database}: {exc}", file=sys.stderr)
        return 1
    if stats.rows_read:
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.quarantined_by_reason.items()))
        say(
            f"done in {stats.seconds:.1f}s: {stats.rows_loaded:,} events loaded, "
            f"{stats.rows_quarantined:,} quarantined{f' ({reasons})' if reasons else ''}, "
            f"{stats.duplicates_dropped:,} duplicates dropped"
        )
        next_day = stats.covered_to + dt.timedelta(days=1)
        say(
            f"the history covers {stats.covered_from}..{stats.covered_to}; daily landings "
            f"continue from {next_day} (landing folders {next_day} onward). Quarantined rows: "
            "ea sql \"select * from raw.quarantine where source = 'history'\""
        )
    if args.json:
        print(json.dumps(stats.as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
