"""Reference implementations the pipeline is measured against, on the same landed files.

1. `duckdb_single_pass`: the physical limit — one DuckDB query that reads every landed event
   file and computes the per-account daily aggregates the marts start from.
2. `pandas_daily`: what a user would write instead — plain pandas over the same files, with the
   28-day rolling metrics on top.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pandas as pd

EVENT_COLUMNS = {
    "messageId": "VARCHAR",
    "userId": "VARCHAR",
    "groupId": "VARCHAR",
    "event": "VARCHAR",
    "timestamp": "VARCHAR",
    "properties": "JSON",
}

DAILY_SQL = """
with events as (
    select distinct on (messageId)
        groupId as account_id,
        userId as user_id,
        event,
        try_cast(timestamp as timestamp) as event_at,
        try_cast(properties ->> 'duration_seconds' as double) as duration_seconds
    from read_json({files}, format = 'newline_delimited', columns = {columns},
                   ignore_errors = true, compression = 'gzip')
    where messageId is not null
)
select
    account_id,
    cast(event_at as date) as activity_date,
    count(distinct user_id) as active_users,
    count(*) filter (where event = 'Session Started') as logins,
    coalesce(sum(duration_seconds) filter (where event = 'Session Ended'), 0) / 60.0
        as session_minutes,
    count(*) filter (where event = 'Document Viewed') as docs_viewed,
    count(*) filter (where event = 'Document Downloaded') as docs_downloaded,
    count(*) filter (where event = 'Document Shared') as docs_shared,
    count(*) filter (where event = 'Feature Used') as feature_events
from events
where event_at is not null and account_id is not null
group by all
"""


def event_files(landing_dir: Path) -> list[str]:
    # Zero-byte files are legal (an empty export) but not gzip streams; skip them like the pipeline.
    paths = Path(landing_dir).glob("*/events-*.jsonl.gz")
    return sorted(str(p) for p in paths if p.stat().st_size > 0)


def duckdb_single_pass(landing_dir: Path, threads: int = 2) -> int:
    """Daily per-account aggregates in one DuckDB pass over all files; returns the row count."""
    files = event_files(landing_dir)
    con = duckdb.connect()
    con.execute(f"set threads = {threads}")
    sql = DAILY_SQL.format(files=files, columns=EVENT_COLUMNS)
    rows = con.execute(f"select count(*) from ({sql})").fetchone()[0]
    con.close()
    return int(rows)


def _read_lines(path: str) -> list[dict]:
    records = []
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def pandas_daily(landing_dir: Path) -> int:
    """The same aggregates plus 28-day rolling sums, in plain pandas; returns the row count."""
    frames = []
    for path in event_files(landing_dir):
        records = _read_lines(path)
        if records:
            frames.append(pd.json_normalize(records))
    events = pd.concat(frames, ignore_index=True)
    events = events.drop_duplicates("messageId")
    events["event_at"] = pd.to_datetime(events["timestamp"], errors="coerce", utc=True)
    events = events.dropna(subset=["event_at", "groupId"])
    events["activity_date"] = events["event_at"].dt.floor("D")
    duration = pd.to_numeric(events.get("properties.duration_seconds"), errors="coerce")
    events["session_seconds"] = duration.where(events["event"] == "Session Ended", 0).fillna(0)
    for name, event in {
        "logins": "Session Started",
        "docs_viewed": "Document Viewed",
        "docs_downloaded": "Document Downloaded",
        "docs_shared": "Document Shared",
        "feature_events": "Feature Used",
    }.items():
        events[name] = (events["event"] == event).astype("int64")
    daily = events.groupby(["groupId", "activity_date"]).agg(
        active_users=("userId", "nunique"),
        logins=("logins", "sum"),
        session_minutes=("session_seconds", lambda s: s.sum() / 60.0),
        docs_viewed=("docs_viewed", "sum"),
        docs_downloaded=("docs_downloaded", "sum"),
        docs_shared=("docs_shared", "sum"),
        feature_events=("feature_events", "sum"),
    )
    daily = daily.reset_index().sort_values(["groupId", "activity_date"])
    rolled = (
        daily.set_index("activity_date")
        .groupby("groupId")[["logins", "session_minutes", "docs_viewed", "feature_events"]]
        .rolling("28D")
        .sum()
    )
    # The rolling frame is the point of the exercise: its size proves it was computed.
    assert len(rolled) == len(daily)
    return len(daily)
