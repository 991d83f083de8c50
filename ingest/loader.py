"""Load whole landing days: discovery of complete folders, one transaction per day, bulk ranges."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ingest.common import IngestError, SourceStats, day_dir, read_manifest, transaction
from ingest.events import load_events
from ingest.schema import ensure_raw_schema
from ingest.snapshots import load_accounts, load_outcomes, load_users


@dataclass
class LoadStats:
    """Everything one landing day's load did, per source."""

    landing_date: dt.date
    sources: dict[str, SourceStats] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def events(self) -> SourceStats:
        return self.sources["events"]

    def total(self, attr: str) -> int:
        return sum(getattr(s, attr) for s in self.sources.values())


def manifest_hash(folder: Path) -> str:
    """A short fingerprint of a folder's manifest: a changed manifest means a re-export."""
    return hashlib.sha256((Path(folder) / "_manifest.json").read_bytes()).hexdigest()[:16]


def find_landing_days(landing_dir: Path) -> dict[dt.date, str]:
    """Complete landing folders (those with `_manifest.json`) mapped to their manifest hash."""
    found: dict[dt.date, str] = {}
    root = Path(landing_dir)
    if not root.exists():
        return found
    for folder in root.iterdir():
        try:
            day = dt.date.fromisoformat(folder.name)
        except ValueError:
            continue  # not a landing folder (e.g. a byo/ export area)
        if folder.is_dir() and (folder / "_manifest.json").exists():
            found[day] = manifest_hash(folder)
    return dict(sorted(found.items()))


def check_manifest(folder: Path) -> dict:
    """Fail when the manifest lists a file that is missing or has another size (partial copy)."""
    manifest = read_manifest(folder)
    problems = []
    for name, size in (manifest.get("files") or {}).items():
        path = Path(folder) / name
        if not path.exists():
            problems.append(f"{name} is listed but missing")
        elif size is not None and path.stat().st_size != int(size):
            problems.append(f"{name} has {path.stat().st_size} bytes, manifest says {size}")
    if problems:
        raise IngestError(
            f"landing folder {folder} does not match its _manifest.json: {'; '.join(problems)}. "
            "Wait for the copy to finish or re-export the day."
        )
    return manifest


def load_landing_day(con, landing_dir: Path, landing_date: dt.date) -> LoadStats:
    """Load every file of one landing day (snapshots, outcomes, events) in ONE transaction.

    Re-loading a day replaces exactly that day's rows, so this is safe to repeat. Raises
    IngestError (nothing written) when the folder is incomplete or a file cannot be read.
    """
    started = time.perf_counter()
    folder = day_dir(landing_dir, landing_date)
    if not folder.is_dir():
        raise IngestError(f"no landing folder {folder}; check EA_LANDING_DIR and the date.")
    check_manifest(folder)
    ensure_raw_schema(con)
    stats = LoadStats(landing_date=landing_date)
    with transaction(con):
        for loader in (load_accounts, load_users, load_outcomes, load_events):
            s = loader(con, landing_dir, landing_date)
            stats.sources[s.source] = s
    stats.seconds = round(time.perf_counter() - started, 3)
    return stats


def load_landing_days(
    con, landing_dir: Path, dates: Iterable[dt.date] | None = None
) -> list[LoadStats]:
    """Load many landing days in date order (all complete folders when `dates` is None).

    Each day is its own transaction, so a failure keeps the days before it.
    """
    days = sorted(find_landing_days(landing_dir) if dates is None else set(dates))
    return [load_landing_day(con, landing_dir, d) for d in days]
