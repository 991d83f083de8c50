from pathlib import Path

import pytest

from ingest import IngestError, load_landing_day
from ingest.byo import ByoMapping, load_byo_file
from tests.ingest.conftest import account, d, user, write_day

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "data" / "byo" / "portal_export_2025-03-04.csv"
MAPPING = REPO / "config" / "byo_mapping.example.yml"
DAY = d("2025-03-04")


@pytest.fixture()
def snapshots(landing, con):
    write_day(landing, "2025-03-04", accounts=[account("a_00001"), account("a_00002")],
              users=[user("u_00001_001", "a_00001"), user("u_00001_002", "a_00001"),
                     user("u_00002_001", "a_00002")])  # fmt: skip
    load_landing_day(con, landing, DAY)


def test_example_export_maps_into_raw_events(snapshots, con):
    mapping = ByoMapping.from_yaml(MAPPING)
    stats = load_byo_file(con, EXAMPLE, mapping, DAY)
    assert (stats.rows_read, stats.rows_loaded, stats.duplicates_dropped) == (11, 8, 1)
    assert stats.quarantined_by_reason == {"bad_type": 1, "unknown_account": 1}
    assert stats.late_events == 1
    rows = con.execute(
        """
        select event_name, event_at::varchar, duration_seconds, feature, source_line
        from raw.events where source_file = 'portal_export_2025-03-04.csv' order by source_line
        """
    ).fetchall()
    assert rows[0] == ("Session Started", "2025-03-04 08:01:10", None, None, 2)
    assert rows[2] == ("Feature Used", "2025-03-04 08:05:30", None, "reporting", 4)
    assert rows[3][2] == 1800.0
    # An action the mapping does not name is activity of the catch-all category, not an error;
    # its own name stays in properties.source_event.
    assert con.execute(
        "select event_name, properties ->> 'source_event' from raw.events where source_line = 9"
    ).fetchall() == [("Other Activity", "print_doc")]
    ids = con.execute("select list(message_id) from raw.events").fetchone()[0]
    assert all(i.startswith("byo_") for i in ids) and len(set(ids)) == 8

    # Same export again: same ids, same table.
    before = con.execute("select message_id, source_line from raw.events order by 1").fetchall()
    load_byo_file(con, EXAMPLE, mapping, DAY)
    assert con.execute("select message_id, source_line from raw.events order by 1").fetchall() == (
        before
    )


def test_parquet_export_with_iso_timestamps(snapshots, con, tmp_path):
    path = tmp_path / "log.parquet"
    con.execute(
        f"""
        copy (select * from (values
            ('a_00001', 'u_00001_001', 'Document Viewed', '2025-03-04T09:00:00Z', 'mid-1'),
            ('a_00001', 'u_00001_001', 'Document Viewed', '2025-03-09T09:00:00Z', 'mid-2'),
            ('a_00001', null, 'Document Viewed', '2025-03-04T09:00:00Z', 'mid-3')
        ) t(org, person, what, at_utc, uid)) to '{path}' (format parquet)
        """
    )
    mapping = ByoMapping.from_dict({
        "format": "parquet",
        "columns": {"account_id": "org", "user_id": "person", "event_name": "what",
                    "event_at": "at_utc", "message_id": "uid"},
    })  # fmt: skip
    stats = load_byo_file(con, path, mapping, DAY)
    assert stats.rows_loaded == 1
    assert stats.quarantined_by_reason == {"future_timestamp": 1, "missing_field": 1}
    assert con.execute("select list(message_id) from raw.events").fetchone()[0] == ["mid-1"]


def test_mapping_errors_say_what_to_fix(snapshots, con):
    with pytest.raises(IngestError, match="missing: event_at"):
        ByoMapping.from_dict({"columns": {"account_id": "a", "user_id": "u", "event_name": "e"}})
    cols = {"account_id": "org", "user_id": "member_ref", "event_name": "action"}
    cols["event_at"] = "when"
    bad = ByoMapping.from_dict({"columns": cols})
    with pytest.raises(IngestError, match="no column.s. org, when"):
        load_byo_file(con, EXAMPLE, bad, DAY)
