"""The landing files follow docs/contracts.md."""

import datetime as dt
import gzip
import json

from simulator.catalog import EVENT_NAMES, FEATURES, PREMIUM_FEATURES, STANDARD_FEATURES

from .conftest import parse

ACCOUNT_HEADER = (
    "account_id,account_name,domain,plan,seats,arr,contract_start_date,renewal_date,csm_name,"
    "csm_email,manager_name,manager_email,industry,region,tracking_consent"
)
USER_HEADER = "user_id,account_id,email,role,created_at,deactivated_at,opted_out"
OUTCOME_HEADER = "account_id,outcome,effective_date,arr_delta"
EVENT_KEYS = {
    "type",
    "messageId",
    "userId",
    "groupId",
    "event",
    "timestamp",
    "properties",
    "context",
}
PROPERTY_KEYS = {"session_id", "document_id", "feature", "duration_seconds", "campaign_id"}


def test_catalog_names_are_the_agreed_ones():
    assert STANDARD_FEATURES == (
        "dashboards",
        "reports",
        "search",
        "workflows",
        "integrations",
        "bulk_export",
    )
    assert PREMIUM_FEATURES == ("api_access", "advanced_analytics", "e_signature", "audit_log")
    assert FEATURES == STANDARD_FEATURES + PREMIUM_FEATURES


def test_every_folder_has_a_manifest_that_matches_its_files(dirty):
    folders = dirty.folders()
    assert len(folders) == dirty.summary.folders_written
    for folder in folders:
        manifest = json.loads((folder / "_manifest.json").read_text())
        assert manifest["landing_date"] == folder.name
        on_disk = {p.name: p.stat().st_size for p in folder.iterdir() if p.name != "_manifest.json"}
        assert manifest["files"] == on_disk
        assert "outcomes.csv" in on_disk


def test_snapshots_land_on_the_first_day_and_every_monday(dirty):
    for folder in dirty.folders():
        day = dt.date.fromisoformat(folder.name)
        expected = day == dirty.cfg.start or day.weekday() == 0
        assert (folder / "accounts.csv").exists() == expected, folder.name
        assert (folder / "users.csv").exists() == expected, folder.name


def test_csv_headers_are_exact_and_values_valid(dirty):
    for folder in dirty.folders():
        out = (folder / "outcomes.csv").read_text().splitlines()
        assert out[0] == OUTCOME_HEADER
        for row in out[1:]:
            account_id, outcome, effective, delta = row.split(",")
            assert outcome in {"churned", "renewed", "expanded", "contracted"}
            dt.date.fromisoformat(effective)
            float(delta)
        if not (folder / "accounts.csv").exists():
            continue
        accounts = (folder / "accounts.csv").read_text().splitlines()
        assert accounts[0] == ACCOUNT_HEADER
        for row in accounts[1:]:
            cells = row.split(",")
            assert len(cells) == 15
            assert cells[3] in {"starter", "growth", "enterprise"}
            assert int(cells[4]) > 0 and float(cells[5]) > 0
            # product-led accounts have no contract, so no renewal date
            assert cells[7] == "" or (
                dt.date.fromisoformat(cells[7]) > dt.date.fromisoformat(cells[6])
            )
            assert cells[14] in {"true", "false"}
        users = (folder / "users.csv").read_text().splitlines()
        assert users[0] == USER_HEADER
        for row in users[1:]:
            cells = row.split(",")
            assert len(cells) == 7
            assert cells[3] in {"admin", "power", "casual"}
            assert cells[4].endswith("Z")
            assert cells[5] == "" or cells[5].endswith("Z")
            assert cells[6] in {"true", "false"}


def test_event_lines_follow_the_segment_track_shape(dirty):
    parsed = [e for e in (parse(line) for *_, line in dirty.lines) if e is not None]
    assert len(parsed) > 10_000
    names = set()
    for e in parsed:
        assert set(e) == EVENT_KEYS
        assert e["type"] == "track"
        assert set(e["properties"]) == PROPERTY_KEYS
        names.add(e["event"])
        assert e["event"] in EVENT_NAMES
        props = e["properties"]
        if e["event"] == "Feature Used":
            assert props["feature"] in FEATURES
        if e["event"].startswith("CSM Email"):
            assert props["campaign_id"].startswith("cmp_")
        if e["event"].startswith("Document"):
            assert props["document_id"].startswith("d_")
    assert names == set(EVENT_NAMES)


def test_clean_events_sit_in_their_own_day_folder_with_utc_timestamps(clean):
    assert clean.summary.dirt == dict.fromkeys(clean.summary.dirt, 0)
    for day, _, _, line in clean.lines[::7]:  # a sample keeps the test fast
        e = json.loads(line)
        stamp = e["timestamp"]
        assert stamp.endswith("Z") and len(stamp) == 24
        assert dt.datetime.fromisoformat(stamp).date() == day
        if e["event"] == "Session Ended":
            assert isinstance(e["properties"]["duration_seconds"], int)


def test_empty_event_files_are_empty_or_gzip_of_nothing(dirty):
    empties = 0
    for folder in dirty.folders():
        for path in folder.glob("events-*.jsonl.gz"):
            data = path.read_bytes()
            if not data or not gzip.decompress(data):
                empties += 1
    assert empties == dirty.summary.dirt["empty_files"] > 0
