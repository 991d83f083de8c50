"""One fallback chain and one scope model (alerts.recipients) for every surface."""

from __future__ import annotations

import duckdb
import pytest

from alerts.recipients import (
    People,
    account_scopes,
    alert_audience,
    alert_filter,
    may_see,
    owner_chain,
    responsible,
    role_of,
)
from alerts.rules import parse_routing

PEOPLE = People(
    data_team="data@example.com",
    unassigned_owner="ops@example.com",
    default_escalation="director@example.com",
    admins=("boss@example.com",),
)


@pytest.mark.parametrize(
    ("route_owner", "account", "expected"),
    [
        ("csm", {"csm_email": "Ann@Example.com", "manager_email": "m@example.com"}, "ann"),
        ("owner@example.com", {"csm_email": "ann@example.com"}, "owner"),
        ("csm", {"csm_email": None, "manager_email": "m@example.com"}, "m"),
        ("csm", {"csm_email": "", "manager_email": None}, "ops"),
        ("manager", {"csm_email": "ann@example.com", "manager_email": None}, "ann"),
        ("data_team", {"csm_email": "ann@example.com"}, "data"),
    ],
)
def test_owner_chain_takes_the_first_person_present(route_owner, account, expected):
    email, _ = responsible(route_owner, account, PEOPLE)
    assert email == f"{expected}@example.com"


def test_chain_ends_at_the_data_team_and_never_repeats():
    chain = owner_chain("csm", {}, People(data_team="d@example.com"))
    assert chain == [("data_team", "d@example.com")]
    chain = owner_chain("ops@example.com", {"csm_email": "ops@example.com"}, PEOPLE)
    assert [link for link, _ in chain] == ["route_owner", "data_team"]  # one address, once
    assert responsible("csm", {}, People()) == (None, None)


def test_people_from_routing_file_or_mapping_agree():
    doc = {
        "data_team": "Data@example.com",
        "unassigned_owner": "ops@example.com",
        "default_escalation": "director@example.com",
        "admins": ["BOSS@example.com"],
    }
    assert People.from_routing(parse_routing(doc)) == People.from_routing(doc) == PEOPLE


def _world(con):
    con.execute("create schema marts")
    con.execute("create schema alerts")
    con.execute(
        "create table marts.dim_accounts (account_id string, csm_email string, "
        "manager_email string)"
    )
    con.execute(
        "insert into marts.dim_accounts values ('a1', 'ann@example.com', 'mia@example.com'), "
        "('a2', 'bob@example.com', 'mia@example.com'), ('a3', null, null)"
    )
    con.execute(
        "create table alerts.alerts (alert_id string, account_id string, owner_email string, "
        "escalation_email string)"
    )
    con.execute(
        "insert into alerts.alerts values ('x1', 'a1', 'ann@example.com', 'mia@example.com'), "
        "('x2', 'a2', 'route@example.com', 'mia@example.com'), "
        "('x3', 'a3', 'ops@example.com', 'director@example.com'), "
        "('x4', '*', 'data@example.com', 'data@example.com')"
    )


def test_scope_csm_book_manager_team_admin_all_routed_owner_own_alert():
    con = duckdb.connect()
    _world(con)
    seen = {}
    for person, _, alert_id in alert_audience(con, PEOPLE):
        seen.setdefault(person, set()).add(alert_id)
    assert seen["ann@example.com"] == {"x1"}
    assert seen["bob@example.com"] == {"x2"}  # his book, though routed to someone else
    assert seen["route@example.com"] == {"x2"}  # a routes: owner sees what is routed to them
    assert seen["mia@example.com"] == {"x1", "x2"}
    assert seen["ops@example.com"] == {"x3"}  # stand-in for the CSM-less account
    assert seen["director@example.com"] == {"x3"}
    assert seen["data@example.com"] == {"x4"}
    assert seen["boss@example.com"] == {"x1", "x2", "x3", "x4"}
    # The same answers through the SQL filter (command line, inbox) and may_see.
    for person, ids in seen.items():
        _, where, params = alert_filter(con, PEOPLE, person)
        got = {r[0] for r in con.execute(f"select alert_id from alerts.alerts a where {where}",
                                          params).fetchall()}  # fmt: skip
        assert got == ids, person
        assert all(may_see(con, PEOPLE, person, i) == (i in ids) for i in ("x1", "x2", "x3"))
    assert role_of(con, PEOPLE, "mia@example.com") == "manager"
    assert role_of(con, PEOPLE, "ann@example.com") == "csm"
    assert role_of(con, PEOPLE, "BOSS@example.com") == "admin"
    assert role_of(con, PEOPLE, "stranger@example.com") is None
    assert not may_see(con, PEOPLE, "stranger@example.com", "x1")
    roles = {(r, role) for r, role, _ in account_scopes(con, PEOPLE)}
    assert ("mia@example.com", "manager") in roles and ("ann@example.com", "csm") in roles
