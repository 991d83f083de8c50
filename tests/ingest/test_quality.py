from ingest import ensure_raw_schema, load_landing_day
from ingest.quality import check_accounts, check_events
from tests.ingest.conftest import account, d, event, user, write_day

DAY = d("2025-03-04")


def results(rs):
    return {r.name: r for r in rs}


def test_checks_pass_on_a_clean_load_and_fail_on_a_broken_batch(landing, con):
    write_day(landing, "2025-03-04", events=[event("m1"), event("m2")],
              accounts=[account("a1")], users=[user("u1", "a1")])  # fmt: skip
    load_landing_day(con, landing, DAY)
    clean = results(check_events(con, [DAY]) + check_accounts(con, [DAY]))
    assert all(r.passed for r in clean.values()), [r for r in clean.values() if not r.passed]
    assert clean["message_id_unique"].checked_rows == 2

    # A batch written around the loader (as a buggy backfill might) must not pass.
    ensure_raw_schema(con)
    con.execute(
        """
        insert into raw.events (message_id, account_id, event_name, event_at, event_date,
                                duration_seconds, landing_date, source_file, source_line, loaded_at)
        values ('m1', 'a1', 'Document Viewed', '2025-03-04 10:00', '2025-03-04', null,
                '2025-03-04', 'x', 1, now()),
               ('m9', 'a1', 'Teleported', '2025-03-09 10:00', '2025-03-09', -3,
                '2025-03-04', 'x', 2, now())
        """
    )
    con.execute("update raw.accounts set seats = 0")
    broken = results(check_events(con, [DAY]) + check_accounts(con, [DAY]))
    failed = {name for name, r in broken.items() if not r.passed}
    assert failed == {"message_id_unique", "event_at_not_future", "event_name_canonical",
                      "duration_non_negative", "seats_positive"}  # fmt: skip
    dup = broken["message_id_unique"]
    assert dup.blocking and dup.unexpected_count == 2 and dup.examples == ["m1", "m1"]
    assert broken["event_at_not_future"].blocking
    assert not broken["event_name_canonical"].blocking
    assert broken["event_name_canonical"].examples == ["Teleported"]


def test_a_long_backfill_is_sampled_per_day_but_every_duplicate_is_seen(landing, con, monkeypatch):
    from ingest import load_landing_days, quality

    monkeypatch.setattr(quality, "SAMPLE_ROWS", 4)
    day1 = [event(f"a{i}") for i in range(5)]
    day2 = [event(f"b{i}", ts="2025-03-05T09:00:00Z") for i in range(5)]
    write_day(landing, "2025-03-04", events=day1, accounts=[account("a1")],
              users=[user("u1", "a1")])  # fmt: skip
    write_day(landing, "2025-03-05", events=day2)
    load_landing_days(con, landing)
    days = [DAY, d("2025-03-05")]
    clean = results(check_events(con, days))
    assert all(r.passed for r in clean.values())
    # Two rows of each day reach GX, and the metadata says so.
    canonical = clean["event_name_canonical"]
    assert (canonical.checked_rows, canonical.rows_in_scope) == (4, 10)
    assert "4 of 10 rows" in canonical.scope

    # A copy stored around the loader under another day is found whatever the sample holds.
    con.execute(
        """
        insert into raw.events (message_id, account_id, event_name, event_at, event_date,
                                landing_date, source_file, source_line, loaded_at)
        select message_id, account_id, event_name, event_at, event_date, '2025-03-05',
               'x', 99, now()
        from raw.events where message_id = 'a3'
        """
    )
    dup = results(check_events(con, days))["message_id_unique"]
    assert not dup.passed and dup.unexpected_count == 2 and dup.examples == ["a3", "a3"]
    assert dup.checked_rows <= 6


def test_a_daily_check_sees_a_copy_stored_under_another_day_and_only_its_own(
    landing, con, monkeypatch
):
    """The checked day holds a small part of the table (the daily run's way of counting)."""
    from ingest import load_landing_days

    days = [d(f"2025-03-{n:02d}") for n in range(4, 10)]
    for i, day in enumerate(days):
        extra = {"accounts": [account("a1")], "users": [user("u1", "a1")]} if i == 0 else {}
        events = [event(f"m{i}_{j}", ts=f"{day.isoformat()}T09:00:00Z") for j in range(3)]
        write_day(landing, day.isoformat(), events=events, **extra)
    load_landing_days(con, landing)
    assert results(check_events(con, days[-1:]))["message_id_unique"].passed
    # A copy of the last day's id stored under the first day, and a duplicate of two older days.
    con.execute(
        """
        insert into raw.events (message_id, account_id, event_name, event_at, event_date,
                                landing_date, source_file, source_line, loaded_at)
        select message_id, account_id, event_name, event_at, event_date, '2025-03-04', 'x',
               99 + row_number() over (), now()
        from raw.events where message_id in ('m5_1', 'm1_2')
        """
    )
    dup = results(check_events(con, days[-1:]))["message_id_unique"]
    assert not dup.passed and dup.examples == ["m5_1", "m5_1"]
    assert results(check_events(con, days[2:3]))["message_id_unique"].passed


def test_the_backfill_sample_is_each_days_rows_of_smallest_key_hash(landing, con, monkeypatch):
    from ingest import load_landing_days, quality

    monkeypatch.setattr(quality, "SAMPLE_ROWS", 4)
    days = [DAY, d("2025-03-05")]
    for i, day in enumerate(days):
        extra = {"accounts": [account("a1")], "users": [user("u1", "a1")]} if i == 0 else {}
        events = [event(f"e{i}_{j}", ts=f"{day.isoformat()}T09:00:00Z") for j in range(60)]
        write_day(landing, day.isoformat(), events=events, **extra)
    load_landing_days(con, landing)
    sample = quality._sample(con, "message_id", "events", "message_id", days, 2)
    expected = con.execute(
        """
        select message_id from raw.events
        qualify row_number() over (partition by landing_date order by hash(message_id)) <= 2
        """
    ).fetchall()
    assert sorted(sample["message_id"]) == sorted(m for (m,) in expected)


def test_quality_suites_run_from_a_python_c_process():
    """`python -c` (like Dagster's run workers) has a __main__ without __file__: with the Spark
    extra installed, GX's pyspark import used to end such a process silently with status 0."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import ingest.quality as q; q._context(); "
        "import great_expectations.expectations; print('gx ready')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("gx ready"), out.stderr[-2000:]
