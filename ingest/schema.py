"""The `raw` schema: table definitions, canonical event names and quarantine reason codes."""

from __future__ import annotations

CANONICAL_EVENTS: tuple[str, ...] = (
    "Session Started",
    "Session Ended",
    "Document Viewed",
    "Document Downloaded",
    "Document Shared",
    "Document Uploaded",
    "Document Commented",
    "Feature Used",
    "CSM Email Opened",
    "CSM Email Clicked",
    # The catch-all of mapped event logs: any activity without a canonical name (the source's own
    # name is kept in properties.source_event).
    "Other Activity",
)

REASONS: tuple[str, ...] = (
    "malformed_json",
    "missing_field",
    "bad_type",
    "unknown_event",
    "unknown_account",
    "unknown_user",
    "future_timestamp",
    "bad_value",
)

SOURCES: tuple[str, ...] = ("accounts", "users", "outcomes", "events")

# The `source` of raw.landed_partitions and raw.quarantine rows written by a history load
# (ingest.history): one landed row per event day the history covers.
HISTORY_SOURCE = "history"

_DDL = """
create schema if not exists raw;

create table if not exists raw.events (
    message_id varchar not null,
    account_id varchar not null,
    user_id varchar,
    event_name varchar not null,
    event_at timestamp not null,
    event_date date not null,
    session_id varchar,
    document_id varchar,
    feature varchar,
    duration_seconds double,
    campaign_id varchar,
    properties varchar,
    landing_date date not null,
    source_file varchar not null,
    source_line bigint not null,
    loaded_at timestamp not null
);

create table if not exists raw.accounts (
    account_id varchar not null,
    account_name varchar,
    domain varchar,
    plan varchar,
    seats integer,
    arr decimal(18, 2),
    contract_start_date date,
    renewal_date date,
    csm_name varchar,
    csm_email varchar,
    manager_name varchar,
    manager_email varchar,
    industry varchar,
    region varchar,
    tracking_consent boolean,
    snapshot_date date not null,
    landing_date date not null,
    source_file varchar not null,
    source_line bigint not null,
    loaded_at timestamp not null
);

create table if not exists raw.users (
    user_id varchar not null,
    account_id varchar not null,
    email varchar,
    role varchar,
    created_at timestamp,
    deactivated_at timestamp,
    opted_out boolean,
    snapshot_date date not null,
    landing_date date not null,
    source_file varchar not null,
    source_line bigint not null,
    loaded_at timestamp not null
);

create table if not exists raw.outcomes (
    account_id varchar not null,
    outcome varchar not null,
    effective_date date not null,
    arr_delta decimal(18, 2),
    landing_date date not null,
    source_file varchar not null,
    source_line bigint not null,
    loaded_at timestamp not null
);

create table if not exists raw.quarantine (
    source varchar not null,
    landing_date date not null,
    source_file varchar not null,
    source_line bigint,
    reason varchar not null,
    detail varchar,
    raw_record varchar,
    quarantined_at timestamp not null
);

create table if not exists raw.landed_partitions (
    landing_date date not null,
    source varchar not null,
    files integer not null,
    bytes_read bigint not null,
    rows_read bigint not null,
    rows_loaded bigint not null,
    rows_quarantined bigint not null,
    duplicates_dropped bigint not null,
    late_events bigint not null,
    opted_out_dropped bigint not null,
    loaded_at timestamp not null
);

-- What each file of a history load contributed to each event day (ingest.history); the
-- 'history' rows of raw.landed_partitions are their sums per day.
create table if not exists raw.history_files (
    source_file varchar not null,
    landing_date date not null,
    bytes_read bigint not null,
    rows_read bigint not null,
    rows_loaded bigint not null,
    rows_quarantined bigint not null,
    duplicates_dropped bigint not null,
    opted_out_dropped bigint not null,
    loaded_at timestamp not null
);
"""


def ensure_raw_schema(con) -> None:
    """Create the `raw` schema and its tables if they do not exist yet (safe to call every run)."""
    con.execute(_DDL)
