"""Fuzzing the BYO mapping reader (ingest/byo.py) and history loads through it (ingest/history.py).

1. Any mapping document — a valid one with random keys replaced by random YAML values, or any
   YAML text — is read into a mapping or refused with an IngestError that says what is wrong;
   never another exception. A mapping that is accepted can load a small export: the load works or
   stops with an IngestError naming the file, and then nothing was written.
2. An export of random rows (good ones, rows with one documented defect each, junk lines) loads
   through a fixed mapping so that every data line is loaded, quarantined with the documented
   reason, or merged as an identical row; the counts say the same, loading it again changes
   nothing, and a file with no usable row stops the load with nothing written.

Examples per test: see tests/fuzz/__init__.py (EA_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import duckdb
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingest import IngestError
from ingest.byo import MAPPING_KEYS, ByoMapping
from ingest.history import load_history
from tests.fuzz import EXAMPLES, LOADS, bounded

QUICK = settings(max_examples=EXAMPLES, deadline=5000, suppress_health_check=list(HealthCheck))
SLOW_LOADS = settings(max_examples=LOADS, deadline=30_000, suppress_health_check=list(HealthCheck))
NOW = dt.datetime(2025, 3, 10, 12)
VALID = {
    "format": "csv",
    "columns": {
        "account_id": "acct",
        "user_id": "usr",
        "event_name": "ev",
        "event_at": "ts",
        "duration_seconds": "secs",
    },  # fmt: skip
    "timezone": "UTC",
    "event_names": {"login": "Session Started", "open": "Document Viewed"},
    "unmapped_events": "quarantine",
}
HEADER = "acct,usr,ev,ts,secs"

yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
    | st.dates(),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip
keys = st.sampled_from(sorted(MAPPING_KEYS) + ["column", "Format", "extra"])
field_names = st.sampled_from(
    ["account_id", "user_id", "event_name", "event_at", "message_id", "feature", "bogus"]
)


@st.composite
def mapping_documents(draw) -> object:
    kind = draw(st.sampled_from(["mutated", "mutated", "columns", "any"]))
    if kind == "any":
        return draw(yaml_values)
    doc = json.loads(json.dumps(VALID))
    if kind == "columns":  # the column section itself, field by field
        for name in draw(st.lists(field_names, max_size=3)):
            section = draw(st.sampled_from(["columns", "constants"]))
            doc.setdefault(section, {})[name] = draw(yaml_values)
    for key in draw(st.lists(keys, max_size=3)):
        if draw(st.booleans()):
            doc[key] = draw(yaml_values)
        else:
            doc.pop(key, None)
    return doc


def _read(doc) -> ByoMapping | None:
    try:
        with bounded(5, "reading a mapping"):
            return ByoMapping.from_dict(doc)
    except IngestError as exc:
        message = str(exc)
        assert message and "\n" not in message.strip()[:1], message
        return None


def _small_export_loads_or_says_why(mapping: ByoMapping) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "export.csv"
        export.write_text(f"{HEADER}\na1,u1,login,2025-03-04T09:00:00Z,5\n")
        con = duckdb.connect()
        try:
            load_history(con, [export], mapping, now=NOW)
        except IngestError as exc:
            assert str(exc)
            assert con.execute("select count(*) from raw.events").fetchall() == [(0,)]
            assert con.execute("select count(*) from raw.quarantine").fetchall() == [(0,)]
        finally:
            con.close()


@QUICK
@example(doc={**VALID, "columns": ["acct"]})
@example(doc={**VALID, "delimiter": None})
@example(doc={**VALID, "timestamp_format": 5})
@example(doc={**VALID, "names": "abc", "header": False})
@given(doc=mapping_documents())
def test_any_mapping_document_is_read_or_refused_with_an_ingest_error(doc):
    _read(doc)


@pytest.mark.slow
@SLOW_LOADS
@given(doc=mapping_documents())
def test_an_accepted_mapping_loads_a_small_export_or_says_why(doc):
    mapping = _read(doc)
    if mapping is not None:
        _small_export_loads_or_says_why(mapping)


@QUICK
@given(text=st.text(max_size=200) | yaml_values.map(yaml.safe_dump))
def test_any_yaml_text_is_read_or_refused_with_an_ingest_error(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mapping.yml"
        path.write_text(text)
        try:
            with bounded(5, "reading a mapping file"):
                ByoMapping.from_yaml(path)
        except IngestError as exc:
            assert str(exc)


# --- history loads through a mapping ------------------------------------------------------------

GOOD = {
    "acct": ["a1", "a2", "acme corp"],
    "usr": ["u1", "u2", "ü3"],
    "ev": ["login", "open", "Feature Used", "Document Shared"],
    "ts": ["2025-03-04T09:00:00Z", "2025-03-01 23:30:00", "2025-03-04T10:00:00+02:00"],
    "secs": ["", "5", "0", "2.5"],
}
# One defect per row and the reason docs/ingest.md gives for it.
DEFECTS = {
    ("acct", ""): "missing_field",
    ("usr", ""): "missing_field",
    ("ev", ""): "missing_field",
    ("ts", ""): "missing_field",
    ("ts", "yesterday"): "bad_type",
    ("ts", "2025-02-30T10:00:00Z"): "bad_type",
    ("ts", "2025-03-20T09:00:00Z"): "future_timestamp",
    ("secs", "long"): "bad_type",
    ("secs", "-4"): "bad_value",
    ("ev", "logout"): "unknown_event",  # unmapped, and the mapping quarantines those
}


@st.composite
def exports(draw) -> list[tuple[str, str | None]]:
    """Data lines with the reason each must get (None: loads, '*': any reason)."""
    rows = []
    for _ in range(draw(st.integers(0, 30))):
        kind = draw(st.sampled_from(["good"] * 4 + ["defect"] * 3 + ["junk", "repeat"]))
        if kind == "repeat" and rows:
            rows.append(draw(st.sampled_from(rows)))
            continue
        if kind == "junk":
            # No double quote: a quoted CSV field may span lines (see the test below).
            junk = draw(st.text("ab,;' 1:-T\t", min_size=1, max_size=30).filter(str.strip))
            rows.append((junk, "*"))
            continue
        row = {k: draw(st.sampled_from(v)) for k, v in GOOD.items()}
        reason = None
        if row["ev"] == "Feature Used":
            reason = "missing_field"  # the export has no feature column
        if kind == "defect":
            (column, value), reason = draw(st.sampled_from(sorted(DEFECTS.items())))
            row[column] = value
            if row["ev"] == "Feature Used" and reason == "bad_value":
                reason = "missing_field"  # the shared rules' order (docs/ingest.md)
        rows.append((",".join(row.values()), reason))
    return rows


def _state(con) -> dict:
    return {
        "events": con.execute(
            "select message_id, account_id, user_id, event_name, event_at, source_file, "
            "source_line from raw.events order by all"
        ).fetchall(),
        "quarantine": con.execute(
            "select source, source_file, source_line, reason, raw_record from raw.quarantine "
            "order by all"
        ).fetchall(),
        "files": con.execute(
            "select * exclude (loaded_at) from raw.history_files order by all"
        ).fetchall(),
    }


def _check_export(rows) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        earlier = Path(tmp) / "earlier.csv"
        earlier.write_text(f"{HEADER}\nz9,z9,login,2025-02-01T09:00:00Z,\n")
        export = Path(tmp) / "export.csv"
        export.write_text(HEADER + "\n" + "".join(line + "\n" for line, _ in rows))
        mapping = ByoMapping.from_dict(VALID)
        con = duckdb.connect()
        try:
            load_history(con, [earlier], mapping, now=NOW)
            before = _state(con)
            try:
                with bounded(120, "loading an export"):
                    stats = load_history(con, [export], mapping, now=NOW)
            except IngestError as exc:
                assert export.name in str(exc), str(exc)[:300]
                assert rows and not any(reason is None for _, reason in rows)
                assert _state(con) == before, "a refused load wrote rows"
                return
            name = export.resolve().as_posix()
            quarantined = dict(
                ((n, (reason, record)) for n, reason, record in con.execute(
                    "select source_line, reason, raw_record from raw.quarantine "
                    "where source_file = ?", [name]).fetchall())
            )  # fmt: skip
            loaded = {
                n for (n,) in con.execute(
                    "select source_line from raw.events where source_file = ?", [name]
                ).fetchall()
            }  # fmt: skip
            first_of: dict[str, int] = {}
            for number, (line, reason) in enumerate(rows, start=2):
                if reason is None:
                    # Identical rows merge into one event: the first copy is stored.
                    first = first_of.setdefault(line, number)
                    assert (number in loaded) == (number == first), (number, line)
                    assert number not in quarantined
                elif reason == "*":
                    assert number in quarantined, (number, line)
                else:
                    assert quarantined.get(number, (None,))[0] == reason, (number, line, reason)
                    assert quarantined[number][1] is not None
            assert len(quarantined) + len(loaded) + stats.duplicates_dropped == len(rows)
            assert stats.rows_read == len(rows) and stats.rows_loaded == len(loaded)
            assert stats.rows_quarantined == len(quarantined)
            after = _state(con)
            load_history(con, [export], mapping, now=NOW)
            assert _state(con) == after, "loading the same export again changed the warehouse"
            assert set(before["events"]) <= set(after["events"]), "an earlier file lost rows"
        finally:
            con.close()


def test_a_stray_double_quote_joins_lines_into_one_quarantined_row_that_keeps_them(tmp_path):
    """RFC 4180: a quoted field may hold line breaks, so a stray quote runs to the next one."""
    export = tmp_path / "export.csv"
    lines = ["a1,u1,login,2025-03-04T09:00:00Z,", 'b2,"u2,login',
             "a1,u3,login,2025-03-04T10:00:00Z,", 'x",login,2025-03-04T11:00:00Z,',
             "a1,u4,login,2025-03-04T12:00:00Z,"]  # fmt: skip
    export.write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    con = duckdb.connect()
    stats = load_history(con, [export], ByoMapping.from_dict(VALID), now=NOW)
    users = con.execute("select user_id from raw.events order by 1").fetchall()
    joined = con.execute("select source_line, raw_record from raw.quarantine").fetchall()
    # The quoted field runs from `"u2` to `x"`: one row whose user holds both line breaks.
    assert users == [("u1",), ("u2,login\na1,u3,login,2025-03-04T10:00:00Z,\nx",), ("u4",)]
    assert joined == []
    assert stats.rows_read == 3  # five data lines, three of them one row


@SLOW_LOADS
@example(rows=[("a1,u1,login,2025-03-04T09:00:00Z,", None)] * 2 + [("ab,',1", "*")])
# Found by the long run: with the quote character sniffed, lone apostrophes were taken for quotes
# and the good rows between them vanished into one quarantined row.
@example(rows=[("a1,u1,login,2025-03-04T09:00:00Z,", None), ("'", "*")] * 2)
@given(rows=exports())
def test_every_history_row_is_loaded_quarantined_or_merged_as_documented(rows):
    _check_export(rows)


@pytest.mark.slow
@settings(SLOW_LOADS, max_examples=LOADS * 8)
@given(rows=exports())
def test_history_rows_long_run(rows):
    _check_export(rows)
