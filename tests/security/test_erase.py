"""Erasure: a user or an account leaves no trace in any table, and the audit row names nobody."""

from __future__ import annotations

import subprocess

import duckdb
import pytest

from tests.notifications.sample import CHAMPION_EMAIL
from warehouse import create_analytics_views, erase_account, erase_user, identity_hash
from warehouse.erasure import ErasureError

from .conftest import EA, REPO, SALT, all_text

USER = "u_001_2"  # the Acme champion, named in digests and alert text


def _count(path, sql):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def test_user_erasure_leaves_nothing_identifying(world):
    before = all_text(world)
    assert USER in before and CHAMPION_EMAIL in before  # the fixture really mentions them
    sent_before = _count(world, "select count(*) from ops.outbox")
    con = duckdb.connect(str(world))
    result = erase_user(con, USER, SALT, requested_by="ticket-42")
    con.close()
    after = all_text(world)
    assert USER not in after and CHAMPION_EMAIL not in after
    assert result.deleted["raw.events"] == 3 and result.deleted["raw.users"] >= 1
    assert result.deleted["raw.quarantine"] == 1
    assert result.outbox_purged >= 1  # digests to Acme's owners named the champion
    assert _count(world, "select count(*) from ops.outbox") == sent_before - result.outbox_purged
    # Other people are untouched.
    assert _count(world, "select count(*) from raw.events where user_id = 'u_004_1'") == 3
    assert "max.power@umbrella.example" in after


def test_audit_row_holds_only_a_salted_hash(world):
    con = duckdb.connect(str(world))
    result = erase_user(con, USER, SALT)
    row = con.execute(
        "select subject_kind, subject_hash, rows_deleted, tables_json from ops.erasure_log"
    ).fetchone()
    con.close()
    assert row[0] == "user" and row[1] == identity_hash("user", USER, SALT) == result.subject_hash
    assert row[1] != identity_hash("user", USER, "another-salt")
    assert row[2] == result.rows_deleted > 0
    assert USER not in str(row) and CHAMPION_EMAIL not in str(row)


def test_erasure_is_idempotent(world):
    con = duckdb.connect(str(world))
    erase_user(con, USER, SALT)
    again = erase_user(con, USER, SALT)
    assert again.rows_deleted == 0 and again.outbox_purged == 0
    assert con.execute("select count(*) from ops.erasure_log").fetchone()[0] == 2
    con.close()


def test_account_erasure_removes_account_users_and_name(world):
    con = duckdb.connect(str(world))
    result = erase_account(con, "a_001", SALT)
    con.close()
    after = all_text(world)
    for needle in ("a_001", "u_001_1", "u_001_2", CHAMPION_EMAIL, "Acme Logistics"):
        assert needle not in after, needle
    assert result.deleted["marts.dim_accounts"] == 1 and result.deleted["alerts.alerts"] >= 1
    assert "a_002" in after and "Globex Health" in after  # neighbours untouched


def test_similar_ids_are_not_collateral(world):
    con = duckdb.connect(str(world))
    con.execute("insert into raw.events (message_id, account_id, user_id) values "
                "('z1', 'a_0011', 'u_001_22')")  # fmt: skip
    erase_user(con, USER, SALT)
    erase_account(con, "a_001", SALT)
    kept = con.execute("select account_id, user_id from raw.events where message_id = 'z1'")
    assert kept.fetchall() == [("a_0011", "u_001_22")]
    con.close()


def test_empty_salt_is_refused(world):
    con = duckdb.connect(str(world))
    with pytest.raises(ErasureError, match="EA_ERASURE_SALT"):
        erase_user(con, USER, "")
    con.close()


def test_cli_erases_and_leaves_no_bytes_in_the_file(world, monkeypatch):
    env = {"EA_ERASURE_SALT": SALT, "DUCKDB_DATABASE": str(world), "PATH": "/usr/bin:/bin"}
    con = duckdb.connect(str(world))
    create_analytics_views(con)
    con.close()
    assert CHAMPION_EMAIL.encode() in world.read_bytes()
    done = subprocess.run(
        [EA, "erase", "--user", USER],
        env=env, capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "rows deleted" in done.stdout and USER not in done.stdout
    # The file is rewritten, so even freed pages hold no copy of them.
    data = world.read_bytes()
    assert CHAMPION_EMAIL.encode() not in data and USER.encode() not in data
    assert _count(world, "select count(*) from ops.erasure_log") == 1
    assert _count(world, "select count(*) from raw.users") > 0  # the rest survived the rewrite
    assert _count(world, "select count(*) from analytics.accounts") == 5  # views and macro too
    # Without a salt the command refuses and says how to fix it.
    env.pop("EA_ERASURE_SALT")
    done = subprocess.run(
        [EA, "erase", "--user", "u_004_1"],
        env=env, capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "EA_ERASURE_SALT" in done.stderr
