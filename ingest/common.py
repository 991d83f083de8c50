"""Shared pieces of the loaders: errors, per-source statistics, transactions and file reading."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb


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


def load_lines(con, table: str, path: Path, name: str, landing_date: dt.date) -> int:
    """Append every physical line of a text file (plain or .gz) to `table` with its line number.

    `table` has (landing_date, source_file, source_line, line, read_error). Lines the reader
    rejects (invalid UTF-8, a stray separator byte) keep their number and get `read_error`, so
    they can be quarantined; a file that cannot be decompressed or read at all fails loudly.
    Returns the number of lines.
    """
    if path.stat().st_size == 0:
        return 0
    exists = con.execute(
        "select count(*) from duckdb_tables() where table_name = '_ingest_rejects'"
    ).fetchone()[0]
    if exists:
        con.execute("delete from _ingest_rejects")
    try:
        con.execute(
            """
            create or replace temp table _ingest_file as
            select row_number() over () as k, line
            from read_csv(?, columns = {'line': 'VARCHAR'}, delim = chr(31), quote = '',
                          escape = '', header = false, auto_detect = false, parallel = false,
                          store_rejects = true, rejects_table = '_ingest_rejects',
                          rejects_scan = '_ingest_reject_scans')
            """,
            [str(path)],
        )
    except duckdb.Error as exc:
        raise IngestError(
            f"cannot read {path}: {exc}. The file is corrupt or truncated; re-export it "
            "(and its manifest) and re-run this landing day."
        ) from exc
    # Rejected lines drop out of the scan, so good line k sits at the k-th line number that was
    # not rejected.
    con.execute(
        """
        create or replace temp table _ingest_rejected as
        select line as source_line, any_value(csv_line) as line,
               string_agg(distinct error_type, ', ') as read_error
        from _ingest_rejects group by line
        """
    )
    inserted = con.execute(
        f"""
        insert into {table}
        with total as (
            select (select count(*) from _ingest_file)
                   + (select count(*) from _ingest_rejected) as n
        ),
        numbers as (
            select row_number() over (order by l) as k, l
            from range(1, (select n from total) + 1) t(l)
            where l not in (select source_line from _ingest_rejected)
        )
        select $day, $name, n.l, f.line, null from _ingest_file f join numbers n using (k)
        union all
        select $day, $name, source_line, line, 'unreadable line: ' || read_error
        from _ingest_rejected
        """,
        {"day": landing_date, "name": name},
    )
    return inserted.fetchone()[0]
