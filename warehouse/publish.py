"""Publishing a snapshot: tables or queries copied into a new DuckDB file, renamed into place.

Readers open the published file, never the warehouse, so they hold no lock the pipeline needs.
A publish writes a fresh file beside the target and renames it over the old one in one step:
a reader that opened the old file keeps reading it (the old file lives on until its last reader
closes it); the next open sees the new one. A reader never sees half a publish.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Left behind only by a process killed mid-publish; removed by the next publish after this long.
_STALE_SECONDS = 3600


@dataclass(frozen=True)
class PublishResult:
    """What one publish wrote: rows per table, file size and time taken."""

    path: Path
    rows: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    seconds: float = 0.0

    def as_metadata(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "tables": len(self.rows),
            "rows": sum(self.rows.values()),
            "megabytes": round(self.bytes / 1e6, 3),
            "seconds": round(self.seconds, 3),
        }


def _split(name: str) -> tuple[str, str]:
    parts = name.split(".")
    if len(parts) != 2 or not all(p.isidentifier() for p in parts):
        raise ValueError(f"published table names are 'schema.table' identifiers, not {name!r}")
    return parts[0], parts[1]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale(target: Path) -> None:
    now = time.time()
    for old in target.parent.glob(f".{target.name}.*.tmp*"):
        try:
            if now - old.stat().st_mtime > _STALE_SECONDS:
                old.unlink()
        except FileNotFoundError:
            pass


def publish_snapshot(
    con,
    target: str | Path,
    tables: Mapping[str, str],
    comments: Mapping[str, str] | None = None,
    storage_version: str | None = None,
    base: str | Path | None = None,
) -> PublishResult:
    """Copy `tables` into a new DuckDB file and atomically replace `target` with it.

    `con` is an open connection to the source (the caller's; it must allow ATTACH). `tables`
    maps each published name, `"schema.table"`, to a query over `con` (or a table name) whose
    result it holds. Every query runs in one transaction, so the file shows one state of the
    source. `comments` (same keys) become table comments readers see in `duckdb_tables()`.
    `storage_version` (e.g. "v1.5.0") writes a file older DuckDB clients can read. With `base`
    (an earlier published file, usually `target` itself), the new file starts as a copy of it and
    only `tables` are replaced: a small run refreshes what it changed in seconds, not minutes.

    The new file is written as `.<name>.<id>.tmp` in the target's folder, checkpointed, made
    read-only (mode 0444), flushed to disk and renamed over `target`; if anything fails the old
    file stays as it was. Returns what was written.
    """
    started = time.perf_counter()
    target = Path(target).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    names = {name: _split(name) for name in tables}
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    alias = f"ea_publish_{uuid.uuid4().hex[:8]}"
    rows: dict[str, int] = {}
    options = f" (storage_version {_quote(storage_version)})" if storage_version else ""
    if base is not None:
        shutil.copyfile(base, tmp)
        os.chmod(tmp, 0o644)
        options = ""  # the copy keeps its own storage version
    con.execute(f"attach {_quote(str(tmp))} as {alias}{options}")
    attached = True
    try:
        con.execute("begin transaction")
        try:
            for schema in sorted({s for s, _ in names.values()}):
                con.execute(f'create schema if not exists {alias}."{schema}"')
            for name, query in tables.items():
                schema, table = names[name]
                source = query if " " in query.strip() else f"select * from {query}"
                con.execute(
                    f'create or replace table {alias}."{schema}"."{table}" as {source}'
                )
                rows[name] = con.execute(
                    f'select count(*) from {alias}."{schema}"."{table}"'
                ).fetchall()[0][0]
                if comments and comments.get(name):
                    con.execute(
                        f'comment on table {alias}."{schema}"."{table}" is {_quote(comments[name])}'
                    )
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        con.execute(f"detach {alias}")  # checkpoints: the file is complete without a WAL
        attached = False
        os.chmod(tmp, 0o444)
        _fsync(tmp)
        os.replace(tmp, target)
        _fsync(target.parent)
    finally:
        if attached:
            con.execute(f"detach database if exists {alias}")
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
    return PublishResult(
        path=target,
        rows=rows,
        bytes=target.stat().st_size,
        seconds=time.perf_counter() - started,
    )
