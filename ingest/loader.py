"""Load whole landing days: discovery of complete folders, one transaction per day, bulk ranges."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ingest.common import IngestError, SourceStats, day_dir, read_manifest, transaction
from ingest.events import event_files, load_events_days
from ingest.schema import ensure_raw_schema
from ingest.snapshots import ACCOUNTS, OUTCOMES, USERS, load_csv_days


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


def _load_batch(con, landing_dir: Path, dates: list[dt.date], mapping=None) -> list[LoadStats]:
    started = time.perf_counter()
    for day in dates:
        folder = day_dir(landing_dir, day)
        if not folder.is_dir():
            raise IngestError(f"no landing folder {folder}; check EA_LANDING_DIR and the date.")
        check_manifest(folder)
    out = {d: LoadStats(landing_date=d) for d in dates}
    with transaction(con):
        # Snapshots first: each day's events are checked against snapshots up to that day.
        for source in (ACCOUNTS, USERS, OUTCOMES):
            for day, s in load_csv_days(con, landing_dir, dates, source).items():
                out[day].sources[s.source] = s
        for day, s in load_events_days(con, landing_dir, dates, mapping).items():
            out[day].sources["events"] = s
    per_day = round((time.perf_counter() - started) / len(dates), 3)
    for stats in out.values():
        stats.seconds = per_day
    return [out[d] for d in dates]


def load_landing_day(con, landing_dir: Path, landing_date: dt.date, mapping=None) -> LoadStats:
    """Load every file of one landing day (snapshots, outcomes, events) in ONE transaction.

    With a `mapping` (ingest.byo.ByoMapping), the folder's exports in its format are the day's
    events too. Re-loading a day replaces exactly that day's rows, so this is safe to repeat.
    Raises IngestError (nothing written) when the folder is incomplete or a file cannot be read.
    """
    ensure_raw_schema(con)
    return _load_batch(con, landing_dir, [landing_date], mapping)[0]


def load_landing_days(
    con,
    landing_dir: Path,
    dates: Iterable[dt.date] | None = None,
    *,
    max_days_per_batch: int = 31,
    max_bytes_per_batch: int = 48_000_000,
    mapping=None,
) -> list[LoadStats]:
    """Load many landing days in date order (all complete folders when `dates` is None).

    Days are loaded set-based in batches (one transaction each, bounded by days and compressed
    event bytes), which is far faster than day by day. If a batch fails, its days are retried
    one by one so every good day before the bad one is kept, then the error is raised.
    """
    days = sorted(find_landing_days(landing_dir) if dates is None else set(dates))
    ensure_raw_schema(con)
    results: list[LoadStats] = []
    batch: list[dt.date] = []
    size = 0
    for day in days:
        day_bytes = sum(p.stat().st_size for p in event_files(day_dir(landing_dir, day)))
        if batch and (len(batch) >= max_days_per_batch or size + day_bytes > max_bytes_per_batch):
            results += _load_or_split(con, landing_dir, batch, mapping)
            batch, size = [], 0
        batch.append(day)
        size += day_bytes
    if batch:
        results += _load_or_split(con, landing_dir, batch, mapping)
    return results


def _load_or_split(con, landing_dir: Path, batch: list[dt.date], mapping) -> list[LoadStats]:
    try:
        return _load_batch(con, landing_dir, batch, mapping)
    except IngestError:
        if len(batch) == 1:
            raise
        return [_load_batch(con, landing_dir, [d], mapping)[0] for d in batch]
