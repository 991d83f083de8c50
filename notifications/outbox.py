"""The outbox: each delivery is written first (idempotency key), then sent, retried or dead."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

import pyarrow as pa

from notifications.schema import ensure_schema


def utcnow() -> dt.datetime:
    """Naive UTC now, the way timestamps are stored in the warehouse."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def delivery_id_for(idempotency_key: str) -> str:
    """Stable id of a delivery: the same key always gives the same row."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Delivery:
    """One message to write to the outbox; `payload` holds everything the sender needs."""

    idempotency_key: str
    channel: str  # "email" or "crm_task"
    recipient: str
    payload: dict
    subject: str = ""
    alert_id: str | None = None
    account_id: str | None = None
    digest_date: dt.date | None = None


@dataclass(frozen=True)
class OutboxRow:
    """A row read back from `ops.outbox` for sending."""

    delivery_id: str
    idempotency_key: str
    channel: str
    alert_id: str | None
    account_id: str | None
    recipient: str
    subject: str
    payload: dict
    attempts: int
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class SendResult:
    """What a sender reports back; `status` is "recorded" when nothing was sent on purpose."""

    external_id: str | None = None
    external_url: str | None = None
    status: str = "sent"


class DeliveryError(Exception):
    """A send failed. `retryable` decides between another attempt and the dead-letter state."""

    retryable = True

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """The receiver refused the message for good (bad address, contract violation)."""

    retryable = False


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; a delivery is dead after `max_attempts` failed tries."""

    max_attempts: int = 5
    base_seconds: float = 60.0
    cap_seconds: float = 3600.0
    jitter: float = 0.5
    # Set: attempts go on (whatever max_attempts says) until the delivery is this old.
    max_age_seconds: float | None = None

    def is_dead(self, attempt: int, age_seconds: float | None) -> bool:
        """After a failed `attempt`: give up for good?"""
        if self.max_age_seconds is not None and age_seconds is not None:
            return age_seconds >= self.max_age_seconds
        return attempt >= self.max_attempts

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        backoff = min(self.cap_seconds, self.base_seconds * 2 ** max(attempt - 1, 0))
        # Jitter spreads retries of many rows that failed together (one SMTP outage).
        backoff *= 1.0 - self.jitter * rng.random()
        return max(backoff, retry_after or 0.0)


@dataclass
class DeliveryReport:
    """Counts of one delivery pass plus a few failure examples (never secrets)."""

    attempted: int = 0
    sent: int = 0
    recorded: int = 0
    failed: int = 0
    dead: int = 0
    deferred: int = 0
    errors: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict[str, object]:
        return {
            "attempted": self.attempted,
            "sent": self.sent,
            "recorded": self.recorded,
            "failed": self.failed,
            "dead": self.dead,
            "deferred": self.deferred,
            "error_examples": self.errors[:5],
        }


Sender = Callable[[OutboxRow], SendResult]


def enqueue(con, deliveries: Iterable[Delivery], now: dt.datetime | None = None) -> int:
    """Insert deliveries whose idempotency key is new; returns how many were new."""
    ensure_schema(con)
    now = now or utcnow()
    rows = list(deliveries)
    if not rows:
        return 0
    table = pa.table(
        {
            "delivery_id": [delivery_id_for(d.idempotency_key) for d in rows],
            "idempotency_key": [d.idempotency_key for d in rows],
            "channel": [d.channel for d in rows],
            "alert_id": [d.alert_id for d in rows],
            "account_id": [d.account_id for d in rows],
            "recipient": [d.recipient for d in rows],
            "digest_date": pa.array([d.digest_date for d in rows], type=pa.date32()),
            "subject": [d.subject for d in rows],
            "payload_json": [json.dumps(d.payload, default=str) for d in rows],
        }
    )
    before = con.execute("select count(*) from ops.outbox").fetchall()[0][0]
    con.register("_ea_new_deliveries", table)
    try:
        con.execute(
            """
            insert into ops.outbox (delivery_id, idempotency_key, channel, alert_id, account_id,
                recipient, digest_date, subject, payload_json, status, attempts, next_attempt_at,
                created_at, updated_at)
            select distinct on (delivery_id) delivery_id, idempotency_key, channel, alert_id,
                account_id, recipient, digest_date, subject, payload_json, 'pending', 0,
                $now, $now, $now
            from _ea_new_deliveries
            where delivery_id not in (select delivery_id from ops.outbox)
            """,
            {"now": now},
        )
    finally:
        con.unregister("_ea_new_deliveries")
    return con.execute("select count(*) from ops.outbox").fetchall()[0][0] - before


def due_rows(
    con,
    now: dt.datetime,
    channels: Iterable[str] | None = None,
    keys: Iterable[str] | None = None,
) -> list[OutboxRow]:
    """Pending or failed deliveries whose next attempt is due, oldest first (read only)."""
    ensure_schema(con)
    where, params = _due_filter(now, channels, keys)
    if where is None:
        return []
    sql = (
        "select delivery_id, idempotency_key, channel, alert_id, account_id, recipient, "
        f"coalesce(subject, ''), payload_json, attempts, created_at from ops.outbox where {where} "
        "order by created_at, delivery_id"
    )
    return [_row(r) for r in con.execute(sql, params).fetchall()]


def _row(r) -> OutboxRow:
    return OutboxRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8], r[9])


def _due_filter(
    now: dt.datetime, channels: Iterable[str] | None, keys: Iterable[str] | None
) -> tuple[str | None, dict[str, object]]:
    channels = None if channels is None else list(channels)
    keys = None if keys is None else list(keys)
    if channels == [] or keys == []:
        return None, {}
    where = "status in ('pending', 'failed') and coalesce(next_attempt_at, created_at) <= $now"
    params: dict[str, object] = {"now": now}
    if channels is not None:
        where += " and list_contains($channels, channel)"
        params["channels"] = channels
    if keys is not None:
        where += " and list_contains($keys, idempotency_key)"
        params["keys"] = keys
    return where, params


# How long a claimed row is left alone before it counts as due again. A claim is followed by one
# send (bounded by the sender's timeout, seconds) and its record; only a process that died in
# between leaves a claim to expire, and its row is then retried, never lost.
CLAIM_LEASE = dt.timedelta(minutes=15)

Connector = Callable[[], AbstractContextManager]


def held(con) -> Connector:
    """A connector that hands out the open connection `con` and never closes it.

    For callers whose connection blocks no one (tests, a CLI working on a copy); Dagster steps
    pass their resource's `get_connection` instead, so the file is unlocked while they wait on
    the network.
    """

    @contextmanager
    def use():
        yield con

    return use


def as_connector(connection) -> Connector:
    """`connection` as a connector: an open connection is wrapped with `held`."""
    return held(connection) if hasattr(connection, "execute") else connection


def claim_next(
    con,
    now: dt.datetime,
    channels: Iterable[str] | None = None,
    keys: Iterable[str] | None = None,
    lease: dt.timedelta = CLAIM_LEASE,
) -> OutboxRow | None:
    """Claim the oldest due delivery in one statement, or None when nothing is due.

    The claim counts the attempt and moves `next_attempt_at` to the end of the lease, so the
    row is not due again while it is being sent; if the sender's process dies before recording
    the result, the row is due again once the lease ends.
    """
    where, params = _due_filter(now, channels, keys)
    if where is None:
        return None
    rows = con.execute(
        f"""
        update ops.outbox set attempts = attempts + 1, last_attempt_at = $now,
            next_attempt_at = $until, updated_at = $now
        where delivery_id = (
            select delivery_id from ops.outbox where {where}
            order by created_at, delivery_id limit 1)
        returning delivery_id, idempotency_key, channel, alert_id, account_id, recipient,
            coalesce(subject, ''), payload_json, attempts, created_at
        """,
        {**params, "until": now + lease},
    ).fetchall()
    return _row(rows[0]) if rows else None


@dataclass(frozen=True)
class Attempt:
    """The outcome of sending one claimed row: a result, or the error that stopped it."""

    row: OutboxRow
    result: SendResult | None
    error: DeliveryError | None
    elapsed_ms: float


def send(sender: Sender, row: OutboxRow) -> Attempt:
    """Send one claimed row (network only: no connection is open during the call)."""
    started = time.perf_counter()
    try:
        try:
            result = sender(row)
        except DeliveryError:
            raise
        except Exception as exc:
            # A bug or malformed payload: dead-letter this row (visible, with the error)
            # rather than abort the pass and block every delivery queued behind it.
            raise PermanentDeliveryError(
                f"unexpected {type(exc).__name__} in the {row.channel} sender: {exc}"
            ) from exc
    except DeliveryError as exc:
        return Attempt(row, None, exc, (time.perf_counter() - started) * 1000)
    return Attempt(row, result, None, (time.perf_counter() - started) * 1000)


def record(
    con,
    attempt: Attempt,
    now: dt.datetime,
    policy: RetryPolicy | None = None,
    rng: random.Random | None = None,
) -> str:
    """Record one attempt (status, next try, delivery log) in one transaction, once per send;
    returns the outcome: sent, recorded, failed or dead.
    """
    policy = policy or RetryPolicy()
    rng = rng or random.Random()
    row, tries = attempt.row, attempt.row.attempts
    con.begin()
    try:
        if attempt.error is None:
            result = attempt.result or SendResult()
            outcome = result.status
            con.execute(
                "update ops.outbox set status = $s, sent_at = $now, updated_at = $now, "
                "next_attempt_at = null, last_error = null, external_id = $x, "
                "external_url = $u where delivery_id = $id",
                {
                    "s": outcome,
                    "now": now,
                    "x": result.external_id,
                    "u": result.external_url,
                    "id": row.delivery_id,
                },
            )
            _log(con, row, tries, now, outcome, None, None, attempt.elapsed_ms, result.external_id)
        else:
            exc = attempt.error
            age = (now - row.created_at).total_seconds() if row.created_at else None
            dead = (not exc.retryable) or policy.is_dead(tries, age)
            retry_at = (
                None
                if dead
                else now + dt.timedelta(seconds=policy.delay(tries, exc.retry_after, rng))
            )
            outcome = "dead" if dead else "failed"
            message = f"{type(exc).__name__}: {exc}"[:500]
            con.execute(
                "update ops.outbox set status = $s, next_attempt_at = $r, last_error = $e, "
                "updated_at = $now where delivery_id = $id",
                {"s": outcome, "r": retry_at, "e": message, "now": now, "id": row.delivery_id},
            )
            _log(con, row, tries, now, outcome, message, retry_at, attempt.elapsed_ms, None)
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return outcome


def deliver_due(
    connection,
    senders: Mapping[str, Sender],
    now: dt.datetime | None = None,
    policy: RetryPolicy | None = None,
    rng: random.Random | None = None,
    channels: Iterable[str] | None = None,
    keys: Iterable[str] | None = None,
    budget_seconds: float | None = None,
    lease: dt.timedelta = CLAIM_LEASE,
    policy_for: Callable[[OutboxRow], RetryPolicy | None] | None = None,
) -> DeliveryReport:
    """Send every due delivery of the given channels and record each attempt.

    `connection` is a connector (a callable returning a context manager that yields a
    connection, such as a Dagster DuckDB resource's `get_connection`) or an open connection
    (see `held`). Each delivery is claimed in a short write, the connection is closed while it
    is sent, and a new one records the result and claims the next: no lock is held across the
    network. A process killed after claiming leaves a row that is retried when its `lease`
    ends (never lost); senders make that retry harmless (CRM lookup, stable Message-ID).

    `budget_seconds` stops claiming new deliveries after that long (at least one is sent per
    pass, so a slow receiver cannot stall the queue for good); the rest stay due.

    `policy_for` picks a row's retry policy (None: `policy`); critical messages retry for a day.
    """
    connect = as_connector(connection)
    now = now or utcnow()
    policy = policy or RetryPolicy()
    rng = rng or random.Random()
    chosen = list(channels) if channels is not None else list(senders)
    missing = sorted(set(chosen) - set(senders))
    if missing:
        raise ValueError(
            f"No sender configured for outbox channel(s) {missing}; "
            f"configure one of: {sorted(senders)}"
        )
    keys = None if keys is None else list(keys)
    report = DeliveryReport()
    began = time.monotonic()

    def at() -> dt.datetime:  # `now` moved on by the time this pass has taken
        return now + dt.timedelta(seconds=time.monotonic() - began)

    with connect() as con:
        ensure_schema(con)
        row = claim_next(con, now, chosen, keys, lease)
    while row is not None:
        report.attempted += 1
        attempt = send(senders[row.channel], row)
        with connect() as con:
            row_policy = (policy_for(row) if policy_for else None) or policy
            outcome = record(con, attempt, at(), row_policy, rng)
            over = budget_seconds is not None and time.monotonic() - began > budget_seconds
            if over:
                where, params = _due_filter(now, chosen, keys)
                report.deferred = con.execute(
                    f"select count(*) from ops.outbox where {where}", params
                ).fetchall()[0][0]
                row = None
            else:
                row = claim_next(con, at(), chosen, keys, lease)
        setattr(report, outcome, getattr(report, outcome) + 1)
        if attempt.error is not None:
            error = attempt.error
            report.errors.append(
                f"{attempt.row.idempotency_key}: {type(error).__name__}: {error}"[:500]
            )
    return report


def _log(con, row, attempt, now, outcome, error, retry_at, elapsed_ms, external_id) -> None:
    con.execute(
        "insert into ops.delivery_log values ($id, $a, $c, $now, $o, $e, $r, $d, $x)",
        {
            "id": row.delivery_id,
            "a": attempt,
            "c": row.channel,
            "now": now,
            "o": outcome,
            "e": error,
            "r": retry_at,
            "d": elapsed_ms,
            "x": external_id,
        },
    )


def outbox_counts(con) -> dict[str, int]:
    """Rows per status (every status present, zero when none), for metadata and the digest."""
    ensure_schema(con)
    counts = dict(con.execute("select status, count(*) from ops.outbox group by all").fetchall())
    return {
        status: int(counts.get(status, 0))
        for status in ("pending", "sent", "recorded", "failed", "dead")
    }


def dead_letters(con, limit: int = 10) -> list[dict[str, object]]:
    """The newest dead deliveries with their last error, for a visible dead-letter list."""
    ensure_schema(con)
    cur = con.execute(
        "select idempotency_key, channel, recipient, attempts, last_error, updated_at "
        "from ops.outbox where status = 'dead' order by updated_at desc limit $n",
        {"n": limit},
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def requeue_dead(con, channel: str | None = None, now: dt.datetime | None = None) -> int:
    """Give dead deliveries a fresh set of attempts (after fixing the cause); returns how many."""
    ensure_schema(con)
    now = now or utcnow()
    ids = [
        r[0]
        for r in con.execute(
            "select delivery_id from ops.outbox where status = 'dead' "
            "and ($channel is null or channel = $channel)",
            {"channel": channel},
        ).fetchall()
    ]
    if ids:
        con.execute(
            "update ops.outbox set status = 'pending', attempts = 0, next_attempt_at = $now, "
            "updated_at = $now where list_contains($ids, delivery_id)",
            {"now": now, "ids": ids},
        )
    return len(ids)


def send_emails_now(
    connection,
    deliveries: list[Delivery],
    sender: Sender,
    now: dt.datetime,
    budget_seconds: float | None = None,
) -> tuple[int, DeliveryReport]:
    """Queue these emails (new keys only) and send exactly them now; the outbox retries the rest.

    `connection` as for `deliver_due`. Returns (how many were new, the send report). Used
    wherever mail goes out at once: digests, critical alerts and escalations, the KPI email.
    """
    connect = as_connector(connection)
    with connect() as con:
        new = enqueue(con, deliveries, now)
    report = deliver_due(
        connect,
        {"email": sender},
        now,
        channels=["email"],
        keys=[d.idempotency_key for d in deliveries],
        budget_seconds=budget_seconds,
    )
    return new, report
