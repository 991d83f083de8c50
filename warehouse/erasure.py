"""Erasure of one person or one account from every table, with an audit row that names neither.

`erase_user` / `erase_account` delete every row keyed by the subject (any table with a `user_id` /
`account_id` column, raw rows holding their email), delete unsent outbox messages that mention them
(the next delivery run renders those again without them), redact their identifiers from the text of
everything that must stay (sent messages, alert explanations, audit trails), and append one row to
`ops.erasure_log` holding only a salted hash of the identity. Re-running an erasure is harmless.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field

from warehouse.catalog import table_exists

REDACTED = "[erased]"
UNSENT = ("pending", "failed")

_LOG_DDL = """
create schema if not exists ops;
create table if not exists ops.erasure_log (
    erasure_id      varchar primary key,
    subject_kind    varchar not null,
    subject_hash    varchar not null,
    requested_by    varchar,
    erased_at       timestamp not null,
    rows_deleted    bigint not null,
    rows_redacted   bigint not null,
    outbox_purged   bigint not null,
    tables_json     varchar not null
);
"""
# Tables whose rows are the subject's own records: a row there that mentions them goes entirely.
_DELETE_ON_MENTION = {("raw", "quarantine")}
_SKIP = {("ops", "erasure_log"), ("ops", "delivery_log")}


class ErasureError(ValueError):
    """The erasure request cannot be carried out as given (the message says what to fix)."""


@dataclass
class ErasureResult:
    """What an erasure removed: rows per table, outbox messages purged, the audit row's id."""

    erasure_id: str
    subject_kind: str
    subject_hash: str
    deleted: dict[str, int] = field(default_factory=dict)
    redacted: dict[str, int] = field(default_factory=dict)
    outbox_purged: int = 0

    @property
    def rows_deleted(self) -> int:
        return sum(self.deleted.values())

    @property
    def rows_redacted(self) -> int:
        return sum(self.redacted.values())


def identity_hash(kind: str, subject_id: str, salt: str) -> str:
    """Salted SHA-256 of the identity: lets an auditor confirm a known request, reveals nothing."""
    if not salt:
        raise ErasureError("an erasure needs a non-empty salt (set EA_ERASURE_SALT for the CLI)")
    return hashlib.sha256(f"{salt}|{kind}|{subject_id}".encode()).hexdigest()


def _tables(con) -> dict[tuple[str, str], dict[str, str]]:
    rows = con.execute(
        """
        select c.table_schema, c.table_name, c.column_name, c.data_type
        from information_schema.columns c
        join information_schema.tables t
          on t.table_schema = c.table_schema and t.table_name = c.table_name
        where t.table_type = 'BASE TABLE' and c.table_schema not in ('information_schema',
              'pg_catalog') and t.table_catalog = current_database()
        order by c.table_schema, c.table_name, c.ordinal_position
        """
    ).fetchall()
    out: dict[tuple[str, str], dict[str, str]] = {}
    for schema, table, column, dtype in rows:
        if (schema, table) not in _SKIP:
            out.setdefault((schema, table), {})[column] = dtype
    return out


def _q(schema: str, table: str) -> str:
    return f'"{schema}"."{table}"'


def _pattern(terms: list[str]) -> str:
    # Whole-token match: 'a_0004' must not hit 'a_00042'.
    alts = "|".join(re.escape(t) for t in sorted(set(terms), key=len, reverse=True))
    return f"(^|[^A-Za-z0-9_])({alts})($|[^A-Za-z0-9_])"


def _text_columns(columns: dict[str, str]) -> list[str]:
    return [c for c, t in columns.items() if t.upper() in ("VARCHAR", "JSON")]


def _erase(con, kind: str, ids: dict[str, list[str]], terms: list[str], result: ErasureResult):
    tables = _tables(con)
    pattern = _pattern(terms)
    # 1. Rows keyed by the subject.
    for (schema, table), columns in tables.items():
        conds, params = [], []
        for key in ("user_id", "account_id"):
            if key in columns and ids.get(key):
                conds.append(f'"{key}" in (select unnest(?))')
                params.append(ids[key])
        for col in columns:
            if col == "email" and ids.get("email"):
                conds.append(f'lower("{col}") in (select unnest(?))')
                params.append([e.lower() for e in ids["email"]])
        if (schema, table) == ("ops", "outbox"):
            # Unsent messages that mention them go; sent ones stay as a record, redacted below.
            conds = [f"({' or '.join(conds)})"] if conds else []
            text = " or ".join(
                f"regexp_matches(coalesce(cast(\"{c}\" as varchar), ''), ?)"
                for c in _text_columns(columns)
            )
            where = " or ".join([*conds, f"({text})"])
            sql = f"status in {UNSENT} and ({where})"
            n = con.execute(
                f"select count(*) from {_q(schema, table)} where {sql}",
                [*params, *[pattern] * len(_text_columns(columns))],
            ).fetchone()[0]
            if n:
                con.execute(
                    f"delete from {_q(schema, table)} where {sql}",
                    [*params, *[pattern] * len(_text_columns(columns))],
                )
                result.outbox_purged += n
            conds = []
        if (schema, table) in _DELETE_ON_MENTION:
            for col in _text_columns(columns):
                conds.append(f"regexp_matches(coalesce(cast(\"{col}\" as varchar), ''), ?)")
                params.append(pattern)
        if not conds:
            continue
        where = " or ".join(conds)
        n = con.execute(f"select count(*) from {_q(schema, table)} where {where}", params)
        n = n.fetchone()[0]
        if n:
            con.execute(f"delete from {_q(schema, table)} where {where}", params)
            result.deleted[f"{schema}.{table}"] = n
    # 2. Whatever text still mentions them (sent messages, explanations, audit trails): redact.
    for (schema, table), columns in _tables(con).items():
        texts = _text_columns(columns)
        if not texts:
            continue
        hits = " or ".join(
            f"regexp_matches(coalesce(cast(\"{c}\" as varchar), ''), ?)" for c in texts
        )
        n = con.execute(
            f"select count(*) from {_q(schema, table)} where {hits}", [pattern] * len(texts)
        ).fetchone()[0]
        if not n:
            continue
        sets = ", ".join(
            f"\"{c}\" = regexp_replace(cast(\"{c}\" as varchar), ?, '\\1{REDACTED}\\3', 'g')"
            for c in texts
        )
        # regexp_replace cannot overlap matches ("a a"): repeat until nothing is left.
        for _ in range(5):
            con.execute(
                f"update {_q(schema, table)} set {sets} where {hits}",
                [pattern] * (2 * len(texts)),
            )
            left = con.execute(
                f"select count(*) from {_q(schema, table)} where {hits}", [pattern] * len(texts)
            ).fetchone()[0]
            if not left:
                break
        result.redacted[f"{schema}.{table}"] = n


def _user_emails(con, user_ids: list[str]) -> list[str]:
    if not user_ids or not table_exists(con, "raw", "users"):
        return []
    rows = con.execute(
        "select distinct email from raw.users where user_id in (select unnest(?)) "
        "and email is not null and trim(email) <> ''",
        [user_ids],
    ).fetchall()
    return [r[0] for r in rows]


def _run(con, kind, subject_id, ids, terms, salt, requested_by, now) -> ErasureResult:
    if not subject_id or not subject_id.strip():
        raise ErasureError(f"give the {kind} id to erase (it was empty)")
    result = ErasureResult(
        erasure_id="er_" + uuid.uuid4().hex[:20],
        subject_kind=kind,
        subject_hash=identity_hash(kind, subject_id, salt),
    )
    con.execute(_LOG_DDL)
    con.execute("begin transaction")
    try:
        _erase(con, kind, ids, [t for t in terms if t], result)
        con.execute(
            "insert into ops.erasure_log values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                result.erasure_id,
                kind,
                result.subject_hash,
                requested_by,
                (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None),
                result.rows_deleted,
                result.rows_redacted,
                result.outbox_purged,
                json.dumps({"deleted": result.deleted, "redacted": result.redacted}),
            ],
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return result


def erase_user(
    con,
    user_id: str,
    salt: str,
    requested_by: str | None = None,
    now: dt.datetime | None = None,
) -> ErasureResult:
    """Remove one user (their events, snapshots, quarantined lines, email) from every table."""
    emails = _user_emails(con, [user_id])
    ids = {"user_id": [user_id], "email": emails}
    return _run(con, "user", user_id, ids, [user_id, *emails], salt, requested_by, now)


def erase_account(
    con,
    account_id: str,
    salt: str,
    requested_by: str | None = None,
    now: dt.datetime | None = None,
) -> ErasureResult:
    """Remove one account, all of its users, and every row and mention of them."""
    users, names = [], []
    if table_exists(con, "raw", "users"):
        users = [
            r[0]
            for r in con.execute(
                "select distinct user_id from raw.users where account_id = ?", [account_id]
            ).fetchall()
        ]
    if table_exists(con, "raw", "accounts"):
        names = [
            v
            for r in con.execute(
                "select distinct account_name, domain from raw.accounts where account_id = ?",
                [account_id],
            ).fetchall()
            for v in r
            if v and len(v.strip()) >= 4
        ]
    emails = _user_emails(con, users)
    ids = {"account_id": [account_id], "user_id": users, "email": emails}
    terms = [account_id, *users, *emails, *names]
    return _run(con, "account", account_id, ids, terms, salt, requested_by, now)
