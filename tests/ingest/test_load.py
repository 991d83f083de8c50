import gzip
import json

import pytest

from ingest import IngestError, ensure_raw_schema, load_landing_day, load_landing_days
from tests.ingest.conftest import ACCOUNT_COLS, account, d, event, user, write_day

ACCOUNTS = [account("a1"), account("a2"), account("a_noconsent", consent="false")]
USERS = [user("u1", "a1"), user("u2", "a2"), user("u_out", "a1", opted_out="true"),
         user("u_nc", "a_noconsent")]  # fmt: skip


D1 = "2025-03-04"


def first_day(landing, events, **kw):
    return write_day(landing, "2025-03-04", events=events, accounts=ACCOUNTS, users=USERS, **kw)


def quarantine(con, source="events"):
    return con.execute(
        "select source_line, reason from raw.quarantine where source = ? order by source_line",
        [source],
    ).fetchall()


def test_each_bad_line_is_quarantined_with_reason_and_line(landing, con):
    bad_type = event("m5")
    bad_type["properties"]["duration_seconds"] = "long"
    events = [
        event("m1"),  # 1 good
        '{"messageId": "m2", "event": ',  # 2 truncated JSON
        event("m3", name="Document Printed"),  # 3 unknown event
        event("m4", account_id="a_ghost"),  # 4 unknown account
        bad_type,  # 5 wrong type
        event("m6", user_id="u_ghost"),  # 6 unknown user
        event("m7", ts="2025-03-06T00:00:01Z"),  # 7 more than a day in the future
        {k: v for k, v in event("m8").items() if k != "groupId"},  # 8 missing field
        event("m9", name="Session Ended", duration_seconds=-5),  # 9 negative duration
        event("m10", ts="2025-03-05T23:59:59Z"),  # 10 clock skew within a day: kept
        "",  # 11 blank line: ignored
        "[1, 2]",  # 12 not an object
        event("m13", ts="yesterday"),  # 13 unparseable timestamp
    ]
    first_day(landing, events)
    ensure_raw_schema(con)
    stats = load_landing_day(con, landing, d("2025-03-04"))

    assert quarantine(con) == [
        (2, "malformed_json"),
        (3, "unknown_event"),
        (4, "unknown_account"),
        (5, "bad_type"),
        (6, "unknown_user"),
        (7, "future_timestamp"),
        (8, "missing_field"),
        (9, "bad_value"),
        (12, "malformed_json"),
        (13, "bad_type"),
    ]
    loaded = con.execute("select message_id from raw.events order by 1").fetchall()
    assert loaded == [("m1",), ("m10",)]
    ev = stats.events
    assert (ev.rows_read, ev.rows_loaded, ev.rows_quarantined) == (12, 2, 10)
    assert ev.quarantined_by_reason["malformed_json"] == 2
    src = con.execute(
        "select source_file, detail from raw.quarantine where source_line = 4"
    ).fetchone()
    assert src == ("2025-03-04/events-000.jsonl.gz", "groupId a_ghost is not a known account")


def test_properties_keep_only_the_fields_without_a_column_of_their_own(landing, con):
    first_day(landing, [
        event("m1", feature="search", name="Feature Used"),
        event("m2", plan_tier="gold", nested={"a": [1, 2]}),
        event("m3", feature=None),
    ])  # fmt: skip
    load_landing_day(con, landing, d(D1))
    rows = con.execute(
        "select message_id, feature, document_id, properties from raw.events order by 1"
    ).fetchall()
    assert rows[0] == ("m1", "search", "d1", None)
    assert rows[1][:3] == ("m2", None, "d1")
    assert json.loads(rows[1][3]) == {"plan_tier": "gold", "nested": {"a": [1, 2]}}
    assert rows[2] == ("m3", None, "d1", None)


def test_opted_out_users_and_non_consenting_accounts_are_dropped_and_counted(landing, con):
    first_day(landing, [event("m1"), event("m2", user_id="u_out"),
                        event("m3", user_id="u_nc", account_id="a_noconsent")])  # fmt: skip
    stats = load_landing_day(con, landing, d("2025-03-04"))
    assert con.execute("select list(message_id) from raw.events").fetchone()[0] == ["m1"]
    assert stats.events.opted_out_dropped == 2
    assert quarantine(con) == []
    # A later snapshot revoking consent applies from its landing day on.
    write_day(landing, "2025-03-10", events=[event("m4", ts="2025-03-10T10:00:00Z")],
              accounts=[account("a1", consent="false")], users=USERS)  # fmt: skip
    later = load_landing_day(con, landing, d("2025-03-10"))
    assert later.events.rows_loaded == 0 and later.events.opted_out_dropped == 1


def test_duplicates_belong_to_earliest_day_in_any_load_order(landing, con, tmp_path):
    import duckdb

    first_day(landing, [event("m1"), event("m2"), event("m1")])
    write_day(landing, "2025-03-05", events=[
        event("m2", ts="2025-03-04T09:00:00Z"),  # duplicate re-sent next day
        event("m3", ts="2025-03-02T08:00:00Z"),  # late: keeps its own date
        event("m4", ts="2025-03-05T08:00:00Z"),
    ])  # fmt: skip
    load_landing_days(con, landing)
    table = "select message_id, landing_date, event_date from raw.events order by 1"
    forward = con.execute(table).fetchall()
    assert forward == [
        ("m1", d("2025-03-04"), d("2025-03-04")),
        ("m2", d("2025-03-04"), d("2025-03-04")),
        ("m3", d("2025-03-05"), d("2025-03-02")),
        ("m4", d("2025-03-05"), d("2025-03-05")),
    ]
    parts = "select landing_date, rows_loaded, duplicates_dropped, late_events from " \
            "raw.landed_partitions where source = 'events' order by 1"  # fmt: skip
    expected_parts = [(d("2025-03-04"), 2, 1, 0), (d("2025-03-05"), 2, 1, 1)]
    assert con.execute(parts).fetchall() == expected_parts

    # Reverse order on a fresh database (day 1 needs its snapshot first, so load it, then
    # day 2, then day 1 again: the re-load must move nothing and duplicate nothing).
    other = duckdb.connect(str(tmp_path / "other.duckdb"))
    load_landing_day(other, landing, d("2025-03-04"))
    load_landing_day(other, landing, d("2025-03-05"))
    load_landing_day(other, landing, d("2025-03-04"))
    load_landing_day(other, landing, d("2025-03-05"))
    assert other.execute(table).fetchall() == forward
    assert other.execute(parts).fetchall() == expected_parts


def test_earlier_day_loaded_later_takes_over_its_message_ids(landing, con):
    first_day(landing, [event("m0")])
    write_day(landing, "2025-03-05", events=[event("m1", ts="2025-03-05T01:00:00Z")])
    write_day(landing, "2025-03-06", events=[event("m1", ts="2025-03-05T01:00:00Z")])
    for day in ("2025-03-04", "2025-03-06", "2025-03-05"):
        load_landing_day(con, landing, d(day))
    rows = con.execute(
        "select message_id, landing_date from raw.events where message_id = 'm1'"
    ).fetchall()
    assert rows == [("m1", d("2025-03-05"))]
    dup = con.execute(
        "select rows_loaded, duplicates_dropped from raw.landed_partitions "
        "where source = 'events' and landing_date = '2025-03-06'"
    ).fetchone()
    assert dup == (0, 1)


def test_reload_is_idempotent(landing, con):
    first_day(landing, [event("m1"), "{oops", event("m2")],
              outcomes=[{"account_id": "a1", "outcome": "renewed",
                         "effective_date": "2025-03-04", "arr_delta": "0"}])  # fmt: skip
    tables = ["events", "accounts", "users", "outcomes", "quarantine", "landed_partitions"]

    def snapshot():
        return {
            t: con.execute(f"select * exclude ({stamp(t)}) from raw.{t} order by all").fetchall()
            for t in tables
        }

    def stamp(t):
        return {"quarantine": "quarantined_at"}.get(t, "loaded_at")

    load_landing_day(con, landing, d("2025-03-04"))
    once = snapshot()
    load_landing_day(con, landing, d("2025-03-04"))
    assert snapshot() == once
    assert len(once["events"]) == 2 and len(once["outcomes"]) == 1


def test_empty_files_are_fine(landing, con):
    first_day(landing, [], extra_event_files={"events-001.jsonl.gz": gzip.compress(b""),
                                              "events-002.jsonl": b""})  # fmt: skip
    stats = load_landing_day(con, landing, d("2025-03-04"))
    assert stats.events.files == 3 and stats.events.rows_loaded == 0


def test_corrupt_gzip_fails_the_whole_day_naming_the_file(landing, con):
    good = gzip.compress(b'{"a": 1}\n' * 1000)
    first_day(landing, [event("m1")], extra_event_files={"events-009.jsonl.gz": good[:60]})
    with pytest.raises(IngestError, match="events-009.jsonl.gz"):
        load_landing_day(con, landing, d("2025-03-04"))
    # Nothing of the day was kept (accounts are loaded first in the same transaction).
    assert con.execute("select count(*) from raw.accounts").fetchone()[0] == 0
    assert con.execute("select count(*) from raw.events").fetchone()[0] == 0


def test_folder_without_or_disagreeing_with_manifest_is_refused(landing, con):
    folder = first_day(landing, [event("m1")])
    (folder / "events-000.jsonl.gz").write_bytes(b"")  # shorter than the manifest says
    with pytest.raises(IngestError, match="manifest"):
        load_landing_day(con, landing, d("2025-03-04"))
    (folder / "_manifest.json").unlink()
    with pytest.raises(IngestError, match="_manifest.json"):
        load_landing_day(con, landing, d("2025-03-04"))


def test_without_snapshots_the_event_log_says_which_accounts_exist(landing, con):
    # No CRM at all: every account and user in the events is known; nothing is quarantined as
    # unknown and nothing is dropped for consent.
    write_day(landing, "2025-03-03", events=[event("m1", account_id="a_x", user_id="u_x")])
    stats = load_landing_day(con, landing, d("2025-03-03"))
    assert (stats.events.rows_loaded, stats.events.rows_quarantined) == (1, 0)
    # Once a snapshot exists it is the list of accounts; days before it are checked against it
    # (a re-loaded earlier day included), days after against the latest one up to them.
    write_day(landing, "2025-03-04", events=[event("m2"), event("m3", account_id="a_x")],
              accounts=ACCOUNTS, users=USERS)  # fmt: skip
    load_landing_day(con, landing, d("2025-03-04"))
    again = load_landing_day(con, landing, d("2025-03-03"))
    assert again.events.quarantined_by_reason == {"unknown_account": 1}
    assert quarantine(con) == [(1, "unknown_account"), (2, "unknown_account")]
    assert con.execute("select list(message_id order by 1) from raw.events").fetchone()[0] == [
        "m2"
    ]


def test_bad_snapshot_and_outcome_rows_are_quarantined(landing, con):
    accounts = ACCOUNTS + [
        account("a_seats", seats="0"),
        account("a_arr", arr="lots"),
        account("", account_name="nameless"),
        account("a_plan", plan="platinum"),
        account("a1", account_name="second a1"),
    ]
    outcomes = [
        {"account_id": "a1", "outcome": "churned", "effective_date": D1, "arr_delta": "-1"},
        {"account_id": "a_x", "outcome": "churned", "effective_date": D1, "arr_delta": "0"},
        {"account_id": "a2", "outcome": "left", "effective_date": D1, "arr_delta": "0"},
    ]  # fmt: skip
    write_day(landing, "2025-03-04", events=[], accounts=accounts, users=USERS, outcomes=outcomes)
    load_landing_day(con, landing, d("2025-03-04"))
    assert quarantine(con, "accounts") == [
        (5, "bad_value"), (6, "bad_type"), (7, "missing_field"), (8, "bad_value"), (9, "bad_value"),
    ]  # fmt: skip
    assert quarantine(con, "outcomes") == [(3, "unknown_account"), (4, "bad_value")]
    # A quarantined row keeps its fields as read, and only quarantined rows carry a record.
    assert con.execute(
        "select source_line, raw_record from raw.quarantine where source = 'outcomes' order by 1"
    ).fetchall() == [(3, f"a_x,churned,{D1},0"), (4, f"a2,left,{D1},0")]
    row = con.execute(
        "select seats, arr, tracking_consent, snapshot_date from raw.accounts "
        "where account_id = 'a1'"
    ).fetchone()
    assert row == (10, pytest.approx(12000.50), True, d("2025-03-04"))


def test_bulk_load_keeps_good_days_before_a_broken_one(landing, con):
    first_day(landing, [event("m1")])
    write_day(landing, "2025-03-05", events=[event("m2", ts="2025-03-05T01:00:00Z")])
    bad = gzip.compress(b'{"a": 1}\n' * 1000)[:60]
    write_day(landing, "2025-03-06", events=[], extra_event_files={"events-001.jsonl.gz": bad})
    write_day(landing, "2025-03-07", events=[event("m4", ts="2025-03-07T01:00:00Z")])
    with pytest.raises(IngestError, match="2025-03-06/events-001.jsonl.gz"):
        load_landing_days(con, landing)
    days = con.execute("select list(distinct landing_date order by 1) from raw.events").fetchone()
    assert days[0] == [d("2025-03-04"), d("2025-03-05")]
    assert (
        con.execute(
            "select count(*) from raw.landed_partitions where landing_date >= '2025-03-06'"
        ).fetchone()[0]
        == 0
    )


def test_files_written_after_the_manifest_wait_for_the_next_export(landing, con):
    folder = first_day(landing, [event("m1")])
    late_file = gzip.compress((json.dumps(event("m2")) + "\n").encode())
    (folder / "events-001.jsonl.gz").write_bytes(late_file)
    stats = load_landing_day(con, landing, d("2025-03-04"))
    assert (stats.events.files, stats.events.rows_loaded) == (1, 1)


def test_undecodable_lines_are_quarantined_and_later_lines_keep_their_numbers(landing, con):
    lines = [json.dumps(event("m1")).encode(), b'{"messageId": "\xff\xfe broken"}',
             json.dumps(event("m3")).encode(), b'{"messageId": "x\x1fy"}',
             json.dumps(event("m5")).encode()]  # fmt: skip
    data = gzip.compress(b"\n".join(lines))
    first_day(landing, None, extra_event_files={"events-000.jsonl.gz": data})
    stats = load_landing_day(con, landing, d("2025-03-04"))
    assert quarantine(con) == [(2, "malformed_json"), (4, "malformed_json")]
    assert con.execute("select list(source_line order by source_line) from raw.events").fetchone()[
        0
    ] == [1, 3, 5]
    assert stats.events.rows_read == 5


def test_undecodable_snapshot_row_is_quarantined(landing, con):
    folder = first_day(landing, [event("m1")])
    text = (folder / "accounts.csv").read_bytes().replace(b"Acme a2", b"Acme \xff\xfe")
    (folder / "accounts.csv").write_bytes(text)
    (folder / "_manifest.json").unlink()
    write_day(landing, "2025-03-04")  # rewrite the manifest with the new size
    stats = load_landing_day(con, landing, d("2025-03-04"))
    assert quarantine(con, "accounts") == [(3, "bad_value")]
    assert stats.sources["accounts"].rows_loaded == len(ACCOUNTS) - 1
    assert stats.events.rows_loaded == 1


def test_line_numbers_stay_right_when_a_batch_reads_many_files_in_one_scan(landing, con):
    first_day(landing, [event("m1"), event("m2"), "{oops"])
    lines = [json.dumps(event("n1", ts="2025-03-05T01:00:00Z")).encode(), b'{"bad": "\xff"}',
             json.dumps(event("n3", ts="2025-03-05T01:00:00Z")).encode()]  # fmt: skip
    second = [event("p1", ts="2025-03-05T02:00:00Z"), "[]", event("p3", ts="2025-03-05T02:00:00Z")]
    write_day(
        landing,
        "2025-03-05",
        events=second,
        extra_event_files={"events-001.jsonl.gz": gzip.compress(b"\n".join(lines))},
    )
    load_landing_days(con, landing)  # both days in one batch, three files in one scan
    stored = con.execute(
        "select message_id, source_file, source_line from raw.events order by 1"
    ).fetchall()
    assert stored == [
        ("m1", "2025-03-04/events-000.jsonl.gz", 1),
        ("m2", "2025-03-04/events-000.jsonl.gz", 2),
        ("n1", "2025-03-05/events-001.jsonl.gz", 1),
        ("n3", "2025-03-05/events-001.jsonl.gz", 3),
        ("p1", "2025-03-05/events-000.jsonl.gz", 1),
        ("p3", "2025-03-05/events-000.jsonl.gz", 3),
    ]
    bad = con.execute(
        "select source_file, source_line, reason from raw.quarantine order by 1, 2"
    ).fetchall()
    assert bad == [
        ("2025-03-04/events-000.jsonl.gz", 3, "malformed_json"),
        ("2025-03-05/events-000.jsonl.gz", 2, "malformed_json"),
        ("2025-03-05/events-001.jsonl.gz", 2, "malformed_json"),
    ]


def test_snapshots_of_many_days_load_together_with_per_day_rules(landing, con):
    # Day 1: u_early points at an account that only appears on day 2.
    write_day(landing, "2025-03-04", events=[], accounts=ACCOUNTS,
              users=USERS + [user("u_early", "a_new")])  # fmt: skip
    # Day 2 lists a1 again (not a duplicate: another file) and writes its columns in another
    # order, so it is read in a scan of its own.
    folder = write_day(landing, "2025-03-05", events=[])
    rows = ["tracking_consent,account_id," + ",".join(c for c in ACCOUNT_COLS[1:-1])]
    for a in [account("a1"), account("a_new"), account("a_new")]:
        rows.append(",".join([a["tracking_consent"], a["account_id"]]
                             + [a[c] for c in ACCOUNT_COLS[1:-1]]))  # fmt: skip
    (folder / "accounts.csv").write_text("\n".join(rows) + "\n")
    write_day(landing, "2025-03-05", users=[user("u_late", "a_new")])  # rewrites the manifest
    load_landing_days(con, landing)
    assert quarantine(con, "users") == [(6, "unknown_account")]
    assert quarantine(con, "accounts") == [(4, "bad_value")]  # the second a_new in its file
    loaded = con.execute(
        "select snapshot_date, list(account_id order by account_id) from raw.accounts "
        "group by 1 order by 1"
    ).fetchall()
    assert loaded == [(d("2025-03-04"), ["a1", "a2", "a_noconsent"]),
                      (d("2025-03-05"), ["a1", "a_new"])]  # fmt: skip
    assert con.execute(
        "select user_id from raw.users where snapshot_date = '2025-03-05'"
    ).fetchall() == [("u_late",)]
