"""The control group: stable across runs, recorded by the engine, never delivered."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from alerts import evaluate, load_routing
from alerts.holdout import Holdout, holdout_sql, in_holdout
from alerts.rules import RulesFileError, columns_from_connection, load_rules, parse_routing
from notifications.content import ContentConfig
from notifications.digest import build_critical_alerts, build_digests
from notifications.tasks import TaskPolicy, build_crm_tasks
from tests.alerts.conftest import CONFIG, TEMPLATES, Warehouse
from tests.notifications.sample import ROUTING, load_sample

REPO = Path(__file__).resolve().parents[2]
EMAIL_TEMPLATES = REPO / "config" / "templates" / "email"
IDS = [f"acc_{i:04d}" for i in range(2000)]


def test_assignment_is_stable_matches_sql_and_has_the_configured_share():
    on = Holdout(enabled=True, share=0.10, salt="team-a")
    first = {a for a in IDS if in_holdout(a, on)}
    assert first == {a for a in IDS if in_holdout(a, on)}  # same answer every run
    assert 0.08 < len(first) / len(IDS) < 0.12
    con = duckdb.connect()
    con.execute("create table t as select unnest($ids) as account_id", {"ids": IDS})
    in_sql = {
        a
        for (a,) in con.execute(
            f"select account_id from t where {holdout_sql()}",
            {"holdout_salt": on.salt, "holdout_share": on.share},
        ).fetchall()
    }
    assert in_sql == first  # the engine's SQL and the Python helper agree
    assert {a for a in IDS if in_holdout(a, dataclasses.replace(on, salt="team-b"))} != first
    assert not any(in_holdout(a, Holdout(enabled=False)) for a in IDS)  # off by default
    assert not in_holdout("*", Holdout(enabled=True, share=0.49))  # data alerts always go out


def test_routing_validates_the_holdout_section():
    base = {
        "data_team": "d@example.com",
        "unassigned_owner": "o@example.com",
        "default_escalation": "e@example.com",
    }
    assert parse_routing(base).holdout == Holdout()
    parsed = parse_routing({**base, "holdout": {"enabled": True, "share": 0.2, "salt": "x"}})
    assert parsed.holdout == Holdout(enabled=True, share=0.2, salt="x")
    with pytest.raises(RulesFileError, match="holdout.share"):
        parse_routing({**base, "holdout": {"enabled": True, "share": 0.7}})


def test_engine_records_held_out_alerts_and_keeps_the_flag_on_rerun(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    accounts = [f"acc_{i:03d}" for i in range(60)]
    wh.add_accounts(accounts)
    rules = load_rules(CONFIG / "rules.yml", columns_from_connection(wh.con), TEMPLATES)
    holdout = Holdout(enabled=True, share=0.2, salt="test")
    routing = dataclasses.replace(load_routing(CONFIG / "routing.yml"), holdout=holdout)
    day = dt.date(2025, 3, 3)
    # Every account fires adoption_gap (many seats, few used).
    dropping = {"seats": 40, "seat_utilisation": 0.1, "feature_breadth_28d": 2}
    for d in range(2):
        wh.day(day + dt.timedelta(days=d), {a: dropping for a in accounts})
    evaluate(wh.con, rules, routing, day, TEMPLATES)
    evaluate(wh.con, rules, routing, day, TEMPLATES)  # a re-run of the same day
    evaluate(wh.con, rules, routing, day + dt.timedelta(days=1), TEMPLATES)
    flags = dict(
        wh.con.execute(
            "select account_id, is_holdout from alerts.alerts where rule_id = 'adoption_gap'"
        ).fetchall()
    )
    assert set(flags) == set(accounts)  # held-out alerts are still recorded
    assert {a for a, h in flags.items() if h} == {a for a in accounts if in_holdout(a, holdout)}
    assert 0 < sum(flags.values()) < len(accounts)
    wh.con.close()


def test_held_out_alerts_get_no_digest_line_critical_mail_or_crm_task(tmp_path):
    day, now = dt.date(2025, 3, 4), dt.datetime(2025, 3, 4, 7, 0)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    load_sample(con, day)
    names = dict(con.execute("select account_id, account_name from marts.dim_accounts").fetchall())
    acme = next(a for a, n in names.items() if n == "Acme Logistics")
    # A salt that holds Acme (which has a critical alert) out and keeps the others in.
    salt = next(
        s
        for s in (f"s{i}" for i in range(500))
        if in_holdout(acme, Holdout(True, 0.2, s))
        and not any(in_holdout(a, Holdout(True, 0.2, s)) for a in names if a != acme)
    )
    # The same predicate the engine applies when it raises alerts, over the sample's alerts.
    con.execute(
        f"update alerts.alerts set is_holdout = true where {holdout_sql()}",
        {"holdout_salt": salt, "holdout_share": 0.2},
    )
    held = {
        a for (a,) in con.execute("select alert_id from alerts.alerts where is_holdout").fetchall()
    }
    assert held and held == {
        a
        for (a,) in con.execute(
            "select alert_id from alerts.alerts where account_id = ?", [acme]
        ).fetchall()
    }
    content = ContentConfig(routing=ROUTING)
    critical = build_critical_alerts(con, EMAIL_TEMPLATES, content, now)
    digests = build_digests(con, day, EMAIL_TEMPLATES, content, now)
    tasks = build_crm_tasks(con, TaskPolicy(), now)
    assert digests and tasks  # the other accounts are still delivered
    assert all(d.alert_id not in held for d in critical + tasks)
    assert [d.account_id for d in critical] and acme not in {d.account_id for d in critical}
    for d in digests:
        text = json.dumps(dataclasses.asdict(d), default=str)
        assert "Acme Logistics" not in text and not any(a in text for a in held)
    con.close()
