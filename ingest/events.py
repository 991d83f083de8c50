"""Load event files into raw.events: classify lines set-based, quarantine, dedupe, replace a day."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from ingest.common import (
    SourceStats,
    day_dir,
    load_many_lines,
    manifest_files,
    relative_name,
    transaction,
)
from ingest.schema import CANONICAL_EVENTS, HISTORY_SOURCE

EVENT_FILE_PATTERNS = ("events*.jsonl", "events*.jsonl.gz")

# Columns every candidate table (JSON Lines or bring-your-own) hands to `finish_events`.
CANDIDATE_COLUMNS = (
    "landing_date date, source_file varchar, source_line bigint, raw_record varchar, "
    "reason varchar, detail varchar, "
    "message_id varchar, account_id varchar, user_id varchar, event_name varchar, "
    "event_at timestamp, session_id varchar, document_id varchar, feature varchar, "
    "duration_seconds double, campaign_id varchar, properties varchar"
)

# One parse per line: the top-level fields as JSON fragments (their first character tells their
# JSON type), then the properties object's fields the same way. Cheaper than extracting each path
# and calling json_type on it (about 40 % of the parsing time on the benchmark data).
_TOP = (
    '{"type": "JSON", "messageId": "JSON", "userId": "JSON", "groupId": "JSON", '
    '"event": "JSON", "timestamp": "JSON", "properties": "JSON"}'
)
_PROPS = (
    '{"duration_seconds": "JSON", "session_id": "JSON", "document_id": "JSON", '
    '"feature": "JSON", "campaign_id": "JSON"}'
)


# The properties that raw.events holds as columns, as a merge patch that removes them.
_COLUMN_PROPS = (
    '{"duration_seconds": null, "session_id": null, "document_id": null, '
    '"feature": null, "campaign_id": null}'
)


def event_files(folder: Path) -> list[Path]:
    """The folder's event files; only those its manifest lists, when it lists any."""
    files = {p for pattern in EVENT_FILE_PATTERNS for p in Path(folder).glob(pattern)}
    listed = manifest_files(folder)
    if listed is not None:
        # A file written after the manifest belongs to a later export, not to this one.
        files = {p for p in files if p.name in listed}
    return sorted(files)


def _sql_list(values) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _parse_json_lines(con) -> None:
    """Turn `_ev_lines` into `_ev_cand`: typed fields plus the first structural problem per line."""
    con.execute(f"create or replace temp table _ev_cand ({CANDIDATE_COLUMNS})")
    # One statement, one validating parse per line: `ok` says whether the line is a JSON object,
    # and only those lines reach json_transform (inside CASE; JSON functions raise on invalid
    # input, and try() around them costs more than the parse). Only malformed lines keep their
    # text here; every other quarantined line takes it from _ev_lines at the end.
    con.execute(
        f"""
        insert into _ev_cand
        with lines as (
            select landing_date, source_file, source_line, line, read_error,
                   read_error is null and json_valid(line) and starts_with(ltrim(line), '{{')
                       as ok
            from _ev_lines
            where read_error is not null or trim(line) <> ''
        ),
        obj as (
            select landing_date, source_file, source_line, ok,
                   case when not ok then line end as bad_line,
                   case
                       when not ok and read_error is not null then read_error
                       when not ok and json_valid(line) then 'not a JSON object'
                       when not ok then 'invalid JSON'
                   end as bad_detail,
                   case when ok then json_transform(line, '{_TOP}') end as f
            from lines
        ),
        props as (
            select *,
                   case when left(f.properties, 1) = '{{'
                        then json_transform(f.properties, '{_PROPS}') end as p
            from obj
        ),
        typed as (
            -- A fragment is NULL for a missing key or a JSON null; otherwise its first
            -- character is its type: '"' a string, '{{' an object, '-' or a digit a number.
            select
                landing_date, source_file, source_line, ok, bad_line, bad_detail,
                nullif(f.messageId ->> '$', '') as message_id,
                coalesce(left(f.messageId, 1) = '"', true) as ok_message_id,
                nullif(f.userId ->> '$', '') as user_id,
                coalesce(left(f.userId, 1) = '"', true) as ok_user_id,
                nullif(f.groupId ->> '$', '') as account_id,
                coalesce(left(f.groupId, 1) = '"', true) as ok_account_id,
                nullif(f.event ->> '$', '') as event_name,
                coalesce(left(f.event, 1) = '"', true) as ok_event_name,
                nullif(f.timestamp ->> '$', '') as ts_text,
                coalesce(left(f.timestamp, 1) = '"', true) as ok_ts,
                try_cast(f.timestamp ->> '$' as timestamptz) at time zone 'UTC' as event_at,
                coalesce(left(f.properties, 1) = '{{', true) as ok_properties,
                -- The fields with a column of their own are not stored twice: properties keeps
                -- the rest of the object (NULL when nothing is left). A merge patch with null
                -- removes keys (RFC 7386).
                case
                    when left(f.properties, 1) = '{{'
                        then nullif(json_merge_patch(f.properties, '{_COLUMN_PROPS}')::varchar,
                                    '{{}}')
                    else f.properties::varchar
                end as properties,
                f.type ->> '$' as event_type,
                coalesce(regexp_full_match(p.duration_seconds, '-?[0-9].*'), true) as ok_duration,
                try_cast(p.duration_seconds ->> '$' as double) as duration_seconds,
                p.session_id ->> '$' as session_id,
                p.document_id ->> '$' as document_id,
                p.feature ->> '$' as feature,
                p.campaign_id ->> '$' as campaign_id
            from props
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
                    case when not ok_message_id then 'messageId' end,
                    case when not ok_account_id then 'groupId' end,
                    case when not ok_user_id then 'userId' end,
                    case when not ok_event_name then 'event' end,
                    case when not ok_ts or event_at is null then 'timestamp' end,
                    case when not ok_properties then 'properties' end,
                    case when not ok_duration then 'properties.duration_seconds' end) as wrong_type
            from typed
        )
        select
            -- raw_record stays empty for lines that parsed: the few quarantined ones take
            -- their line from _ev_lines at the end instead of every row carrying a copy.
            landing_date, source_file, source_line, bad_line,
            case
                when not ok then 'malformed_json'
                when missing <> '' then 'missing_field'
                when wrong_type <> '' then 'bad_type'
                when event_type is not null and event_type <> 'track' then 'bad_value'
            end,
            case
                when not ok then bad_detail
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


def _status_at(con, table: str, key: str, column: str) -> None:
    """`_ev_<table>_at`: for each (landing day, id) of `_ev_cand`, is the id known then, and its
    `column` in the id's latest snapshot on or before that day (before the first snapshot: in
    the first snapshot, as dim_accounts_history's first version does).

    Set-based on the few distinct pairs rather than every candidate row, and against the
    snapshots from the latest one on or before the load's first day: an id in any of those has
    its latest row there. Only ids missing from them (gone from the exports, or unknown) are
    looked up in the whole history.
    """
    out = f"_ev_{table}_at"
    (since,) = con.execute(
        f"select max(snapshot_date) from raw.{table} "
        "where snapshot_date <= (select min(landing_date) from _ev_cand)"
    ).fetchone()
    recent = f"raw.{table}" + (" where snapshot_date >= $since" if since else "")
    con.execute(
        f"""
        create or replace temp table {out} as
        select p.landing_date, p.{key}, r.{key} is not null as known, r.{column} as value
        from (select distinct landing_date, {key} from _ev_cand where {key} is not null) p
        asof left join (select {key}, snapshot_date, {column} from {recent}) r
            on r.{key} = p.{key} and p.landing_date >= r.snapshot_date
        """,
        {"since": since} if since else {},
    )
    (missing,) = con.execute(f"select count(*) from {out} where not known").fetchone()
    if not missing:
        return
    con.execute(
        f"""
        create or replace temp table _ev_status_missing as
        with p as (select landing_date, {key} from {out} where not known)
        select p.landing_date, p.{key}, coalesce(r.{key}, f.{key}) is not null as known,
               coalesce(r.{column}, f.{column}) as value
        from p
        asof left join (
            select {key}, snapshot_date, {column} from raw.{table}
            where {key} in (select {key} from p)
        ) r on r.{key} = p.{key} and p.landing_date >= r.snapshot_date
        left join (
            select {key}, snapshot_date, {column} from raw.{table}
            where snapshot_date = (select min(snapshot_date) from raw.{table})
        ) f on f.{key} = p.{key} and p.landing_date < f.snapshot_date
        """
    )
    con.execute(f"delete from {out} where not known")
    con.execute(f"insert into {out} select * from _ev_status_missing")


def finish_events(
    con,
    dates: list[dt.date],
    *,
    files: dict[dt.date, int],
    bytes_read: dict[dt.date, int],
    started: float,
    source: str = "events",
    lines_table: str | None = None,
    scope_files: list[str] | None = None,
    check_known: bool = True,
    record: bool = True,
) -> dict[dt.date, SourceStats]:
    """Validate `_ev_cand`, then replace this load's rows of the given days in the raw tables.

    Must run inside a transaction; handles any number of landing days at once. This is the one
    place where every event source (JSON Lines landings, mapped exports, history loads) is
    classified, deduplicated and stored. Rules: a message id belongs to the earliest landing day
    holding it (on the same day, to the copy stored first); rows of opted-out users or
    non-consenting accounts are dropped and counted.

    Accounts and users are checked against the snapshot on or before the landing day (or the first
    snapshot, for days before any): an id missing there is quarantined as unknown, unless
    `check_known` is false or no snapshot of that kind was ever loaded (then the event log itself
    says which accounts and users exist).

    The load replaces the stored rows of `dates` that belong to it: with `scope_files`, the rows
    of those files (a history load); without, the rows of landing folders (every file not loaded
    by a history load). Candidates without a `raw_record` take it from `lines_table` (same day,
    file and line).
    """
    days = {"dates": sorted(dates)}
    if scope_files is None:
        in_scope = (
            "list_contains($dates, {e}.landing_date) and {e}.source_file not in "
            "(select source_file from raw.history_files)"
        )
        q_scope = ""
    else:
        con.execute(
            "create or replace temp table _ev_scope as select unnest($f::varchar[]) as source_file",
            {"f": scope_files},
        )
        in_scope = (
            "list_contains($dates, {e}.landing_date) and {e}.source_file in "
            "(select source_file from _ev_scope)"
        )
        q_scope = " and source_file in (select source_file from _ev_scope)"
    has_accounts, has_users = con.execute(
        "select exists(select 1 from raw.accounts), exists(select 1 from raw.users)"
    ).fetchone()
    check_accounts, check_users = has_accounts and check_known, has_users and check_known
    canonical = _sql_list(CANONICAL_EVENTS)
    # Point-in-time status of each (landing day, account) and (landing day, user) pair of the
    # load, narrow tables joined back by hash instead of ASOF-joining every candidate row.
    joins = []
    if has_accounts:
        _status_at(con, "accounts", "account_id", "tracking_consent")
        joins.append("left join _ev_accounts_at a using (landing_date, account_id)")
    if has_users:
        _status_at(con, "users", "user_id", "opted_out")
        joins.append("left join _ev_users_at u using (landing_date, user_id)")
    unknown_account = (
        "when not coalesce(a.known, false) then 'unknown_account'" if check_accounts else ""
    )
    unknown_user = "when not coalesce(u.known, false) then 'unknown_user'" if check_users else ""
    unknown_account_detail = (
        "when not coalesce(a.known, false) "
        "then 'groupId ' || c.account_id || ' is not a known account'"
        if check_accounts
        else ""
    )
    unknown_user_detail = (
        "when not coalesce(u.known, false) then 'userId ' || c.user_id || ' is not a known user'"
        if check_users
        else ""
    )
    refused = "coalesce(not a.value, false)" if has_accounts else "false"
    opted_out = "coalesce(u.value, false)" if has_users else "false"
    con.execute(
        f"""
        create or replace temp table _ev_class as
        select
            c.* exclude (reason, detail),
            case
                when c.reason is not null then c.reason
                when c.event_name not in ({canonical}) then 'unknown_event'
                when c.event_name = 'Feature Used' and c.feature is null then 'missing_field'
                when c.event_at >= c.landing_date + interval 2 day then 'future_timestamp'
                when c.duration_seconds < 0 then 'bad_value'
                {unknown_account}
                {unknown_user}
            end as reason,
            case
                when c.reason is not null then c.detail
                when c.event_name not in ({canonical})
                    then 'event ' || c.event_name || ' is not a canonical event name'
                when c.event_name = 'Feature Used' and c.feature is null
                    then 'missing: properties.feature'
                when c.event_at >= c.landing_date + interval 2 day
                    then 'timestamp ' || c.event_at::varchar || ' is after the landing day + 1'
                when c.duration_seconds < 0
                    then 'duration_seconds ' || c.duration_seconds::varchar || ' is negative'
                {unknown_account_detail}
                {unknown_user_detail}
            end as detail,
            {refused} or {opted_out} as is_dropped
        from _ev_cand c
        {" ".join(joins)}
        """
    )
    # The rows that may be stored, narrow: the row's place in _ev_class (k) and its keys.
    con.execute(
        """
        create or replace temp table _ev_valid as
        select rowid as k, message_id, landing_date, source_file, source_line
        from _ev_class where reason is null and not is_dropped
        """
    )
    # Each id of this load with the day its first copy landed (a batch holds few duplicates).
    con.execute(
        """
        create or replace temp table _ev_ids as
        select message_id, min(landing_date) as new_landing_date, count(*) as copies
        from _ev_valid group by message_id
        """
    )
    # Duplicates inside the load collapse to the first occurrence: day, file, line.
    con.execute(
        """
        create or replace temp table _ev_drop as
        select k from _ev_valid semi join (select message_id from _ev_ids where copies > 1)
            using (message_id)
        qualify row_number() over (
            partition by message_id
            order by landing_date nulls last, source_file nulls last, source_line nulls last) > 1
        """
    )
    # The same ids stored outside what this load replaces, and which load owns each of them.
    con.execute(
        f"""
        create or replace temp table _ev_other as
        select e.message_id, e.landing_date, e.source_file, n.new_landing_date,
               case when h.source_file is null then 'events' else '{HISTORY_SOURCE}' end as owner
        from raw.events e join _ev_ids n using (message_id)
        left join (select distinct source_file from raw.history_files) h
            on h.source_file = e.source_file
        where not ({in_scope.format(e="e")})
        """,
        days,
    )
    # Ids an earlier landing day (or the same day's other rows) already holds stay there ...
    con.execute(
        """
        insert into _ev_drop
        select v.k from _ev_valid v semi join (
            select message_id from _ev_other where landing_date <= new_landing_date
        ) o using (message_id)
        """
    )
    con.execute(
        """
        create or replace temp table _ev_new as
        select * from _ev_valid anti join _ev_drop using (k)
        """
    )
    # ... and ids a later day holds move here; that day's bookkeeping shows them as duplicates.
    con.execute(
        """
        update raw.landed_partitions lp
        set duplicates_dropped = lp.duplicates_dropped + m.n, rows_loaded = lp.rows_loaded - m.n
        from (
            select landing_date, owner, count(*) as n from _ev_other
            where landing_date > new_landing_date group by all
        ) m
        where lp.landing_date = m.landing_date and lp.source = m.owner
        """
    )
    con.execute(
        f"""
        update raw.history_files hf
        set duplicates_dropped = hf.duplicates_dropped + m.n, rows_loaded = hf.rows_loaded - m.n
        from (
            select landing_date, source_file, count(*) as n from _ev_other
            where landing_date > new_landing_date and owner = '{HISTORY_SOURCE}' group by all
        ) m
        where hf.landing_date = m.landing_date and hf.source_file = m.source_file
        """
    )
    con.execute(
        """
        delete from raw.events where (message_id, landing_date) in (
            select (message_id, landing_date) from _ev_other where landing_date > new_landing_date)
        """
    )
    con.execute(f"delete from raw.events where {in_scope.format(e='raw.events')}", days)
    # Stored in the order the lines were read (file order compresses and inserts faster).
    con.execute(
        """
        insert into raw.events
        select message_id, account_id, user_id, event_name, event_at, event_at::date,
               session_id, document_id, feature, duration_seconds, campaign_id, properties,
               landing_date, source_file, source_line, now()::timestamp
        from _ev_class
        where rowid in (select k from _ev_new)
        """
    )
    con.execute(
        "delete from raw.quarantine where source = $source and list_contains($dates, landing_date)"
        + q_scope,
        {**days, "source": source},
    )
    lines = (
        f"left join {lines_table} l using (landing_date, source_file, source_line)"
        if lines_table
        else ""
    )
    record_sql = "coalesce(c.raw_record, l.line)" if lines_table else "c.raw_record"
    con.execute(
        f"""
        insert into raw.quarantine
        select $source, c.landing_date, c.source_file, c.source_line, c.reason, c.detail,
               {record_sql}, now()::timestamp
        from _ev_class c {lines}
        where c.reason is not null
        """,
        {"source": source},
    )
    return _day_stats(con, dates, files, bytes_read, started, source, record)


def _day_stats(
    con, dates, files, bytes_read, started, source, record=True
) -> dict[dt.date, SourceStats]:
    stats = {
        d: SourceStats(source=source, landing_date=d, files=files.get(d, 0),
                       bytes_read=bytes_read.get(d, 0))
        for d in dates
    }  # fmt: skip
    for d, read, valid, dropped in con.execute(
        """
        select landing_date, count(*), count(*) filter (where reason is null and not is_dropped),
               count(*) filter (where reason is null and is_dropped)
        from _ev_class group by all
        """
    ).fetchall():
        stats[d].rows_read, stats[d].opted_out_dropped = read, dropped
        stats[d].duplicates_dropped = valid  # minus what was kept, below
    for d, kept, late in con.execute(
        "select landing_date, count(*), count(*) filter (where event_at::date < landing_date) "
        "from _ev_class where rowid in (select k from _ev_new) group by all"
    ).fetchall():
        stats[d].rows_loaded, stats[d].late_events = kept, late
    for s in stats.values():
        s.duplicates_dropped -= s.rows_loaded
    for d, reason, n in con.execute(
        "select landing_date, reason, count(*) from _ev_class where reason is not null "
        "group by all order by all"
    ).fetchall():
        stats[d].quarantined_by_reason[reason] = n
        stats[d].rows_quarantined += n
    seconds = round((time.perf_counter() - started) / max(len(dates), 1), 3)
    for s in stats.values():
        s.seconds = seconds
    if record:
        record_partitions(con, list(stats.values()))
    return stats


def record_partitions(con, stats: list[SourceStats]) -> None:
    """Replace these (landing day, source) rows of raw.landed_partitions in two statements."""
    if not stats:
        return
    keys = [f"{s.landing_date.isoformat()}|{s.source}" for s in stats]
    con.execute(
        "delete from raw.landed_partitions "
        "where list_contains($keys, landing_date::varchar || '|' || source)",
        {"keys": keys},
    )
    fields = (
        "landing_date", "source", "files", "bytes_read", "rows_read", "rows_loaded",
        "rows_quarantined", "duplicates_dropped", "late_events", "opted_out_dropped",
    )  # fmt: skip
    rows = ", ".join(["(?::date, ?, ?, ?, ?, ?, ?, ?, ?, ?, now()::timestamp)"] * len(stats))
    params = [getattr(s, f) for s in stats for f in fields]
    con.execute(f"insert into raw.landed_partitions values {rows}", params)


def load_events_days(
    con, landing_dir: Path, dates: list[dt.date], mapping=None
) -> dict[dt.date, SourceStats]:
    """Load the event files of several landing days set-based, in one transaction.

    With a `mapping` (ingest.byo.ByoMapping), each folder's exports in that format load too, as
    the day's events. The days' accounts/users snapshots, if any, must be loaded already (same
    or earlier days).
    """
    started = time.perf_counter()
    files: dict[dt.date, int] = {}
    sizes: dict[dt.date, int] = {}
    with transaction(con):
        con.execute(
            "create or replace temp table _ev_lines (landing_date date, source_file varchar, "
            "source_line bigint, line varchar, read_error varchar)"
        )
        to_read = []
        for d in dates:
            paths = event_files(day_dir(landing_dir, d))
            files[d] = len(paths)
            sizes[d] = sum(p.stat().st_size for p in paths)
            to_read += [(p, relative_name(p, Path(landing_dir)), d) for p in paths]
        # One scan over all the batch's files instead of one per file.
        load_many_lines(con, "_ev_lines", to_read)
        _parse_json_lines(con)
        if mapping is not None:
            for d, paths in mapping.stage_landing_exports(con, landing_dir, list(dates)).items():
                files[d] += len(paths)
                sizes[d] += sum(p.stat().st_size for p in paths)
        return finish_events(
            con, list(dates), files=files, bytes_read=sizes, started=started,
            lines_table="_ev_lines",
        )  # fmt: skip


def load_events(con, landing_dir: Path, landing_date: dt.date) -> SourceStats:
    """Load one day's `events*.jsonl[.gz]` files into raw.events (replacing that day's rows)."""
    return load_events_days(con, landing_dir, [landing_date])[landing_date]
