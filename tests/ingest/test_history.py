"""History loads: whole exports by event date, bad inputs, idempotency, formats, CDNOW."""

import datetime as dt
import gzip
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from ingest import IngestError, load_landing_day
from ingest.byo import ByoMapping
from ingest.history import load_history, main
from tests.ingest.conftest import d, event, write_day

REPO = Path(__file__).resolve().parents[2]
CDNOW_MAPPING = REPO / "config" / "examples" / "cdnow_mapping.yml"
# The file ships inside the lifetimes package; finding it does not run the package's code.
CDNOW = (
    Path(importlib.util.find_spec("lifetimes").submodule_search_locations[0])
    / "datasets"
    / "CDNOW_master.txt"
)

MAPPING = {
    "format": "csv",
    "columns": {"account_id": "org", "user_id": "person", "event_name": "action",
                "event_at": "at", "message_id": "uid"},
    "event_names": {"login": "Session Started", "view": "Document Viewed"},
}  # fmt: skip
HEADER = "org,person,action,at,uid,colour\n"
A_ROWS = [
    "o1,p1,login,2023-01-05T09:00:00Z,id1,red",  # 2
    "o1,p1,view,2023-01-05T11:00:00+02:00,id2,red",  # 3 another zone: 09:00 UTC
    "o2,p2,view,2023-06-01 10:00:00,id3,",  # 4 no zone, none in the mapping
    "o2,p2,print,2024-02-29T23:30:00-05:00,id4,",  # 5 unmapped name; 2024-03-01 in UTC
    "o2,p2,view,not a time,id5,",  # 6
    "o1,p1,login,2023-01-05T09:00:00Z,id1,red",  # 7 same id again
    "o3,,view,2023-02-01T00:00:00Z,id6,",  # 8 no user
    "o1,p1,login,2099-01-01T00:00:00Z,id7,",  # 9 far in the future
]
B_ROWS = [
    "o1,p1,login,2023-01-05T09:00:00Z,id1,",  # the id of a.csv's line 2
    "o4,p4,view,2024-12-31T12:00:00Z,id8,",
]


def write(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "".join(r + "\n" for r in rows))
    return path


def tables(con) -> dict[str, list[tuple]]:
    """Every raw table's rows without load times (what a re-run must leave unchanged)."""
    out = {}
    for name, cols in {
        "events": "* exclude (loaded_at)",
        "quarantine": "* exclude (quarantined_at)",
        "landed_partitions": "* exclude (loaded_at)",
        "history_files": "* exclude (loaded_at)",
    }.items():
        out[name] = con.execute(f"select {cols} from raw.{name} order by all").fetchall()
    return out


@pytest.fixture()
def export(tmp_path) -> dict[str, Path]:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "empty.csv").write_bytes(b"")
    return {
        "a": write(folder / "a.csv", A_ROWS),
        "b": write(folder / "b.csv", B_ROWS),
        "empty": folder / "empty.csv",
        "header_only": write(folder / "header_only.csv", []),
    }


def test_multi_year_export_with_bad_inputs_loads_by_event_date(con, export):
    progress: list[str] = []
    stats = load_history(con, export.values(), ByoMapping.from_dict(MAPPING),
                         progress=progress.append)  # fmt: skip
    assert (stats.rows_read, stats.rows_loaded, stats.duplicates_dropped) == (10, 4, 2)
    assert stats.quarantined_by_reason == {
        "bad_type": 1, "bad_value": 1, "future_timestamp": 1, "missing_field": 1,
    }  # fmt: skip
    rows = con.execute(
        "select message_id, event_name, event_at::varchar, landing_date::varchar, source_line, "
        "properties ->> 'source_event' from raw.events order by message_id"
    ).fetchall()
    a = str(export["a"].resolve())
    assert rows == [
        ("id1", "Session Started", "2023-01-05 09:00:00", "2023-01-05", 2, "login"),
        ("id2", "Document Viewed", "2023-01-05 09:00:00", "2023-01-05", 3, "view"),
        ("id4", "Other Activity", "2024-03-01 04:30:00", "2024-03-01", 5, "print"),
        ("id8", "Document Viewed", "2024-12-31 12:00:00", "2024-12-31", 3, "view"),
    ]
    assert con.execute("select source_file from raw.events where message_id = 'id1'").fetchone()[
        0
    ] == a
    # Problem rows are quarantined with file, line, reason, a detail saying what to fix and the
    # row itself, under their file's first event day.
    quarantined = con.execute(
        "select source, landing_date::varchar, source_file, source_line, reason, detail, "
        "raw_record ->> 'at' from raw.quarantine order by source_line"
    ).fetchall()
    assert [(q[0], q[1], q[2], q[3], q[4]) for q in quarantined] == [
        ("history", "2023-01-05", a, 4, "bad_value"),
        ("history", "2023-01-05", a, 6, "bad_type"),
        ("history", "2023-01-05", a, 8, "missing_field"),
        ("history", "2023-01-05", a, 9, "future_timestamp"),
    ]
    assert "has no time zone" in quarantined[0][5] and "`timezone:`" in quarantined[0][5]
    assert quarantined[0][6] == "2023-06-01 10:00:00"
    assert quarantined[2][5] == "missing: person"
    # Every day from the first to the last event day is a landed day of the history.
    days = con.execute(
        "select count(*), min(landing_date)::varchar, max(landing_date)::varchar, "
        "sum(rows_loaded), count(distinct source) from raw.landed_partitions"
    ).fetchone()
    assert days == ((d("2024-12-31") - d("2023-01-05")).days + 1, "2023-01-05", "2024-12-31", 4, 1)
    assert (stats.covered_from, stats.covered_to) == (d("2023-01-05"), d("2024-12-31"))
    # What the user is told: ignored columns, empty files, the long quiet stretches.
    text = "\n".join(progress)
    assert "columns not in the mapping, ignored: colour" in text
    assert "empty.csv: empty, nothing to load" in text
    assert "header_only.csv: empty, nothing to load" in text
    assert "note: no events from 2023-01-06 to 2024-02-29" in text
    assert "1 timestamps have no time zone" in text

    # The same command again changes nothing.
    before = tables(con)
    load_history(con, export.values(), ByoMapping.from_dict(MAPPING))
    assert tables(con) == before


def test_bad_files_change_nothing_already_loaded(con, export, tmp_path):
    mapping = ByoMapping.from_dict(MAPPING)
    load_history(con, [export["a"], export["b"]], mapping)
    before = tables(con)
    unusable = write(tmp_path / "unusable.csv", ["o1,p1,login,yesterday,x1,", "o1,p1,login,,x2,"])
    with pytest.raises(IngestError, match="none of its 2 rows can be loaded .*line 2: bad_type"):
        load_history(con, [export["a"], unusable], mapping)
    wrong_columns = write(tmp_path / "wrong.csv", ["o1,p1,2023-01-01T00:00:00Z"], "org,who,at\n")
    with pytest.raises(IngestError, match="no column.s. action, person, uid named in the BYO"):
        load_history(con, [wrong_columns], mapping)
    with pytest.raises(IngestError, match="no such file or folder"):
        load_history(con, [tmp_path / "missing.csv"], mapping)
    # An empty re-export of a loaded file loads nothing and removes nothing.
    export["a"].write_bytes(b"")
    assert load_history(con, [export["a"]], mapping).rows_read == 0
    assert tables(con) == before


def test_reloading_one_file_replaces_only_its_rows(con, export):
    mapping = ByoMapping.from_dict(MAPPING)
    load_history(con, [export["a"], export["b"]], mapping)
    # a.csv re-exported without id2 and with a later event; b.csv is not given again.
    write(export["a"], [r for r in A_ROWS if ",id2," not in r] + [
        "o1,p1,view,2025-01-10T08:00:00Z,id9,"
    ])  # fmt: skip
    stats = load_history(con, [export["a"]], mapping)
    assert stats.rows_loaded == 3  # id1, id4, id9
    ids = con.execute("select list(message_id order by message_id) from raw.events").fetchone()[0]
    assert ids == ["id1", "id4", "id8", "id9"]
    # b.csv's own id8 stays; its copy of id1 is still the duplicate (a.csv's line holds the id).
    assert con.execute("select max(landing_date) from raw.landed_partitions").fetchone()[0] == d(
        "2025-01-10"
    )
    assert con.execute(
        "select sum(duplicates_dropped) from raw.history_files where source_file like '%b.csv'"
    ).fetchone()[0] == 1


def test_a_time_zone_in_the_mapping_places_zone_less_timestamps(con, export):
    mapping = ByoMapping.from_dict({**MAPPING, "timezone": "Europe/Berlin"})
    load_history(con, [export["a"]], mapping)
    assert con.execute(
        "select event_at::varchar from raw.events where message_id = 'id3'"
    ).fetchone() == ("2023-06-01 08:00:00",)  # CEST is UTC+2
    # Values with their own offset keep it.
    assert con.execute(
        "select event_at::varchar from raw.events where message_id = 'id2'"
    ).fetchone() == ("2023-01-05 09:00:00",)


def test_mapping_errors_say_what_to_fix():
    with pytest.raises(IngestError, match="say which zone they are in with `timezone:`"):
        ByoMapping.from_dict({**MAPPING, "timestamp_format": "%Y%m%d"})
    with pytest.raises(IngestError, match="not canonical event names"):
        ByoMapping.from_dict({**MAPPING, "event_names": {"login": "Logged In"}})
    with pytest.raises(IngestError, match="must name the columns in order"):
        ByoMapping.from_dict({**MAPPING, "header": False})
    with pytest.raises(IngestError, match="not a time zone name"):
        ByoMapping.from_dict({**MAPPING, "timezone": "Mars/Olympus"})
    cols = {k: v for k, v in MAPPING["columns"].items() if k != "event_name"}
    mapping = ByoMapping.from_dict({"columns": cols, "constants": {"event_name": "Purchase"}})
    assert mapping.constants == {"event_name": "Purchase"}


def test_json_lines_parquet_and_headerless_text(con, tmp_path):
    lines = [
        json.dumps({"id": "j1", "org": "o1", "who": {"id": "p1"}, "what": "Feature Used",
                    "ts": "2024-05-01T10:00:00Z", "props": {"feature": "reporting"}}),
        '{"id": "j2", "org": "o1", "who": ',
        json.dumps({"id": "j3", "org": "o1", "who": {"id": "p1"}, "what": "Feature Used",
                    "ts": "2024-05-02T10:00:00Z", "props": {}}),
        "",
        json.dumps({"id": "j4", "org": "o2", "who": {"id": "p2"}, "what": "Document Viewed",
                    "ts": 1714644000}),
    ]  # fmt: skip
    path = tmp_path / "log.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    jsonl = ByoMapping.from_dict({
        "format": "jsonl",
        "columns": {"message_id": "id", "account_id": "org", "user_id": "who.id",
                    "event_name": "what", "event_at": "ts", "feature": "props.feature"},
    })  # fmt: skip
    stats = load_history(con, [path], jsonl)
    assert stats.rows_loaded == 1
    assert con.execute(
        "select source_line, reason from raw.quarantine order by 1"
    ).fetchall() == [(2, "malformed_json"), (3, "missing_field"), (5, "bad_type")]

    parquet = tmp_path / "log.parquet"
    con.execute(
        f"""copy (select * from (values
            ('p1', 'o9', 'u9', 'Session Started', timestamptz '2024-06-01 10:00:00+00'),
            ('p2', 'o9', 'u9', 'Session Started', timestamptz '2024-06-02 12:00:00+02')
        ) t(uid, org, person, what, happened)) to '{parquet}' (format parquet)"""
    )
    pq = ByoMapping.from_dict({
        "format": "parquet",
        "columns": {"message_id": "uid", "account_id": "org", "user_id": "person",
                    "event_name": "what", "event_at": "happened"},
    })  # fmt: skip
    assert load_history(con, [parquet], pq).rows_loaded == 2
    assert con.execute(
        "select max(event_at)::varchar from raw.events where account_id = 'o9'"
    ).fetchone() == ("2024-06-02 10:00:00",)

    text = tmp_path / "log.txt"
    text.write_text("  o5   u5  1717236000\r\n  o5   u6  1717322400  extra\r\n")
    txt = ByoMapping.from_dict({
        "format": "text", "header": False, "names": ["org", "person", "when"],
        "columns": {"account_id": "org", "user_id": "person", "event_at": "when"},
        "constants": {"event_name": "Session Started"}, "timestamp_format": "epoch",
    })  # fmt: skip
    stats = load_history(con, [text], txt)
    assert (stats.rows_loaded, stats.quarantined_by_reason) == (1, {"bad_value": 1})
    assert con.execute(
        "select event_at::varchar from raw.events where account_id = 'o5'"
    ).fetchone() == ("2024-06-01 10:00:00",)


@pytest.mark.parametrize("fmt", ["csv", "text"])
def test_undecodable_lines_are_quarantined_and_the_others_keep_their_line(con, tmp_path, fmt):
    sep = b"," if fmt == "csv" else b"   "
    rows = [
        sep.join([b"o1", b"p1", b"login", b"2023-01-0%dT09:00:00Z" % i, b"id%d" % i])
        for i in range(1, 7)
    ]
    rows[1] = rows[1].replace(b"p1", b"p\xff\xfe1")  # line 3
    rows[3] = rows[3].replace(b"p1", b"p\xff1")  # line 5
    path = tmp_path / f"log.{fmt}"
    path.write_bytes(sep.join([b"org", b"person", b"action", b"at", b"uid"]) + b"\n"
                     + b"\n".join(rows) + b"\n")  # fmt: skip
    load_history(con, [path], ByoMapping.from_dict({**MAPPING, "format": fmt}))
    assert con.execute("select message_id, source_line from raw.events order by 2").fetchall() == [
        ("id1", 2), ("id3", 4), ("id5", 6), ("id6", 7),
    ]  # fmt: skip
    assert con.execute(
        "select source_line, reason, detail from raw.quarantine order by 1"
    ).fetchall() == [
        (3, "bad_value", "unreadable line: INVALID ENCODING"),
        (5, "bad_value", "unreadable line: INVALID ENCODING"),
    ]


def test_daily_landings_continue_where_the_history_ends(con, export, landing):
    mapping = ByoMapping.from_dict(MAPPING)
    load_history(con, [export["a"], export["b"]], mapping)
    # The history's last day also arrives as a landing folder (JSON, no snapshots), and so does
    # the next day: both load, the history's rows of its last day stay.
    write_day(landing, "2024-12-31", events=[event("m1", "p4", "o4", ts="2024-12-31T13:00:00Z")])
    write_day(landing, "2025-01-01", events=[event("m2", "p4", "o4", ts="2025-01-01T08:00:00Z")])
    for day in ("2024-12-31", "2025-01-01", "2024-12-31"):
        load_landing_day(con, landing, d(day))
    assert con.execute(
        "select list(message_id order by message_id) from raw.events "
        "where landing_date >= '2024-12-31'"
    ).fetchone()[0] == ["id8", "m1", "m2"]
    landed = con.execute(
        "select source, count(*), min(landing_date), max(landing_date) from raw.landed_partitions "
        "where source in ('events', 'history') group by 1 order by 1"
    ).fetchall()
    assert landed == [
        ("events", 2, d("2024-12-31"), d("2025-01-01")),
        ("history", 727, d("2023-01-05"), d("2024-12-31")),
    ]
    # Loading the history again keeps the landing folders' rows.
    load_history(con, [export["a"], export["b"]], mapping)
    assert con.execute("select count(*) from raw.events").fetchone()[0] == 6
    # Daily files in the export's own format load through the same mapping, as their day's
    # events, beside any JSON events of the day.
    folder = landing / "2025-01-02"
    folder.mkdir()
    write(folder / "export-2025-01-02.csv", [
        "o4,p4,login,2025-01-02T07:00:00Z,d1,", "o4,p4,view,2025-01-02T07:05:00Z,d2,",
        "o4,p4,view,2025-01-02T07:05:00Z,d2,", "o5,,view,2025-01-02T09:00:00Z,d3,",
    ])  # fmt: skip
    write_day(landing, "2025-01-02", events=[event("m3", "p4", "o4", ts="2025-01-02T08:00:00Z")])
    stats = load_landing_day(con, landing, d("2025-01-02"), mapping)
    assert (stats.events.files, stats.events.rows_loaded, stats.events.duplicates_dropped) == (
        2, 3, 1
    )
    assert stats.events.quarantined_by_reason == {"missing_field": 1}
    assert con.execute(
        "select list(message_id order by message_id), "
        "list(distinct source_file order by source_file) "
        "from raw.events where landing_date = '2025-01-02'"
    ).fetchone() == (["d1", "d2", "m3"], ["2025-01-02/events-000.jsonl.gz",
                                          "2025-01-02/export-2025-01-02.csv"])  # fmt: skip


def test_cdnow_loads_whole_through_the_command(tmp_path, capsys):
    db = tmp_path / "cdnow.duckdb"
    args = ["--mapping", str(CDNOW_MAPPING), str(CDNOW), "--database", str(db)]
    assert main(args) == 0
    out = capsys.readouterr().out
    # What the file says, read independently: one line per purchase after the header.
    purchases = [ln.split() for ln in CDNOW.read_text().splitlines()[1:] if ln.strip()]
    customers = {p[0] for p in purchases}
    dollars = round(sum(float(p[3]) for p in purchases), 2)
    with duckdb.connect(str(db), read_only=True) as con:
        events, accounts, users, value, first, last = con.execute(
            "select count(*), count(distinct account_id), count(distinct user_id), "
            "round(sum((properties ->> 'dollar_value')::decimal(12, 2)), 2), "
            "min(event_date), max(event_date) from raw.events"
        ).fetchone()
        names = con.execute(
            "select distinct event_name, properties ->> 'source_event' from raw.events"
        ).fetchall()
        days = con.execute(
            "select count(*), count(*) filter (where rows_loaded = 0) from raw.landed_partitions"
        ).fetchone()
        before = tables(con)
    assert (events, accounts, users) == (len(purchases), len(customers), len(customers))
    assert float(value) == dollars
    assert (first, last) == (dt.date(1997, 1, 1), dt.date(1998, 6, 30))
    assert names == [("Other Activity", "Purchase")]
    assert days[0] == (last - first).days + 1
    assert f"{len(purchases):,} events loaded, 0 quarantined" in out
    assert "daily landings continue from 1998-07-01" in out
    # Re-running the command changes nothing.
    assert main(args) == 0
    with duckdb.connect(str(db), read_only=True) as con:
        assert tables(con) == before


@pytest.mark.slow
def test_a_file_several_times_the_memory_limit_loads_in_bounded_memory(tmp_path):
    """1.6 million events, ~130 MB of CSV, into a warehouse whose DuckDB may use 32 MB."""
    path = tmp_path / "big.csv"
    with duckdb.connect() as con:
        con.execute(
            f"""
            copy (
                select 'a' || (i % 2000) as org, 'u' || (i % 40000) as person,
                       (['login', 'view', 'export', 'logout'])[1 + i % 4] as action,
                       strftime(timestamp '2021-01-01' + to_seconds((i * 37) % 94608000),
                                '%Y-%m-%dT%H:%M:%SZ') as at,
                       'e' || i as uid, md5(i::varchar) as colour
                from range(1600000) t(i)
            ) to '{path}' (header)
            """
        )
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(json.dumps(MAPPING))
    small = write(tmp_path / "small.csv", B_ROWS)

    def load(export: Path, db: Path) -> tuple[str, int]:
        cmd = [Path(sys.executable).parent / "ea", "load-history", "--mapping", mapping, export,
               "--database", db, "--memory-limit", "32MB", "--batch-rows", "100000"]  # fmt: skip
        with (tmp_path / "out.txt").open("w") as out:
            proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
        text = (tmp_path / "out.txt").read_text()
        assert os.waitstatus_to_exitcode(status) == 0, text[-2000:]
        return text, usage.ru_maxrss * 1024

    _, baseline = load(small, tmp_path / "small.duckdb")
    db = tmp_path / "w.duckdb"
    text, peak = load(path, db)
    size = path.stat().st_size
    assert size > 3.5 * 32 * 2**20
    # The process grew by far less than the file: about the memory limit, not the data.
    assert peak - baseline < 3 * 32 * 2**20, (baseline, peak, size)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute(
            "select count(*), count(distinct message_id), min(event_date), max(event_date) "
            "from raw.events"
        ).fetchone() == (1_600_000, 1_600_000, dt.date(2021, 1, 1), dt.date(2022, 11, 17))
    assert "1,600,000 events loaded, 0 quarantined" in text
