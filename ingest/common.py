"""Shared pieces of the loaders: errors, per-source statistics, transactions and file reading."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from warehouse.catalog import table_exists


class IngestError(RuntimeError):
    """A landing file or folder cannot be loaded; the message names the file and what to fix."""


@dataclass
class SourceStats:
    """What one load of one source for one landing day did (mirrors raw.landed_partitions)."""

    source: str
    landing_date: dt.date
    files: int = 0
    bytes_read: int = 0
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: int = 0
    late_events: int = 0
    opted_out_dropped: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        out = asdict(self)
        out["landing_date"] = self.landing_date.isoformat()
        return out


# Connections inside a transaction opened here; DuckDB aborts a transaction on a nested BEGIN,
# so nesting must be known up front rather than tried.
_OPEN: set[int] = set()


@contextlib.contextmanager
def transaction(con) -> Iterator[None]:
    """Run a block atomically; nested use joins the outer transaction."""
    if id(con) in _OPEN:
        yield
        return
    con.execute("begin transaction")
    _OPEN.add(id(con))
    try:
        yield
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        _OPEN.discard(id(con))
    # Dropping the loaders' scratch tables first makes the commit cheap: committing a
    # transaction that still holds large temp tables costs seconds per million rows.
    _drop_scratch_tables(con)
    con.execute("commit")


# Name prefixes of the temp tables the loaders create inside their transactions.
_SCRATCH_PREFIXES = ("_ev_", "_csv", "_ingest_", "_byo")


def _drop_scratch_tables(con) -> None:
    names = con.execute(
        "select table_name from duckdb_tables() where temporary and database_name = 'temp'"
    ).fetchall()
    for (name,) in names:
        if name.startswith(_SCRATCH_PREFIXES):
            con.execute(f'drop table temp.main."{name}"')


def day_dir(landing_dir: Path, landing_date: dt.date) -> Path:
    return Path(landing_dir) / landing_date.isoformat()


def relative_name(path: Path, landing_dir: Path) -> str:
    """How a file is named in raw tables: relative to the landing folder when it is inside it."""
    try:
        return Path(path).relative_to(landing_dir).as_posix()
    except ValueError:
        return Path(path).as_posix()


def read_manifest(folder: Path) -> dict:
    """The folder's `_manifest.json`; a folder without one is still being written."""
    path = Path(folder) / "_manifest.json"
    if not path.exists():
        raise IngestError(
            f"{folder} has no _manifest.json: the folder is still being written or was not "
            "produced by a complete export; wait for the manifest or write it last."
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise IngestError(f"{path} is not valid JSON ({exc}); rewrite the manifest.") from exc


def manifest_files(folder: Path) -> set[str] | None:
    """File names the folder's manifest lists, or None without a manifest or a file list."""
    path = Path(folder) / "_manifest.json"
    if not path.exists():
        return None
    files = read_manifest(folder).get("files")
    return set(files) if files else None


def load_many_lines(con, table: str, files: list[tuple[Path, str, dt.date]]) -> int:
    """Append every physical line of many text files (plain or .gz) to `table`, in one scan.

    `files` holds (path, name in raw tables, landing day); `table` has (landing_date,
    source_file, source_line, line, read_error). Lines the reader rejects (invalid UTF-8, a stray
    separator byte) keep their number and get `read_error`, so they can be quarantined; a file
    that cannot be decompressed or read at all fails loudly. Returns the number of lines.

    Line numbers rely on this: a `row_number() over ()` over a
    scan without ORDER BY numbers the rows in scan order (DuckDB preserves insertion order and
    runs this window as a streaming, single-threaded operator), and a multi-file scan yields the
    files one after another in list order. A file's first line is then its smallest number, which
    does not depend on any order. If the scan fails, the files are probed one by one so the
    error names the file that cannot be read.
    """
    files = [f for f in files if Path(f[0]).stat().st_size > 0]
    if not files:
        return 0
    if not con.execute("select current_setting('preserve_insertion_order')").fetchone()[0]:
        raise IngestError(
            "this DuckDB connection has preserve_insertion_order = false, so event lines could "
            "get wrong line numbers; run `set preserve_insertion_order = true` before loading."
        )
    con.execute("drop table if exists _ingest_rejects")
    con.execute("drop table if exists _ingest_reject_scans")
    params = {
        "paths": [str(p) for p, _, _ in files],
        "names": [n for _, n, _ in files],
        "days": [d for _, _, d in files],
    }
    con.execute(
        "create or replace temp table _ingest_names as select unnest($paths) as path, "
        "unnest($names) as source_file, unnest($days)::date as landing_date",
        params,
    )
    try:
        con.execute(
            """
            create or replace temp table _ingest_file as
            select row_number() over () as k, filename as path, line
            from read_csv($paths, columns = {'line': 'VARCHAR'}, delim = chr(31), quote = '',
                          escape = '', header = false, auto_detect = false, parallel = false,
                          filename = true, store_rejects = true,
                          rejects_table = '_ingest_rejects',
                          rejects_scan = '_ingest_reject_scans')
            """,
            {"paths": params["paths"]},
        )
    except duckdb.Error as exc:
        raise _unreadable(con, [Path(p) for p, _, _ in files], exc) from exc
    has_rejects = table_exists(con, "main", "_ingest_rejects")  # the reader's temp table
    if has_rejects:
        con.execute(
            """
            create or replace temp table _ingest_rejected as
            select s.file_path as path, r.line as source_line, any_value(r.csv_line) as line,
                   string_agg(distinct r.error_type, ', ') as read_error
            from _ingest_rejects r join _ingest_reject_scans s using (scan_id, file_id)
            group by all
            """
        )
    else:
        con.execute(
            "create or replace temp table _ingest_rejected (path varchar, source_line bigint, "
            "line varchar, read_error varchar)"
        )
    # Most files have no rejected line: their k-th line is line k. In a file with rejected
    # lines, the k-th good line sits at the k-th line number that was not rejected.
    inserted = con.execute(
        f"""
        insert into {table}
        with firsts as (select path, min(k) as k0 from _ingest_file group by path),
        numbered as (
            -- A hash join with each file's first number: cheaper than a window per file.
            select path, line, k - k0 + 1 as kf from _ingest_file join firsts using (path)
        ),
        dirty as (
            select r.path, r.n + coalesce(g.n, 0) as n
            from (select path, count(*) as n from _ingest_rejected group by path) r
            left join (
                select path, count(*) as n from _ingest_file
                where path in (select path from _ingest_rejected) group by path
            ) g using (path)
        ),
        dirty_numbers as (
            select path, row_number() over (partition by path order by l) as kf, l
            from (select path, unnest(range(1, n + 1)) as l from dirty) t
            where not exists (
                select 1 from _ingest_rejected r where r.path = t.path and r.source_line = t.l
            )
        ),
        good as (
            select n.path, coalesce(dn.l, n.kf) as source_line, n.line
            from numbered n left join dirty_numbers dn using (path, kf)
        )
        select f.landing_date, f.source_file, g.source_line, g.line, null
        from good g join _ingest_names f using (path)
        union all
        select f.landing_date, f.source_file, r.source_line, r.line,
               'unreadable line: ' || r.read_error
        from _ingest_rejected r join _ingest_names f using (path)
        """
    )
    return inserted.fetchone()[0]


def _unreadable(con, paths: list[Path], exc: Exception) -> IngestError:
    """The error for a failed multi-file scan, naming the first file that cannot be read."""
    # The failed statement aborted the caller's transaction; a cursor has its own.
    probe = con.cursor()
    try:
        for path in paths:
            try:
                probe.execute(
                    "select count(*) from read_csv(?, columns = {'line': 'VARCHAR'}, "
                    "delim = chr(31), quote = '', escape = '', header = false, "
                    "auto_detect = false, ignore_errors = true)",
                    [str(path)],
                )
            except duckdb.Error as file_exc:
                return IngestError(
                    f"cannot read {path}: {file_exc}. The file is corrupt or truncated; "
                    "re-export it (and its manifest) and re-run this landing day."
                )
    finally:
        probe.close()
    return IngestError(
        f"cannot read the event files {', '.join(map(str, paths))}: {exc}. Check that they are "
        "complete JSON Lines files (plain or gzip) and re-run these landing days."
    )
