"""Analyst sessions on the published analyst database: read-only, bounded, never in the way.

The analyst database (`$EA_ANALYST_DATABASE`, default `$EA_DATA_DIR/analyst.duckdb`) is a copy of
the curated `analytics` schema that every pipeline run publishes by renaming a new file over the
old one. A session opens that file, never the warehouse, so it holds no lock a run needs. It sees
the snapshot it opened until `refresh()` reopens the newest one.

Limits, set when the session opens and locked so a query cannot raise them: `memory_limit`
(nothing spills to disk: a query that needs more fails with an out-of-memory error), `threads`,
and a statement timeout (DuckDB has none: a watchdog timer interrupts the query).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb

ANALYST_FILE = "analyst.duckdb"


class AnalystDatabaseMissingError(FileNotFoundError):
    """No analyst database has been published yet."""


class QueryTimeoutError(RuntimeError):
    """A statement ran past the session's timeout and was stopped."""


@dataclass(frozen=True)
class AnalystLimits:
    """Per-session bounds (environment: EA_ANALYST_MEMORY_LIMIT, EA_ANALYST_THREADS,
    EA_ANALYST_TIMEOUT_SECONDS).
    """

    memory_limit: str = "1GB"
    threads: int = 1
    timeout_seconds: float = 120.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AnalystLimits:
        env = os.environ if environ is None else environ
        default = cls()
        try:
            return cls(
                memory_limit=env.get("EA_ANALYST_MEMORY_LIMIT") or default.memory_limit,
                threads=int(env.get("EA_ANALYST_THREADS") or default.threads),
                timeout_seconds=float(
                    env.get("EA_ANALYST_TIMEOUT_SECONDS") or default.timeout_seconds
                ),
            )
        except ValueError as exc:
            raise ValueError(
                f"analyst limits: EA_ANALYST_THREADS must be a whole number and "
                f"EA_ANALYST_TIMEOUT_SECONDS a number of seconds ({exc})"
            ) from exc


def analyst_database_path(environ: dict[str, str] | None = None) -> Path:
    """`$EA_ANALYST_DATABASE`, else `analyst.duckdb` in `$EA_DATA_DIR` (or `./data`)."""
    env = os.environ if environ is None else environ
    if env.get("EA_ANALYST_DATABASE"):
        return Path(env["EA_ANALYST_DATABASE"])
    return Path(env.get("EA_DATA_DIR") or "data") / ANALYST_FILE


def open_bounded(path: str | Path, limits: AnalystLimits) -> duckdb.DuckDBPyConnection:
    """A read-only connection to `path` with no filesystem access and the limits locked in."""
    path = Path(path)
    if not path.is_file():
        raise AnalystDatabaseMissingError(
            f"no analyst database at {path}: a pipeline run publishes it at its end "
            "(run `ea demo`, or any daily run), or set EA_ANALYST_DATABASE"
        )
    con = duckdb.connect(
        str(path),
        read_only=True,
        config={
            "enable_external_access": False,
            "memory_limit": limits.memory_limit,
            "threads": limits.threads,
            # No spilling: a session cannot fill the disk the pipeline writes to.
            "max_temp_directory_size": "0KiB",
        },
    )
    # The progress bar writes to stdout and would corrupt piped output; then lock everything.
    con.execute("set enable_progress_bar = false")
    con.execute("set lock_configuration = true")
    return con


class AnalystSession:
    """One analyst's connection to the published snapshot, with a statement timeout."""

    def __init__(self, path: str | Path | None = None, limits: AnalystLimits | None = None):
        self.path = Path(path) if path is not None else analyst_database_path()
        self.limits = limits or AnalystLimits.from_env()
        self.con = open_bounded(self.path, self.limits)

    def _watch(self):
        timer = threading.Timer(self.limits.timeout_seconds, self.con.interrupt)
        timer.daemon = True
        timer.start()
        return timer

    def _run(self, fetch, query: str, params=None):
        timer = self._watch()
        try:
            return fetch(self.con.execute(query, params) if params else self.con.execute(query))
        except duckdb.InterruptException as exc:
            if timer.finished.is_set():
                raise QueryTimeoutError(
                    f"query stopped after {self.limits.timeout_seconds:g} s, the analyst "
                    "statement timeout (EA_ANALYST_TIMEOUT_SECONDS); narrow it with a where "
                    "clause or a limit, or aggregate first"
                ) from exc
            raise
        except duckdb.CatalogException as exc:
            raise duckdb.CatalogException(_explain_missing(str(exc))) from exc
        finally:
            timer.cancel()

    def query(self, query: str, params=None) -> tuple[list[str], list[tuple]]:
        """Run one statement; returns (column names, rows)."""

        def fetch(cur):
            names = [d[0] for d in cur.description] if cur.description else []
            return names, cur.fetchall()

        return self._run(fetch, query, params)

    def df(self, query: str, params=None):
        """Run one statement into a pandas DataFrame (same limits)."""
        return self._run(lambda cur: cur.df(), query, params)

    def arrow(self, query: str, params=None):
        """Run one statement into a pyarrow Table (same limits); polars reads it with
        `polars.from_arrow`.
        """
        return self._run(lambda cur: cur.to_arrow_table(), query, params)

    def refresh(self) -> None:
        """Reopen the newest published snapshot (the one open so far stays as it was)."""
        self.con.close()
        self.con = open_bounded(self.path, self.limits)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> AnalystSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _explain_missing(message: str) -> str:
    """A missing table named outside `analytics` is not there on purpose: say so."""
    lowered = message.lower()
    for schema in ("raw", "staging", "intermediate", "marts", "ml", "alerts", "ops", "kpis"):
        if f"{schema}." in lowered or f'"{schema}"' in lowered:
            return (
                f"{message}\nThe analyst database holds only the curated `analytics` schema "
                f"(emails masked, opted-out users never named); `{schema}.*` is not in it. "
                "`.tables` lists what is. The data team reads the full warehouse with "
                "`ea sql --full`."
            )
    return message


def connect(path: str | Path | None = None, limits: AnalystLimits | None = None) -> AnalystSession:
    """An analyst session (notebooks: `from warehouse.analyst import connect`)."""
    return AnalystSession(path, limits)
