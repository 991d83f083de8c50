"""Tables of the deliveries stage (schema `ops`): the outbox and the per-attempt delivery log."""

from __future__ import annotations

OUTBOX_STATUSES = ("pending", "sent", "failed", "dead", "recorded")

_DDL = """
create schema if not exists ops;
create table if not exists ops.outbox (
    delivery_id      varchar primary key,
    idempotency_key  varchar not null unique,
    channel          varchar not null,
    alert_id         varchar,
    account_id       varchar,
    recipient        varchar not null,
    digest_date      date,
    subject          varchar,
    payload_json     varchar not null,
    status           varchar not null default 'pending',
    attempts         integer not null default 0,
    next_attempt_at  timestamp,
    last_attempt_at  timestamp,
    last_error       varchar,
    external_id      varchar,
    external_url     varchar,
    remote_status    varchar,
    created_at       timestamp not null,
    updated_at       timestamp not null,
    sent_at          timestamp
);
create table if not exists ops.delivery_log (
    delivery_id   varchar not null,
    attempt       integer not null,
    channel       varchar not null,
    attempted_at  timestamp not null,
    outcome       varchar not null,
    error         varchar,
    retry_at      timestamp,
    duration_ms   double,
    external_id   varchar
);
"""


def ensure_schema(con) -> None:
    """Create `ops.outbox` and `ops.delivery_log` if they do not exist (safe to call every run)."""
    con.execute(_DDL)
