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
import numpy as np
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


def event_files(landing_dir: Path, day: str | None = None) -> list[str]:
    """Every landed event file, or one landing day's (the limit for an incremental day)."""
    # Zero-byte files are legal (an empty export) but not gzip streams; skip them like the pipeline.
    paths = Path(landing_dir).glob(f"{day or '*'}/events-*.jsonl.gz")
    return sorted(str(p) for p in paths if p.stat().st_size > 0)


def duckdb_daily_frame(landing_dir: Path, threads: int = 2) -> pd.DataFrame:
    """The single pass's result itself (for checking the two references agree)."""
    con = duckdb.connect()
    con.execute(f"set threads = {threads}")
    sql = DAILY_SQL.format(files=event_files(landing_dir), columns=EVENT_COLUMNS)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def duckdb_single_pass(landing_dir: Path, threads: int = 2, day: str | None = None) -> int:
    """Daily per-account aggregates in one DuckDB pass over all files (or one day's); row count."""
    files = event_files(landing_dir, day)
    con = duckdb.connect()
    con.execute(f"set threads = {threads}")
    sql = DAILY_SQL.format(files=files, columns=EVENT_COLUMNS)
    rows = con.execute(f"select count(*) from ({sql})").fetchone()[0]
    con.close()
    return int(rows)


def _read_day(path: str) -> pd.DataFrame:
    """One landed file as the few columns the aggregates need; malformed lines are skipped."""
    rows = []
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if not isinstance(r, dict):
                continue
            props = r.get("properties")
            duration = props.get("duration_seconds") if isinstance(props, dict) else None
            rows.append(
                (r.get("messageId"), r.get("groupId"), r.get("userId"), r.get("event"),
                 r.get("timestamp"), duration)
            )  # fmt: skip
    return pd.DataFrame(
        rows, columns=["messageId", "groupId", "userId", "event", "timestamp", "duration"]
    )


EVENT_COUNTS = {
    "logins": "Session Started",
    "docs_viewed": "Document Viewed",
    "docs_downloaded": "Document Downloaded",
    "docs_shared": "Document Shared",
    "feature_events": "Feature Used",
}


def pandas_daily(landing_dir: Path) -> int:
    """The same aggregates plus 28-day rolling sums, in plain pandas; returns the row count."""
    return len(pandas_daily_frame(landing_dir))


def pandas_daily_frame(landing_dir: Path) -> pd.DataFrame:
    """The per-account daily aggregates, with the 28-day rolling sums computed on top.

    Written the way a careful pandas user would for data larger than memory: one landed file
    at a time, duplicates dropped against the message ids seen so far (kept as 64-bit hashes),
    partial sums per file, distinct users per account-day kept as triples, everything combined
    at the end. Memory grows with account-days and ids, not with the events' text.
    """
    seen: set[int] = set()
    sums, users = [], []
    for path in event_files(landing_dir):
        events = _read_day(path).dropna(subset=["messageId"])
        ids = pd.util.hash_array(events["messageId"].to_numpy(dtype=object))
        fresh = ~pd.Series(ids).duplicated().to_numpy()
        fresh &= np.fromiter((int(h) not in seen for h in ids), dtype=bool, count=len(ids))
        seen.update(int(h) for h in ids[fresh])
        events = events[fresh]
        events["event_at"] = pd.to_datetime(
            events["timestamp"], errors="coerce", utc=True, format="ISO8601"
        )
        events = events.dropna(subset=["event_at", "groupId"])
        if events.empty:
            continue
        events["activity_date"] = events["event_at"].dt.floor("D")
        duration = pd.to_numeric(events["duration"], errors="coerce")
        events["session_seconds"] = duration.where(events["event"] == "Session Ended", 0).fillna(0)
        for name, event in EVENT_COUNTS.items():
            events[name] = (events["event"] == event).astype("int64")
        keys = ["groupId", "activity_date"]
        sums.append(events.groupby(keys)[["session_seconds", *EVENT_COUNTS]].sum())
        users.append(events[[*keys, "userId"]].drop_duplicates())
    # Late events land in later files: combine the partial sums, count users once per day.
    daily = pd.concat(sums).groupby(level=[0, 1]).sum()
    daily["session_minutes"] = daily.pop("session_seconds") / 60.0
    active = pd.concat(users).drop_duplicates().groupby(["groupId", "activity_date"]).size()
    daily["active_users"] = active
    daily = daily.reset_index().sort_values(["groupId", "activity_date"])
    rolled = (
        daily.set_index("activity_date")
        .groupby("groupId")[["logins", "session_minutes", "docs_viewed", "feature_events"]]
        .rolling("28D")
        .sum()
    )
    # The rolling frame is the point of the exercise: its size proves it was computed.
    assert len(rolled) == len(daily)
    return daily
