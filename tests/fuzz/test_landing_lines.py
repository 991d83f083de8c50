"""Fuzzing the landing-line classifier (ingest/events.py) with hypothesis.

Each example is one landing day whose event files hold random lines: random text, JSON that is
not an object, and events with random defects in every field (missing, null, empty, wrong type,
unparseable or future timestamps, unknown names, accounts and users, opted-out users, accounts
without consent, duplicate ids, negative or textual durations, a `type` other than track).
A reference classifier written here from docs/ingest.md ("Rules": first matching reason wins)
says what must happen to every line, and the load must agree line by line:

- every non-blank line is loaded, quarantined with the documented reason and its raw text, dropped
  for consent, or dropped as a duplicate — exactly one of them, and the counts say the same;
- no line fails the day, and loading the day again changes nothing;
- a damaged gzip file either loads with the same accounting for what it holds or fails the day
  with an error naming the file, and then nothing at all was written.

Examples per test: see tests/fuzz/__init__.py (EA_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import tempfile
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingest import IngestError, load_landing_day
from ingest.schema import CANONICAL_EVENTS
from tests.fuzz import LOADS, bounded
from tests.ingest.conftest import account, user, write_day

DAY = dt.date(2025, 3, 4)
FAST = settings(
    max_examples=LOADS,
    deadline=20_000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LONG = settings(
    max_examples=LOADS * 8,
    deadline=20_000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ACCOUNTS = [account("a1"), account("a2", consent="false")]
USERS = [user("u1", "a1"), user("u2", "a1", opted_out="true"), user("u3", "a2")]
DROPPED_ACCOUNTS, DROPPED_USERS = {"a2"}, {"u2"}
ABSENT = object()  # the key is not in the JSON object at all

# --- the generator -----------------------------------------------------------------------------

odd = [ABSENT, None, "", 7, 2.5, True, {"x": 1}, ["a"]]
# Each field: values a good event may have, and values that break it.
GOOD = {
    "userId": ["u1", "u1", "u2", "u3"],  # u2 opted out; u3 of a2, which refused tracking
    "groupId": ["a1", "a1", "a2"],
    "event": list(CANONICAL_EVENTS),
    "timestamp": [
        "2025-03-04T09:00:00Z",  # the landing day
        "2025-03-01T23:00:00Z",  # late: loaded, counted as late
        "2025-03-04 10:00:00+02:00",
        "2025-03-05T23:59:59Z",  # the next day: still fine
    ],
    "type": [ABSENT, None, "track"],
}
BAD = {
    "userId": ["u9", " u1", *odd],
    "groupId": ["a9", *odd],
    "event": ["Document Printed", "feature used", *odd],
    "timestamp": [
        "2025-03-06T00:00:00Z",  # landing day + 2: in the future
        "2031-01-01T00:00:00Z",
        "not a time",
        "2025-13-45T99:00:00Z",
        *odd,
    ],
    "type": ["identify", "page", 3],
    "messageId": odd,
    "properties": [[], "props", 5],
    "feature": [ABSENT, None],
    "duration_seconds": [-5, -0.5, "12", True],
}
good_properties = st.fixed_dictionaries(
    {},
    optional={
        "feature": st.sampled_from(["search", ""]),
        "duration_seconds": st.sampled_from([None, 0, 12, 2.5]),
        "document_id": st.sampled_from(["d1", None, 3]),
        "session_id": st.sampled_from(["s1", None]),
    },
) | st.sampled_from([ABSENT, None])


@st.composite
def event_line(draw, index: int, earlier_ids: list[str]) -> dict:
    """A good event, with up to two of its fields (or properties) broken."""
    fields = {name: draw(st.sampled_from(values)) for name, values in GOOD.items()}
    fields["messageId"] = draw(st.sampled_from([f"m{index}", *earlier_ids[-3:]]))
    props = draw(good_properties)
    broken = draw(st.lists(st.sampled_from(sorted(BAD)), max_size=2, unique=True))
    for name in broken:
        value = draw(st.sampled_from(BAD[name]))
        if name in ("feature", "duration_seconds"):
            props = dict(props) if isinstance(props, dict) else {}
            props[name] = value
            if value is ABSENT:
                del props[name]
        elif name == "properties":
            props = value
        else:
            fields[name] = value
    fields["properties"] = props
    return {k: v for k, v in fields.items() if v is not ABSENT}


def _no_newline(text: str) -> bool:
    # 0x1F is the line reader's field separator: a line holding one is a read error, and a
    # trailing one is not kept in raw_record (tests/ingest covers those lines).
    return not any(c in text for c in "\n\r\x1f")


@st.composite
def day_lines(draw) -> list[list[str | dict]]:
    """One or two files of lines: dicts are events, strings are written as they are."""
    files: list[list[str | dict]] = []
    seen: list[str] = []
    for _ in range(draw(st.integers(1, 2))):
        lines: list[str | dict] = []
        for _ in range(draw(st.integers(0, 40))):
            kind = draw(st.sampled_from(["event"] * 6 + ["text", "json", "blank"]))
            if kind == "event":
                e = draw(event_line(len(seen) + len(lines), seen))
                if isinstance(e.get("messageId"), str):
                    seen.append(e["messageId"])
                lines.append(e)
            elif kind == "text":
                lines.append(draw(st.text(max_size=40).filter(_no_newline)))
            elif kind == "json":
                value = draw(st.sampled_from([[], [1], 3, "x", None, True, ["messageId"]]))
                lines.append(json.dumps(value))
            else:
                lines.append(draw(st.sampled_from(["", "   "])))
        files.append(lines)
    return files


# --- the reference classifier (docs/ingest.md, "Rules") ----------------------------------------


def _text(v) -> str | None:
    """What `field ->> '$'` gives: NULL for a missing key or JSON null, the text otherwise."""
    if v is ABSENT or v is None:
        return None
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))


def _is_string(v) -> bool:
    return v is ABSENT or v is None or isinstance(v, str)


def _timestamp(v) -> dt.datetime | None:
    known = {
        "2025-03-04T09:00:00Z": dt.datetime(2025, 3, 4, 9),
        "2025-03-01T23:00:00Z": dt.datetime(2025, 3, 1, 23),
        "2025-03-04 10:00:00+02:00": dt.datetime(2025, 3, 4, 8),
        "2025-03-05T23:59:59Z": dt.datetime(2025, 3, 5, 23, 59, 59),
        "2025-03-06T00:00:00Z": dt.datetime(2025, 3, 6),
        "2031-01-01T00:00:00Z": dt.datetime(2031, 1, 1),
    }
    return known.get(v) if isinstance(v, str) else None


def classify(e: dict) -> tuple[str | None, bool]:
    """(reason or None, dropped for consent) for one JSON object line."""
    get = e.get
    missing = [k for k in ("messageId", "groupId", "userId", "event", "timestamp")
               if not _text(get(k, ABSENT))]  # fmt: skip
    if missing:
        return "missing_field", False
    props = get("properties", ABSENT)
    props_ok = props is ABSENT or props is None or isinstance(props, dict)
    duration = props.get("duration_seconds") if isinstance(props, dict) else None
    duration_ok = duration is None or (
        isinstance(duration, int | float) and not isinstance(duration, bool)
    )
    if (
        not all(_is_string(get(k, ABSENT)) for k in ("messageId", "groupId", "userId", "event"))
        or not isinstance(get("timestamp"), str)
        or _timestamp(get("timestamp")) is None
        or not props_ok
        or not duration_ok
    ):
        return "bad_type", False
    if _text(get("type", ABSENT)) not in (None, "track"):
        return "bad_value", False
    if e["event"] not in CANONICAL_EVENTS:
        return "unknown_event", False
    feature = props.get("feature") if isinstance(props, dict) else None
    if e["event"] == "Feature Used" and feature is None:
        return "missing_field", False
    if _timestamp(e["timestamp"]) >= dt.datetime.combine(DAY + dt.timedelta(days=2), dt.time()):
        return "future_timestamp", False
    if duration is not None and duration < 0:
        return "bad_value", False
    if e["groupId"] not in {"a1", "a2"}:
        return "unknown_account", False
    if e["userId"] not in {"u1", "u2", "u3"}:
        return "unknown_user", False
    return None, e["groupId"] in DROPPED_ACCOUNTS or e["userId"] in DROPPED_USERS


def expected(files: list[list[str | dict]]):
    """Per (file, line): the reason (or '*' for any reason), and what is loaded and counted."""
    reasons: dict[tuple[str, int], str] = {}
    raw: dict[tuple[str, int], str] = {}
    loaded: dict[str, tuple[str, int]] = {}
    counts = Counter()
    for n, lines in enumerate(files):
        name = f"{DAY}/events-{n:03d}.jsonl.gz"
        for line_no, item in enumerate(lines, start=1):
            text = item if isinstance(item, str) else json.dumps(item)
            key = (name, line_no)
            if isinstance(item, str):
                if text.strip(" ") == "":
                    continue
                counts["read"] += 1
                try:
                    parsed = json.loads(text)
                except ValueError:
                    parsed = None
                if isinstance(parsed, dict) or text.lstrip(" ").startswith("{"):
                    reasons[key] = "*"  # an object by some reading: quarantined, some reason
                else:
                    reasons[key] = "malformed_json"
                raw[key] = text
                continue
            counts["read"] += 1
            reason, dropped = classify(item)
            if reason:
                reasons[key], raw[key] = reason, text
            elif dropped:
                counts["dropped"] += 1
            elif item["messageId"] in loaded:
                counts["duplicates"] += 1
            else:
                loaded[item["messageId"]] = key
                counts["late"] += _timestamp(item["timestamp"]).date() < DAY
    return reasons, raw, loaded, counts


# --- the property ------------------------------------------------------------------------------


def _write(landing: Path, files: list[list[str | dict]], damage=None) -> None:
    blobs = {}
    for n, lines in enumerate(files):
        text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
        blob = gzip.compress(text.encode())
        blobs[f"events-{n:03d}.jsonl.gz"] = damage(blob) if damage and n == 0 else blob
    write_day(landing, DAY.isoformat(), accounts=ACCOUNTS, users=USERS, extra_event_files=blobs)


def _tables(con) -> dict[str, list]:
    return {
        "events": con.execute(
            "select source_file, source_line, message_id, account_id, user_id, event_name "
            "from raw.events order by all"
        ).fetchall(),
        "quarantine": con.execute(
            "select source, source_file, source_line, reason, detail, raw_record "
            "from raw.quarantine order by all"
        ).fetchall(),
    }


def _check_day(files) -> None:
    reasons, raw, loaded, counts = expected(files)
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp) / "landing"
        _write(landing, files)
        con = duckdb.connect()
        try:
            with bounded(120, "loading a landing day"):
                stats = load_landing_day(con, landing, DAY).events
            got = {
                (f, n): (reason, record)
                for f, n, reason, record in con.execute(
                    "select source_file, source_line, reason, raw_record from raw.quarantine "
                    "where source = 'events'"
                ).fetchall()
            }
            assert set(got) == set(reasons), (sorted(got), sorted(reasons))
            for key, want in reasons.items():
                assert want in ("*", got[key][0]), (key, got[key][0], want, raw[key])
                assert got[key][1] == raw[key]
            rows = con.execute(
                "select message_id, source_file, source_line from raw.events"
            ).fetchall()
            assert {m: (f, n) for m, f, n in rows} == loaded and len(rows) == len(loaded)
            assert stats.rows_read == counts["read"]
            assert stats.rows_loaded == len(loaded)
            assert stats.rows_quarantined == len(reasons)
            assert stats.opted_out_dropped == counts["dropped"]
            assert stats.duplicates_dropped == counts["duplicates"]
            assert stats.late_events == counts["late"]
            known = {r for r in reasons.values() if r != "*"}
            assert known <= set(stats.quarantined_by_reason)
            before = _tables(con)
            load_landing_day(con, landing, DAY)
            assert _tables(con) == before, "loading the day again changed it"
        finally:
            con.close()


def _ok(mid: str, **over) -> dict:
    e = {"type": "track", "messageId": mid, "userId": "u1", "groupId": "a1",
         "event": "Feature Used", "timestamp": "2025-03-04T09:00:00Z",
         "properties": {"feature": "search", "duration_seconds": 3}}  # fmt: skip
    return {**e, **over}


# Every rule at its edge, always run besides the random examples.
EDGES = [
    [
        _ok("e1"),
        _ok("e2", timestamp="2025-03-06T00:00:00Z"),  # exactly landing day + 2: future
        _ok("e3", timestamp="2025-03-05T23:59:59Z"),  # a second before: fine
        _ok("e4", properties={"feature": "search", "duration_seconds": -0.5}),
        _ok("e5", properties={"feature": "search", "duration_seconds": 0}),
        _ok("e6", properties={"feature": None}),
        _ok("e7", properties={"feature": ""}),
        _ok("e8", messageId=""),
        _ok("e9", userId=" u1"),
        _ok("e10", groupId="a2"),
        _ok("e11", userId="u2"),
        _ok("e1", timestamp="2025-03-01T23:00:00Z"),  # a duplicate id
        _ok("e12", type="identify"),
        _ok("e13", event="feature used"),
        _ok("e14", timestamp=1741078800),
        _ok("e15", properties=[]),
        '{"messageId": "e16"',
        "   ",
        "[1]",
    ],
    [_ok("e1"), _ok("e16", timestamp="2025-03-04 10:00:00+02:00")],  # the copy in a later file
]


@FAST
@example(files=EDGES)
@given(files=day_lines())
def test_every_line_is_loaded_quarantined_or_dropped_as_documented(files):
    _check_day(files)


@pytest.mark.slow
@LONG
@given(files=day_lines())
def test_landing_lines_long_run(files):
    _check_day(files)


@st.composite
def damage(draw):
    """Truncate the gzip file, or overwrite a few of its bytes, at random places."""
    cut = draw(st.floats(0.0, 1.0))
    flips = draw(st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=3))

    def apply(blob: bytes) -> bytes:
        data = bytearray(blob)
        for where, value in flips:
            data[min(int(where * len(data)), len(data) - 1)] = value
        return bytes(data[: max(1, int(cut * len(data)))]) if cut < 1.0 else bytes(data)

    return apply


@FAST
@given(files=day_lines(), broken=damage())
def test_a_damaged_file_loads_what_it_holds_or_fails_the_day_writing_nothing(files, broken):
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp) / "landing"
        previous = {"type": "track", "messageId": "m_prev", "userId": "u1", "groupId": "a1",
                    "event": "Document Viewed", "timestamp": "2025-03-03T09:00:00Z"}  # fmt: skip
        blob = gzip.compress((json.dumps(previous) + "\n").encode())
        write_day(landing, "2025-03-03", accounts=ACCOUNTS, users=USERS,
                  extra_event_files={"events-000.jsonl.gz": blob})  # fmt: skip
        _write(landing, files or [[]], damage=broken)
        con = duckdb.connect()
        try:
            load_landing_day(con, landing, dt.date(2025, 3, 3))
            before = _tables(con)
            partitions = con.execute("select * from raw.landed_partitions order by all").fetchall()
            try:
                with bounded(120, "loading a damaged landing day"):
                    stats = load_landing_day(con, landing, DAY).events
            except IngestError as exc:
                assert "events-000.jsonl.gz" in str(exc), str(exc)[:300]
                assert _tables(con) == before, "a failed day wrote rows"
                assert (
                    con.execute("select * from raw.landed_partitions order by all").fetchall()
                    == partitions
                )
                return
            # It loaded: every line read is accounted for exactly once.
            assert stats.rows_read == (
                stats.rows_loaded + stats.rows_quarantined + stats.opted_out_dropped
                + stats.duplicates_dropped
            )  # fmt: skip
            n = con.execute(
                "select count(*) from raw.events where landing_date = ?", [DAY]
            ).fetchall()[0][0]
            assert n == stats.rows_loaded
        finally:
            con.close()
