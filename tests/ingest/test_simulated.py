import datetime as dt

import pytest

from ingest import load_landing_days
from simulator import DirtConfig, SimConfig, simulate

TABLES = {
    "events": "loaded_at",
    "accounts": "loaded_at",
    "users": "loaded_at",
    "outcomes": "loaded_at",
    "quarantine": "quarantined_at",
    "landed_partitions": "loaded_at",
}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    # More delayed folders than the default, so late arrivals of whole days are exercised too.
    cfg = SimConfig(
        accounts=20,
        start=dt.date(2025, 3, 3),
        end=dt.date(2025, 4, 1),
        seed=3,
        dirt=DirtConfig(delayed_day_rate=0.15),
    )
    summary = simulate(cfg, root / "landing", root / "truth")
    return root / "landing", summary


def table_contents(con):
    return {
        t: con.execute(f"select * exclude ({stamp}) from raw.{t} order by all").fetchall()
        for t, stamp in TABLES.items()
    }


def test_simulated_month_lands_with_every_kind_of_dirt_accounted_for(simulated, con):
    landing, summary = simulated
    dirt = summary.dirt
    load_landing_days(con, landing)

    reasons = dict(con.execute("select reason, count(*) from raw.quarantine group by 1").fetchall())
    assert reasons == {
        k: v
        for k, v in {
            "malformed_json": dirt["malformed_lines"],
            "bad_type": dirt["wrong_types"],
            "unknown_account": dirt["unknown_accounts"],
            "unknown_user": dirt["unknown_users"],
            "future_timestamp": dirt["future_timestamps"],
        }.items()
        if v
    }
    read, loaded, quarantined, dups, late, dropped = con.execute(
        """
        select sum(rows_read), sum(rows_loaded), sum(rows_quarantined), sum(duplicates_dropped),
               sum(late_events), sum(opted_out_dropped)
        from raw.landed_partitions where source = 'events'
        """
    ).fetchone()
    assert read == summary.events_written
    assert dups == dirt["duplicate_events"] > 0
    assert dropped == summary.opted_out_events > 0
    assert loaded + quarantined + dups + dropped == read
    assert loaded == con.execute("select count(distinct message_id) from raw.events").fetchone()[0]

    # Late events (and whole delayed folders) keep their own event date. Injected late events
    # are all stored; a delayed folder's events also include opted-out users' (dropped).
    assert dirt["delayed_days"] > 0
    delayed = late - dirt["late_events"]
    assert 0.8 * dirt["delayed_day_events"] <= delayed <= dirt["delayed_day_events"]
    assert (
        con.execute(
            "select count(*) from raw.events where event_date <> event_at::date"
        ).fetchone()[0]
        == 0
    )
    assert (
        con.execute("select count(*) from raw.events where event_date < landing_date").fetchone()[0]
        == late
    )

    # Nobody who had opted out (as of the day the event landed) is stored.
    leaked = con.execute(
        """
        select count(*) from raw.events e
        asof join raw.users u on u.user_id = e.user_id and e.landing_date >= u.snapshot_date
        where u.opted_out
        """
    ).fetchone()[0]
    assert leaked == 0

    # Loading everything again changes nothing.
    once = table_contents(con)
    load_landing_days(con, landing)
    assert table_contents(con) == once
