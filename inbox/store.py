"""The inbox's own store (SQLite): actions people took, used links, sign-in links, rate limits.

The app writes here at once, so a person sees "acknowledged" the moment they confirm, whether or
not a pipeline run holds the warehouse. The pipeline applies pending actions to the warehouse
(inbox.apply) and marks them applied. The caller opens the connection (`connect`) and passes it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

_DDL = """
create table if not exists actions (
    action_id text primary key,
    alert_id text not null,
    action text not null,              -- acknowledge | snooze | resolve
    actor text not null,               -- the person's email
    channel text not null,             -- email (a signed link) | inbox (signed in)
    feedback text,                     -- resolve: saved | useful | not_useful
    note text,
    snooze_until text,                 -- ISO date
    token_id text unique,              -- the signed link used (one action per link)
    requested_at text not null,        -- ISO UTC: when the person confirmed
    applied_at text,                   -- when the pipeline wrote it to the warehouse
    outcome text,                      -- applied | unchanged | rejected
    outcome_detail text
);
create index if not exists actions_pending on actions (applied_at) where applied_at is null;
create table if not exists sign_in_links (
    link_hash text primary key,
    email text not null,
    next_path text,
    created_at text not null,
    expires_at text not null,
    used_at text
);
create table if not exists sign_in_requests (
    email text not null,
    client text not null,
    requested_at text not null
);
create index if not exists sign_in_requests_at on sign_in_requests (requested_at);
create table if not exists alerts_seen (
    alert_id text primary key,
    first_seen_at text not null        -- when the inbox first saw the alert in a snapshot
);
"""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    return (
        value.isoformat(timespec="microseconds")
        if isinstance(value, dt.datetime)
        else (value.isoformat() if value is not None else None)
    )


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (and create) the store. WAL lets the app's readers and one writer work at once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), timeout=10, check_same_thread=False, isolation_level=None)
    con.row_factory = sqlite3.Row
    con.execute("pragma journal_mode=wal")
    con.execute("pragma busy_timeout=10000")
    con.executescript(_DDL)
    return con


@dataclass(frozen=True)
class Action:
    """One recorded action (a row of `actions`)."""

    action_id: str
    alert_id: str
    action: str
    actor: str
    channel: str
    feedback: str | None
    note: str | None
    snooze_until: dt.date | None
    token_id: str | None
    requested_at: dt.datetime
    applied_at: dt.datetime | None
    outcome: str | None
    outcome_detail: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Action:
        def ts(v):
            return dt.datetime.fromisoformat(v) if v else None

        return cls(
            action_id=row["action_id"],
            alert_id=row["alert_id"],
            action=row["action"],
            actor=row["actor"],
            channel=row["channel"],
            feedback=row["feedback"],
            note=row["note"],
            snooze_until=dt.date.fromisoformat(row["snooze_until"])
            if row["snooze_until"]
            else None,
            token_id=row["token_id"],
            requested_at=ts(row["requested_at"]),
            applied_at=ts(row["applied_at"]),
            outcome=row["outcome"],
            outcome_detail=row["outcome_detail"],
        )


class LinkAlreadyUsed(Exception):
    """The signed link has already been used; `action` is what it did."""

    def __init__(self, action: Action):
        super().__init__(f"link already used for {action.action} at {action.requested_at}")
        self.action = action


def record_action(
    con: sqlite3.Connection,
    alert_id: str,
    action: str,
    actor: str,
    channel: str,
    *,
    feedback: str | None = None,
    note: str | None = None,
    snooze_until: dt.date | None = None,
    token_id: str | None = None,
    at: dt.datetime | None = None,
) -> Action:
    """Record an action now. A link (`token_id`) acts once: a second use raises LinkAlreadyUsed."""
    at = at or utcnow()
    action_id = "act_" + uuid.uuid4().hex[:20]
    try:
        con.execute(
            "insert into actions (action_id, alert_id, action, actor, channel, feedback, note, "
            "snooze_until, token_id, requested_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                action_id,
                alert_id,
                action,
                actor.lower(),
                channel,
                feedback,
                note,
                _iso(snooze_until),
                token_id,
                _iso(at),
            ],
        )
    except sqlite3.IntegrityError:
        used = action_for_token(con, token_id) if token_id else None
        if used is None:
            raise
        raise LinkAlreadyUsed(used) from None
    return get_action(con, action_id)


def get_action(con: sqlite3.Connection, action_id: str) -> Action:
    row = con.execute("select * from actions where action_id = ?", [action_id]).fetchone()
    return Action.from_row(row)


def action_for_token(con: sqlite3.Connection, token_id: str) -> Action | None:
    row = con.execute("select * from actions where token_id = ?", [token_id]).fetchone()
    return Action.from_row(row) if row else None


def pending_actions(con: sqlite3.Connection) -> list[Action]:
    """Actions not yet written to the warehouse, oldest first."""
    rows = con.execute(
        "select * from actions where applied_at is null order by requested_at, action_id"
    ).fetchall()
    return [Action.from_row(r) for r in rows]


def pending_summary(con: sqlite3.Connection) -> tuple[int, str | None]:
    """(how many actions wait for the warehouse, the newest one's id) — what the sensor reads."""
    row = con.execute(
        "select count(*), max(requested_at || ' ' || action_id) from actions "
        "where applied_at is null"
    ).fetchone()
    return int(row[0]), row[1]


def mark_applied(
    con: sqlite3.Connection,
    action_id: str,
    outcome: str,
    detail: str | None = None,
    at: dt.datetime | None = None,
) -> None:
    con.execute(
        "update actions set applied_at = ?, outcome = ?, outcome_detail = ? where action_id = ?",
        [_iso(at or utcnow()), outcome, detail, action_id],
    )


def actions_since(
    con: sqlite3.Connection, alert_ids: list[str] | None, since: dt.datetime | None
) -> list[Action]:
    """Actions on these alerts (all alerts: None) that a snapshot published at `since` may not
    show yet: pending, or applied after it. Oldest first.
    """
    sql = "select * from actions where outcome is not 'rejected' and (applied_at is null"
    params: list = []
    if since is not None:
        sql += " or applied_at >= ?"
        params.append(_iso(since))
    sql += ")"
    if alert_ids is not None:
        if not alert_ids:
            return []
        sql += f" and alert_id in ({', '.join('?' for _ in alert_ids)})"
        params.extend(alert_ids)
    rows = con.execute(sql + " order by requested_at, action_id", params).fetchall()
    return [Action.from_row(r) for r in rows]


def recent_actions(con: sqlite3.Connection, alert_id: str, limit: int = 20) -> list[Action]:
    rows = con.execute(
        "select * from actions where alert_id = ? order by requested_at desc limit ?",
        [alert_id, limit],
    ).fetchall()
    return [Action.from_row(r) for r in rows]


# --- Sign-in links and their rate limits ------------------------------------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def count_sign_in_requests(
    con: sqlite3.Connection, email: str | None, client: str | None, since: dt.datetime
) -> tuple[int, int]:
    """(requests for this email, requests from this client) since `since`."""
    row = con.execute(
        "select count(*) filter (where email = ?), count(*) filter (where client = ?) "
        "from sign_in_requests where requested_at >= ?",
        [(email or "").lower(), client or "", _iso(since)],
    ).fetchone()
    return int(row[0]), int(row[1])


def note_sign_in_request(
    con: sqlite3.Connection, email: str, client: str, at: dt.datetime | None = None
) -> None:
    at = at or utcnow()
    con.execute("insert into sign_in_requests values (?, ?, ?)", [email.lower(), client, _iso(at)])
    # Old requests no longer count towards any limit.
    con.execute(
        "delete from sign_in_requests where requested_at < ?",
        [_iso(at - dt.timedelta(days=1))],
    )


def create_sign_in_link(
    con: sqlite3.Connection,
    email: str,
    minutes: int,
    next_path: str | None = None,
    at: dt.datetime | None = None,
) -> str:
    """A new single-use sign-in token (only its hash is stored)."""
    at = at or utcnow()
    token = secrets.token_urlsafe(32)
    con.execute(
        "insert into sign_in_links values (?, ?, ?, ?, ?, null)",
        [
            _hash(token),
            email.lower(),
            next_path,
            _iso(at),
            _iso(at + dt.timedelta(minutes=minutes)),
        ],
    )
    return token


def peek_sign_in_link(
    con: sqlite3.Connection, token: str, at: dt.datetime | None = None
) -> tuple[str, dict]:
    """('ok' | 'unknown' | 'used' | 'expired', the link's row) without using it."""
    row = con.execute("select * from sign_in_links where link_hash = ?", [_hash(token)]).fetchone()
    if row is None:
        return "unknown", {}
    info = dict(row)
    if row["used_at"]:
        return "used", info
    if (at or utcnow()) >= dt.datetime.fromisoformat(row["expires_at"]):
        return "expired", info
    return "ok", info


def use_sign_in_link(
    con: sqlite3.Connection, token: str, at: dt.datetime | None = None
) -> tuple[str, dict]:
    """Use the link once: ('ok', row) the first time, else why not (as peek_sign_in_link)."""
    at = at or utcnow()
    state, info = peek_sign_in_link(con, token, at)
    if state != "ok":
        return state, info
    cur = con.execute(
        "update sign_in_links set used_at = ? where link_hash = ? and used_at is null",
        [_iso(at), _hash(token)],
    )
    if cur.rowcount != 1:  # used by a concurrent request in between
        return "used", info
    return "ok", info


# --- Which alerts are new ---------------------------------------------------------------------


def note_seen(con: sqlite3.Connection, alert_ids: list[str], at: dt.datetime | None = None) -> int:
    """Remember when each alert first appeared in a published snapshot; returns how many are
    new to the inbox.
    """
    at_s = _iso(at or utcnow())
    before = con.total_changes
    con.executemany(
        "insert or ignore into alerts_seen values (?, ?)", [(a, at_s) for a in alert_ids]
    )
    return con.total_changes - before


def seen_after(con: sqlite3.Connection, alert_ids: list[str], since: dt.datetime) -> set[str]:
    """The alerts among `alert_ids` that first appeared after `since`."""
    if not alert_ids:
        return set()
    out: set[str] = set()
    for i in range(0, len(alert_ids), 500):
        chunk = alert_ids[i : i + 500]
        rows = con.execute(
            f"select alert_id from alerts_seen where first_seen_at > ? and alert_id in "
            f"({', '.join('?' for _ in chunk)})",
            [_iso(since), *chunk],
        ).fetchall()
        out.update(r[0] for r in rows)
    return out
