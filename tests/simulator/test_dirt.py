"""The dirt the summary reports is exactly what is in the files, at about the configured rates."""

import datetime as dt
from collections import Counter

import pytest

from simulator import DirtConfig

from .conftest import parse


def _known_ids(landed):
    accounts, users, private = set(), set(), set()
    for folder in landed.folders():
        if (folder / "accounts.csv").exists():
            rows = [r.split(",") for r in (folder / "accounts.csv").read_text().splitlines()[1:]]
            accounts |= {r[0] for r in rows}
            private |= {r[0] for r in rows if r[-1] == "false"}
            rows = [r.split(",") for r in (folder / "users.csv").read_text().splitlines()[1:]]
            users |= {r[0] for r in rows}
            private |= {r[0] for r in rows if r[-1] == "true"}
    return accounts, users, private


def _stamp_date(value):
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value).date()
    except ValueError:
        return None


@pytest.fixture(scope="module")
def observed(dirty):
    accounts, users, private = _known_ids(dirty)
    seen: Counter = Counter()
    count: Counter = Counter()
    max_late = 0
    for folder_day, _, _, line in dirty.lines:
        e = parse(line)
        if e is None:
            count["malformed_lines"] += 1
            continue
        seen[e["messageId"]] += 1
        if seen[e["messageId"]] > 1:
            count["duplicate_events"] += 1
            continue
        day = _stamp_date(e["timestamp"])
        duration = e["properties"]["duration_seconds"]
        if day is None or isinstance(duration, str):
            count["wrong_types"] += 1
        elif e["groupId"] not in accounts:
            count["unknown_accounts"] += 1
        elif e["userId"] not in users:
            count["unknown_users"] += 1
        elif day > folder_day + dt.timedelta(days=1):
            count["future_timestamps"] += 1
        else:
            if day < folder_day:
                count["arrived_late"] += 1
                max_late = max(max_late, (folder_day - day).days)
            if e["userId"] in private or e["groupId"] in private:
                count["opted_out_events"] += 1
    count["max_late_days"] = max_late
    return count


@pytest.mark.parametrize(
    "kind",
    [
        "duplicate_events",
        "malformed_lines",
        "wrong_types",
        "unknown_accounts",
        "unknown_users",
        "future_timestamps",
    ],
)
def test_each_dirt_kind_in_the_files_matches_the_summary(dirty, observed, kind):
    assert dirty.summary.dirt[kind] > 0
    assert observed[kind] == dirty.summary.dirt[kind]


def test_late_events_arrive_within_five_days_and_are_counted(dirty, observed):
    d = dirty.summary.dirt
    assert d["late_events"] > 0 and d["delayed_days"] > 0
    assert observed["arrived_late"] == d["late_events"] + d["delayed_day_events"]
    assert 1 <= observed["max_late_days"] <= 5


def test_events_ingestion_must_drop_for_privacy_are_counted(dirty, observed):
    assert observed["opted_out_events"] == dirty.summary.opted_out_events > 0


def test_delayed_days_have_no_folder(dirty):
    present = {f.name for f in dirty.folders()}
    missing = dirty.cfg.days - len(present)
    assert missing == dirty.summary.dirt["delayed_days"] > 0


def test_dirt_rates_hold_within_tolerance(dirty):
    d, cfg = dirty.summary.dirt, dirty.cfg.dirt
    # Dirt goes only into events that may be stored: lines minus copies minus private events.
    generated = (
        dirty.summary.events_written - d["duplicate_events"] - dirty.summary.opted_out_events
    )
    for kind, rate in [
        ("duplicate_events", "duplicate_rate"),
        ("late_events", "late_rate"),
        ("malformed_lines", "malformed_rate"),
        ("wrong_types", "wrong_type_rate"),
    ]:
        expected = cfg.rate(rate) * generated
        # Poisson noise: allow 4 standard deviations plus 10 % for edge effects (last days).
        assert abs(d[kind] - expected) <= 4 * expected**0.5 + 0.1 * expected, (
            kind,
            d[kind],
            expected,
        )


def test_dirt_scale_zero_writes_perfectly_clean_files(clean):
    assert clean.summary.dirt == dict.fromkeys(clean.summary.dirt, 0)
    ids = [line.split('"messageId":"')[1][:16] for *_, line in clean.lines]
    assert len(ids) == len(set(ids))


def test_dirt_config_rejects_nonsense():
    with pytest.raises(ValueError, match="must be >= 0"):
        DirtConfig(late_rate=-0.1)
    with pytest.raises(ValueError, match="below 0.5"):
        DirtConfig(scale=100)
