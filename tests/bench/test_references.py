"""The two benchmark references compute the same per-account daily numbers from the same files."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import pandas as pd

from bench.references import duckdb_daily_frame, pandas_daily_frame


def _line(mid, account, user, event, ts, **props) -> str:
    record = {"messageId": mid, "groupId": account, "userId": user, "event": event,
              "timestamp": ts, "properties": props, "type": "track"}  # fmt: skip
    return json.dumps(record)


def _land(root, day: dt.date, lines: list[str]) -> None:
    folder = root / day.isoformat()
    folder.mkdir(parents=True)
    with gzip.open(folder / "events-000.jsonl.gz", "wt") as fh:
        fh.write("".join(line + "\n" for line in lines))


def test_duckdb_and_pandas_references_agree_on_every_value(tmp_path):
    day1, day2 = dt.date(2025, 3, 1), dt.date(2025, 3, 2)
    _land(tmp_path, day1, [
        _line("m1", "a1", "u1", "Session Started", "2025-03-01T09:00:00Z"),
        _line("m2", "a1", "u1", "Session Ended", "2025-03-01T09:30:00Z", duration_seconds=1800),
        _line("m2", "a1", "u1", "Session Ended", "2025-03-01T09:30:00Z", duration_seconds=1800),
        _line("m3", "a1", "u2", "Document Viewed", "2025-03-01T10:00:00Z", document_id="d1"),
        _line("m4", "a2", "u3", "Feature Used", "2025-03-01T11:00:00Z", feature="x"),
        "{not json",
    ])  # fmt: skip
    _land(tmp_path, day2, [
        # A duplicate of yesterday's line, a late event for yesterday, and today's activity.
        _line("m3", "a1", "u2", "Document Viewed", "2025-03-01T10:00:00Z", document_id="d1"),
        _line("m5", "a1", "u3", "Document Shared", "2025-03-01T23:00:00Z", document_id="d1"),
        _line("m6", "a2", "u3", "Document Downloaded", "2025-03-02T08:00:00Z", document_id="d2"),
        _line("m7", "a2", "u4", "Session Started", "2025-03-02T08:05:00Z"),
    ])  # fmt: skip
    # A day whose export holds no events at all (a gzip stream with no lines).
    _land(tmp_path, dt.date(2025, 3, 3), [])
    keys = ["account_id", "activity_date"]
    duck = duckdb_daily_frame(tmp_path).sort_values(keys).reset_index(drop=True)
    pand = pandas_daily_frame(tmp_path).rename(columns={"groupId": "account_id"})
    pand["activity_date"] = pand["activity_date"].dt.date
    pand = pand[duck.columns].sort_values(keys).reset_index(drop=True)
    duck["activity_date"] = pd.to_datetime(duck["activity_date"]).dt.date
    pd.testing.assert_frame_equal(duck, pand, check_dtype=False)
    a1 = duck[duck.account_id == "a1"].iloc[0]
    # m2 and m3 counted once; the late m5 joins its own day; three users were active.
    assert (a1.logins, a1.session_minutes, a1.docs_viewed, a1.docs_shared) == (1, 30.0, 1, 1)
    assert a1.active_users == 3
