"""Load event files into raw.events: classify lines set-based, quarantine, dedupe, replace a day."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from ingest.common import IngestError, SourceStats, day_dir, load_lines, relative_name, transaction
from ingest.schema import CANONICAL_EVENTS

EVENT_FILE_PATTERNS = ("events*.jsonl", "events*.jsonl.gz")

# Columns every candidate table (JSON Lines or bring-your-own) hands to `finish_events`.
CANDIDATE_COLUMNS = (
    "source_file varchar, source_line bigint, raw_record varchar, reason varchar, detail varchar, "
    "message_id varchar, account_id varchar, user_id varchar, event_name varchar, "
    "event_at timestamp, session_id varchar, document_id varchar, feature varchar, "
    "duration_seconds double, campaign_id varchar, properties varchar"
)

_JSON_PATHS = (
    "$.messageId",
    "$.userId",
    "$.groupId",
    "$.event",
    "$.timestamp",
    "$.properties",
    "$.type",
    "$.properties.duration_seconds",
    "$.properties.session_id",
    "$.properties.document_id",
    "$.properties.feature",
    "$.properties.campaign_id",
)


def event_files(folder: Path) -> list[Path]:
    files = {p for pattern in EVENT_FILE_PATTERNS for p in Path(folder).glob(pattern)}
    return sorted(files)


def _sql_list(values) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _parse_json_lines(con) -> None:
    """Turn `_ev_lines` into `_ev_cand`: typed fields plus the first structural problem per line."""
    paths = ", ".join(f"'{p}'" for p in _JSON_PATHS)
    con.execute(f"create or replace temp table _ev_cand ({CANDIDATE_COLUMNS})")
    # Malformed lines first, in their own statement: JSON functions raise on invalid input even
    # inside a CASE, so only valid objects may reach the extraction below.
    con.execute(
        """
        insert into _ev_cand (source_file, source_line, raw_record, reason, detail)
        select source_file, source_line, line, 'malformed_json',
               case when json_valid(line) then 'not a JSON object' else 'invalid JSON' end
        from _ev_lines
        where trim(line) <> '' and not (json_valid(line) and starts_with(ltrim(line), '{'))
        """
    )
    # Materialised first: the optimiser may evaluate projections before filters in one query.
    con.execute(
        """
        create or replace temp table _ev_obj as
        select source_file, source_line, line from _ev_lines
        where trim(line) <> '' and json_valid(line) and starts_with(ltrim(line), '{')
        """
    )
    con.execute(
        f"""
        insert into _ev_cand
        with obj as (
            select source_file, source_line, line, json_extract(line, [{paths}]) as f
            from _ev_obj
        ),
        typed as (
            select
                source_file, source_line, line,
                nullif(f[1] ->> '$', '') as message_id, json_type(f[1]) as t_message_id,
                nullif(f[2] ->> '$', '') as user_id, json_type(f[2]) as t_user_id,
                nullif(f[3] ->> '$', '') as account_id, json_type(f[3]) as t_account_id,
                nullif(f[4] ->> '$', '') as event_name, json_type(f[4]) as t_event_name,
                nullif(f[5] ->> '$', '') as ts_text, json_type(f[5]) as t_ts,
                try_cast(f[5] ->> '$' as timestamptz) at time zone 'UTC' as event_at,
                json_type(f[6]) as t_properties, f[6]::varchar as properties,
                f[7] ->> '$' as event_type,
                json_type(f[8]) as t_duration, try_cast(f[8] ->> '$' as double) as duration_seconds,
                f[9] ->> '$' as session_id,
                f[10] ->> '$' as document_id,
                f[11] ->> '$' as feature,
                f[12] ->> '$' as campaign_id
            from obj
        ),
        checked as (
            select *,
                concat_ws(', ',
                    case when message_id is null then 'messageId' end,
                    case when account_id is null then 'groupId' end,
                    case when user_id is null then 'userId' end,
                    case when event_name is null then 'event' end,
                    case when ts_text is null then 'timestamp' end) as missing,
                concat_ws(', ',
                    case when t_message_id not in ('VARCHAR', 'NULL') then 'messageId' end,
                    case when t_account_id not in ('VARCHAR', 'NULL') then 'groupId' end,
                    case when t_user_id not in ('VARCHAR', 'NULL') then 'userId' end,
                    case when t_event_name not in ('VARCHAR', 'NULL') then 'event' end,
                    case when t_ts not in ('VARCHAR', 'NULL') or event_at is null then 'timestamp'
                    end,
                    case when t_properties not in ('OBJECT', 'NULL') then 'properties' end,
                    case when t_duration not in ('BIGINT', 'UBIGINT', 'DOUBLE', 'NULL')
                        then 'properties.duration_seconds' end) as wrong_type
            from typed
        )
        select
            source_file, source_line, line,
            case
                when missing <> '' then 'missing_field'
                when wrong_type <> '' then 'bad_type'
                when event_type is not null and event_type <> 'track' then 'bad_value'
            end,
            case
                when missing <> '' then 'missing: ' || missing
                when wrong_type <> '' then 'wrong type: ' || wrong_type
                when event_type is not null and event_type <> 'track'
                    then 'type is ' || event_type || ', expected track'
            end,
            message_id, account_id, user_id, event_name, event_at, session_id, document_id,
            feature, duration_seconds, campaign_id, properties
        from checked
        """
    )


def finish_events(
    con,
    landing_date: dt.date,
    *,
    files: int,
    bytes_read: int,
    started: float,
    source: str = "events",
) -> SourceStats:
    """Validate `_ev_cand` against the day's snapshots, then replace the day's rows in raw tables.

    Must run inside a transaction. Rules: a message id belongs to the earliest landing day holding
    it; rows of opted-out users or non-consenting accounts are dropped and only counted.
    """
    d = landing_date
    future_limit = d + dt.timedelta(days=2)  # anything after the end of the next day
    has_rows = con.execute("select count(*) from _ev_cand").fetchone()[0] > 0
    if has_rows:
        snap = con.execute(
            "select count(*) from raw.accounts where snapshot_date <= ?", [d]
        ).fetchone()[0]
        if snap == 0:
            raise _no_snapshot(d)
    con.execute(
        f"""
        create or replace temp table _ev_class as
        with acct as (
            select account_id, arg_max(tracking_consent, snapshot_date) as tracking_consent
            from raw.accounts where snapshot_date <= $d group by account_id
        ),
        usr as (
            select user_id, arg_max(opted_out, snapshot_date) as opted_out
            from raw.users where snapshot_date <= $d group by user_id
        )
        select
            c.* exclude (reason, detail),
            case
                when c.reason is not null then c.reason
                when c.event_name not in ({_sql_list(CANONICAL_EVENTS)}) then 'unknown_event'
                when c.event_name = 'Feature Used' and c.feature is null then 'missing_field'
                when c.event_at >= $future then 'future_timestamp'
                when c.duration_seconds < 0 then 'bad_value'
                when a.account_id is null then 'unknown_account'
                when u.user_id is null then 'unknown_user'
            end as reason,
            case
                when c.reason is not null then c.detail
                when c.event_name not in ({_sql_list(CANONICAL_EVENTS)})
                    then 'event ' || c.event_name || ' is not a canonical event name'
                when c.event_name = 'Feature Used' and c.feature is null
                    then 'missing: properties.feature'
                when c.event_at >= $future
                    then 'timestamp ' || c.event_at::varchar || ' is after the landing day + 1'
                when c.duration_seconds < 0
                    then 'duration_seconds ' || c.duration_seconds::varchar || ' is negative'
                when a.account_id is null
                    then 'groupId ' || c.account_id || ' is not a known account'
                when u.user_id is null then 'userId ' || c.user_id || ' is not a known user'
            end as detail,
            coalesce(not a.tracking_consent, false) or coalesce(u.opted_out, false) as is_dropped
        from _ev_cand c
        left join acct a on a.account_id = c.account_id
        left join usr u on u.user_id = c.user_id
        """,
        {"d": d, "future": future_limit},
    )
    # Duplicates inside the day collapse to the first occurrence (file order, then line order).
    con.execute(
        """
        create or replace temp table _ev_new as
        select * exclude (reason, detail, is_dropped, raw_record)
        from _ev_class
        where reason is null and not is_dropped
        qualify row_number() over (
            partition by message_id order by source_file nulls last, source_line nulls last) = 1
        """
    )
    kept_in_day = con.execute("select count(*) from _ev_new").fetchone()[0]
    valid = con.execute(
        "select count(*) from _ev_class where reason is null and not is_dropped"
    ).fetchone()[0]
    # Ids an earlier landing day already holds stay there.
    con.execute(
        """
        delete from _ev_new where message_id in (
            select message_id from raw.events where landing_date < $d)
        """,
        {"d": d},
    )
    kept = con.execute("select count(*) from _ev_new").fetchone()[0]
    # Ids a later day holds move here; that day's bookkeeping shows them as duplicates.
    con.execute(
        """
        update raw.landed_partitions lp
        set duplicates_dropped = lp.duplicates_dropped + m.n, rows_loaded = lp.rows_loaded - m.n
        from (
            select landing_date, count(*) as n from raw.events
            where landing_date > $d and message_id in (select message_id from _ev_new)
            group by landing_date
        ) m
        where lp.landing_date = m.landing_date and lp.source = $source
        """,
        {"d": d, "source": source},
    )
    con.execute(
        """
        delete from raw.events
        where landing_date > $d and message_id in (select message_id from _ev_new)
        """,
        {"d": d},
    )
    con.execute("delete from raw.events where landing_date = ?", [d])
    con.execute(
        """
        insert into raw.events
        select message_id, account_id, user_id, event_name, event_at, event_at::date,
               session_id, document_id, feature, duration_seconds, campaign_id, properties,
               $d, source_file, source_line, now()::timestamp
        from _ev_new
        """,
        {"d": d},
    )
    con.execute("delete from raw.quarantine where source = ? and landing_date = ?", [source, d])
    con.execute(
        """
        insert into raw.quarantine
        select $source, $d, source_file, source_line, reason, detail, raw_record, now()::timestamp
        from _ev_class where reason is not null
        """,
        {"d": d, "source": source},
    )
    by_reason = dict(
        con.execute(
            "select reason, count(*) from _ev_class where reason is not null "
            "group by all order by 1"
        ).fetchall()
    )
    rows_read, dropped = con.execute(
        "select count(*), count(*) filter (where is_dropped and reason is null) from _ev_class"
    ).fetchone()
    late = con.execute("select count(*) from _ev_new where event_at::date < ?", [d]).fetchone()[0]
    stats = SourceStats(
        source=source,
        landing_date=d,
        files=files,
        bytes_read=bytes_read,
        rows_read=rows_read,
        rows_loaded=kept,
        rows_quarantined=sum(by_reason.values()),
        quarantined_by_reason=by_reason,
        duplicates_dropped=(valid - kept_in_day) + (kept_in_day - kept),
        late_events=late,
        opted_out_dropped=dropped,
    )
    record_partition(con, stats)
    stats.seconds = round(time.perf_counter() - started, 3)
    return stats


def record_partition(con, stats: SourceStats) -> None:
    """Replace this (landing day, source) row of raw.landed_partitions."""
    con.execute(
        "delete from raw.landed_partitions where landing_date = ? and source = ?",
        [stats.landing_date, stats.source],
    )
    con.execute(
        "insert into raw.landed_partitions values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now()::timestamp)",
        [
            stats.landing_date,
            stats.source,
            stats.files,
            stats.bytes_read,
            stats.rows_read,
            stats.rows_loaded,
            stats.rows_quarantined,
            stats.duplicates_dropped,
            stats.late_events,
            stats.opted_out_dropped,
        ],
    )


def _no_snapshot(d: dt.date) -> IngestError:
    return IngestError(
        f"no accounts snapshot on or before {d}: events cannot be checked against known "
        "accounts. Load the landing day that carries the first accounts.csv/users.csv first "
        "(load days in date order, or use load_landing_days)."
    )


def load_events(con, landing_dir: Path, landing_date: dt.date) -> SourceStats:
    """Load the day's `events*.jsonl[.gz]` files into raw.events (replacing that day's rows)."""
    started = time.perf_counter()
    folder = day_dir(landing_dir, landing_date)
    files = event_files(folder)
    with transaction(con):
        con.execute(
            "create or replace temp table _ev_lines "
            "(source_file varchar, source_line bigint, line varchar)"
        )
        for path in files:
            load_lines(con, "_ev_lines", path, relative_name(path, Path(landing_dir)))
        _parse_json_lines(con)
        return finish_events(
            con,
            landing_date,
            files=len(files),
            bytes_read=sum(p.stat().st_size for p in files),
            started=started,
        )
