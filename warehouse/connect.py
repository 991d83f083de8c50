"""Opening the warehouse read-only for people: no writes, no files touched outside it."""

from __future__ import annotations

from pathlib import Path

import duckdb


class WarehouseNotFoundError(FileNotFoundError):
    """The warehouse file does not exist (a read-only open must never create one)."""


def open_read_only(path: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection that also cannot touch the filesystem or be reconfigured.

    Read-only alone would still let a query ATTACH a new writable file, COPY results to disk or read
    any file the process can see; turning off external access and locking the configuration closes
    those doors, so the connection can only read the warehouse it was opened on.
    """
    path = Path(path)
    if not path.is_file():
        raise WarehouseNotFoundError(
            f"no warehouse at {path}: set DUCKDB_DATABASE (or --database) to an existing "
            "warehouse.duckdb file; read-only access never creates one"
        )
    con = duckdb.connect(str(path), read_only=True, config={"enable_external_access": False})
    # The progress bar writes to stdout and would corrupt piped CSV/JSON output; then lock.
    con.execute("set enable_progress_bar = false")
    con.execute("set lock_configuration = true")
    return con
