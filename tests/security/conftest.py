"""Fixtures for the security tests: a small warehouse with people, alerts and an outbox."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import duckdb
import pytest

from notifications.content import ContentConfig
from notifications.digest import build_digests
from notifications.outbox import enqueue
from notifications.schema import ensure_schema as ensure_ops_schema
from tests.notifications.sample import ROUTING, load_sample

REPO = Path(__file__).resolve().parents[2]
EA = str(Path(sys.executable).parent / "ea")  # the console script people run
TEMPLATES = REPO / "config" / "templates" / "email"
DAY = dt.date(2025, 3, 4)
NOW = dt.datetime(2025, 3, 4, 7, 0)
SALT = "test-salt-not-secret"


def add_raw_rows(con) -> None:
    """Events, quarantine lines and health rows mentioning the sample's users and accounts."""
    con.execute(
        """
        create or replace table raw.events as
        select 'm' || i as message_id, account_id, user_id, 'Document Viewed' as event_name,
               timestamp '2025-03-03 10:00:00' as event_at, date '2025-03-03' as event_date,
               json_object('note', 'by ' || user_id) as properties
        from raw.users, range(3) t(i)
        """
    )
    con.execute(
        """
        create or replace table raw.quarantine as
        select 'events' as source, date '2025-03-03' as landing_date, 'f.jsonl' as source_file,
               row_number() over () as source_line, 'unknown_event' as reason, '' as detail,
               json_object('userId', user_id, 'groupId', account_id, 'event', 'Oops')::varchar
                   as raw_record
        from raw.users
        """
    )
    con.execute(
        """
        create schema if not exists marts;
        create or replace table marts.account_health as
        select account_id, date '2025-03-04' as as_of_date, csm_email, manager_email,
               70.0 as health_score
        from marts.dim_accounts
        """
    )


@pytest.fixture()
def world(tmp_path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    load_sample(con, DAY)
    add_raw_rows(con)
    ensure_ops_schema(con)
    enqueue(con, build_digests(con, DAY, TEMPLATES, ContentConfig(routing=ROUTING), NOW), NOW)
    con.close()
    return path


def _text_columns(con, views: bool) -> list[tuple[str, str, str]]:
    kinds = ["BASE TABLE", "VIEW"] if views else ["BASE TABLE"]
    return con.execute(
        """
        select c.table_schema, c.table_name, c.column_name from information_schema.columns c
        join information_schema.tables t using (table_schema, table_name)
        where t.table_type in (select unnest(?)) and c.data_type in ('VARCHAR', 'JSON')
        """,
        [kinds],
    ).fetchall()


def all_text(path: Path) -> str:
    """Every text value of every table in the file, one big string (for 'appears nowhere')."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        chunks = []
        for schema, table, column in _text_columns(con, views=False):
            rows = con.execute(f'select "{column}" from "{schema}"."{table}"').fetchall()
            chunks.extend(str(r[0]) for r in rows if r[0] is not None)
        return json.dumps(chunks)
    finally:
        con.close()


# What a user id (`u_...`) or an email address looks like inside any text.
ID_OR_ADDRESS = r"u_[A-Za-z0-9_]+|[A-Za-z0-9_.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"


def where_named(path: Path, names: list[str], views: bool = False) -> list[str]:
    """`schema.table.column: name` for each text column (of views too, with `views`) in which
    any of `names` (user ids, emails) stands in a value: every id- or address-shaped token of the
    column is matched against the names in DuckDB (one pass, one hash join per column)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        found = []
        for schema, table, column in _text_columns(con, views):
            rows = con.execute(
                f"""
                select distinct token from (
                    select unnest(regexp_extract_all("{column}"::varchar, ?)) as token
                    from "{schema}"."{table}")
                where token in (select unnest(?)) order by 1 limit 5
                """,
                [ID_OR_ADDRESS, names],
            ).fetchall()
            found += [f"{schema}.{table}.{column}: {token}" for (token,) in rows]
        return found
    finally:
        con.close()
