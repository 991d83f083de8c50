"""Fault injection: SIGKILL each stage mid-run, re-run it, and compare with an uninterrupted run."""

from __future__ import annotations

import collections
import datetime as dt

import duckdb
import pytest

from notifications.outbox import CLAIM_LEASE
from tests.alerts.conftest import Warehouse
from tests.ingest.conftest import account, event, user, write_day
from tests.security.conftest import (
    NOW,
    world,  # noqa: F401  (fixture)
)

from .conftest import REPO, CountingSmtp, fingerprint, fresh_copy, kill_points, run_stage

pytestmark = pytest.mark.slow


def _crash_and_rerun(stage, base, tmp_path, extra, skip=frozenset()):
    """The uninterrupted run's tables, then for each kill point: kill, re-run, compare."""
    ref = fresh_copy(base, tmp_path / "ref" / "w.duckdb")
    total = run_stage(stage, ref, *extra)["statements"]
    expected = fingerprint(ref, skip)
    points = kill_points(total)
    for k in points:
        db = fresh_copy(base, tmp_path / f"k{k}" / "w.duckdb")
        assert run_stage(stage, db, *extra, kill_at=k) is None, f"not killed at statement {k}"
        run_stage(stage, db, *extra)
        got = fingerprint(db, skip)
        diff = {t: (got.get(t), expected.get(t)) for t in expected.keys() | got.keys()
                if got.get(t) != expected.get(t)}  # fmt: skip
        assert not diff, f"{stage} killed at statement {k}/{total}: tables differ {diff}"
    return total, points


def test_ingest_killed_mid_partition(tmp_path):
    landing = tmp_path / "landing"
    users = [user(f"u{i}", "a1") for i in range(5)] + [user("u9", "a1", opted_out="true")]
    write_day(
        landing,
        "2025-03-03",
        accounts=[account("a1")],
        users=users,
        events=[event(f"m{i}", f"u{i % 5}", ts="2025-03-03T09:00:00Z") for i in range(50)],
    )
    who = ["u0", "u1", "u2", "u3", "u4", "u9"]  # u9 opted out: dropped before storage
    day2 = [event(f"n{i}", who[i % 6], ts="2025-03-04T09:00:00Z") for i in range(200)]
    day2 += [event("m1", "u1", ts="2025-03-03T09:00:00Z"), "{not json", event("x", "ghost")]
    write_day(landing, "2025-03-04", events=day2)  # fmt: skip
    base = tmp_path / "base.duckdb"
    run_stage("ingest", base, "--landing", str(landing), "--day", "2025-03-03")
    total, points = _crash_and_rerun(
        "ingest", base, tmp_path, ["--landing", str(landing), "--day", "2025-03-04"]
    )
    con = duckdb.connect(str(tmp_path / f"k{points[len(points) // 2]}" / "w.duckdb"))
    # Nothing lost, nothing doubled: the new events less the opted-out user's; the late duplicate
    # of m1 dropped.
    kept = 50 + sum(1 for i in range(200) if i % 6 != 5)
    got = con.execute("select count(*), count(distinct message_id) from raw.events").fetchone()
    assert got == (kept, kept)
    con.close()


def test_alert_evaluation_killed_mid_run(tmp_path):
    from alerts.engine import evaluate
    from alerts.rules import columns_from_connection, load_routing, load_rules

    wh = Warehouse(tmp_path / "base.duckdb")
    ids = [f"a{i}" for i in range(12)]
    wh.add_accounts(ids)
    drop = {"active_users_28d": 3, "active_users_prev_28d": 12, "health_score": 30.0,
            "health_tier": "critical", "logins_trend_28d": -0.7, "days_to_renewal": 40}  # fmt: skip
    start = dt.date(2025, 3, 3)
    for i in range(4):
        day = start + dt.timedelta(days=i)
        wh.day(day, {a: (drop if n % 3 == 0 or i >= 2 and n % 2 else {}) for n, a in
                     enumerate(ids)}, churn={a: 0.9 for a in ids[:4]})  # fmt: skip
    config = REPO / "config"
    templates = config / "templates" / "recommendations"
    rules = load_rules(config / "rules.yml", columns_from_connection(wh.con), templates)
    routing = load_routing(config / "routing.yml")
    for i in range(3):
        evaluate(wh.con, rules, routing, start + dt.timedelta(days=i), templates)
    wh.con.close()
    extra = ["--config", str(config), "--day", str(start + dt.timedelta(days=3))]
    total, _ = _crash_and_rerun("alerts", wh.path, tmp_path, extra)
    con = duckdb.connect(str(tmp_path / "ref" / "w.duckdb"), read_only=True)
    assert con.execute("select count(*) from alerts.alerts").fetchone()[0] > 0
    con.close()


def test_scoring_killed_mid_write(tmp_path):
    """A day re-scored over yesterday's rows: killed anywhere, the re-run leaves one clean set."""
    from tests.ml.synthetic import feature_grid

    days = sorted(set(feature_grid(horizon_days=28)["as_of_date"].astype(str).str[:10]))
    base = tmp_path / "base.duckdb"
    duckdb.connect(str(base)).close()
    run_stage("score", base, "--day", days[-2])  # an earlier day already scored
    run_stage("score", base, "--day", days[-1])  # and the day itself, scored once before
    total, _ = _crash_and_rerun("score", base, tmp_path, ["--day", days[-1]])
    con = duckdb.connect(str(tmp_path / "ref" / "w.duckdb"), read_only=True)
    per_day = con.execute(
        "select as_of_date, count(*), count(distinct account_id) from ml.account_scores "
        "group by all order by 1"
    ).fetchall()
    con.close()
    assert len(per_day) == 2 and all(n == distinct > 0 for _, n, distinct in per_day)


def test_outbox_killed_mid_send_never_loses_mail(world, tmp_path):  # noqa: F811
    """Killed before every statement of a sending pass; then re-run until the outbox settles."""
    ref = fresh_copy(world, tmp_path / "ref" / "w.duckdb")
    with CountingSmtp() as smtp:
        extra = ["--smtp-port", str(smtp.port), "--now", NOW.isoformat()]
        total = run_stage("outbox", ref, *extra)["statements"]
    expected = set(smtp.message_ids)
    assert len(smtp.message_ids) == len(expected) == 7
    resent = {}
    for k in range(1, total + 1):
        db = fresh_copy(world, tmp_path / f"k{k}" / "w.duckdb")
        with CountingSmtp() as smtp:
            extra = ["--smtp-port", str(smtp.port), "--now", NOW.isoformat()]
            assert run_stage("outbox", db, *extra, kill_at=k) is None
            # A delivery the killed pass had claimed is retried once its claim's lease ends (the
            # lease runs from the claim's time, which moves on with the pass: a minute of margin
            # for a slow, loaded machine).
            later = (NOW + CLAIM_LEASE + dt.timedelta(minutes=1)).isoformat()
            run_stage("outbox", db, "--smtp-port", str(smtp.port), "--now", later)
        counts = collections.Counter(smtp.message_ids)
        assert set(counts) == expected, f"killed at {k}: mail lost"
        status = (
            duckdb.connect(str(db), read_only=True)
            .execute("select count(*) filter (where status = 'sent'), count(*) from ops.outbox")
            .fetchone()
        )
        assert status == (7, 7), f"killed at {k}: outbox not settled {status}"
        resent[k] = [mid for mid, n in counts.items() if n > 1]
        assert len(resent[k]) <= 1 and all(counts[m] == 2 for m in resent[k]), (k, counts)
    # SMTP cannot be exactly-once: a kill after the relay accepted a message but before its
    # result is committed (the status update and the delivery-log row, one transaction of two
    # statements) re-sends that ONE message, with the same Message-ID (receivers and the
    # demo's capture server drop it). Every other kill point sends each message exactly once.
    doubles = [k for k, ids in resent.items() if ids]
    assert len(doubles) <= 2 * 7, doubles
    print(f"outbox: {total} statements; kill points that re-sent one message: {doubles}")
