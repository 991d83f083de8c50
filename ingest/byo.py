"""Bring-your-own event log: map a CSV or Parquet export with other column names into raw.events."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import yaml

from ingest.common import IngestError, SourceStats, relative_name, transaction
from ingest.events import CANDIDATE_COLUMNS, finish_events

# Canonical fields a mapping may name; the first four must be mapped.
REQUIRED_FIELDS = ("account_id", "user_id", "event_name", "event_at")
OPTIONAL_FIELDS = (
    "message_id",
    "session_id",
    "document_id",
    "feature",
    "duration_seconds",
    "campaign_id",
)


@dataclass(frozen=True)
class ByoMapping:
    """How a foreign event log maps onto raw.events (see config/byo_mapping.example.yml)."""

    columns: dict[str, str]
    format: str = "csv"
    delimiter: str = ","
    timestamp_format: str | None = None
    event_names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> ByoMapping:
        known = {"columns", "format", "delimiter", "timestamp_format", "event_names"}
        unknown = set(data) - known
        if unknown:
            raise IngestError(
                f"unknown key(s) {sorted(unknown)} in the BYO mapping; allowed: {sorted(known)}"
            )
        columns = dict(data.get("columns") or {})
        missing = [f for f in REQUIRED_FIELDS if not columns.get(f)]
        extra = set(columns) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS)
        if missing or extra:
            raise IngestError(
                "the BYO mapping's `columns` must map "
                f"{', '.join(REQUIRED_FIELDS)} (missing: {', '.join(missing) or 'none'}) and may "
                f"map {', '.join(OPTIONAL_FIELDS)} (unknown: {', '.join(sorted(extra)) or 'none'})"
            )
        fmt = data.get("format", "csv")
        if fmt not in ("csv", "parquet"):
            raise IngestError(f"BYO mapping format must be csv or parquet, not {fmt!r}")
        return cls(
            columns={k: str(v) for k, v in columns.items() if v},
            format=fmt,
            delimiter=str(data.get("delimiter", ",")),
            timestamp_format=data.get("timestamp_format"),
            event_names={str(k): str(v) for k, v in (data.get("event_names") or {}).items()},
        )

    @classmethod
    def from_yaml(cls, path: Path) -> ByoMapping:
        try:
            return cls.from_dict(yaml.safe_load(Path(path).read_text()) or {})
        except yaml.YAMLError as exc:
            raise IngestError(f"{path} is not valid YAML: {exc}") from exc


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _read(con, path: Path, mapping: ByoMapping) -> list[str]:
    """Read the export into `_byo` (all text, with a 1-based source_line); returns its columns."""
    con.execute("drop table if exists _byo")
    try:
        if mapping.format == "csv":
            con.execute(
                """
                create temp table _byo as
                select row_number() over () + 1 as source_line, *
                from read_csv(?, delim = ?, header = true, all_varchar = true,
                              null_padding = true, parallel = false)
                """,
                [str(path), mapping.delimiter],
            )
        else:
            con.execute(
                "create temp table _byo as "
                "select row_number() over () as source_line, * from read_parquet(?)",
                [str(path)],
            )
    except duckdb.Error as exc:
        raise IngestError(
            f"cannot read {path} as {mapping.format}: {exc}. Check the file and the mapping's "
            "`format`/`delimiter`."
        ) from exc
    present = [r[0] for r in con.execute("describe _byo").fetchall()][1:]
    missing = sorted({c for c in mapping.columns.values() if c not in present})
    if missing:
        raise IngestError(
            f"{path} has no column(s) {', '.join(missing)} named in the BYO mapping "
            f"(the file has: {', '.join(present)}); fix the mapping's `columns`."
        )
    return present


def load_byo_file(
    con,
    path: Path,
    mapping: ByoMapping,
    landing_date: dt.date,
    landing_dir: Path | None = None,
) -> SourceStats:
    """Load one foreign event export as the events of `landing_date` (replacing that day's events).

    Rows get the same validation as JSON Lines (unknown accounts/users, future timestamps, ...).
    Without a mapped message id, a deterministic one is the md5 of the row's mapped fields, so
    re-loading the same export never duplicates rows. Accounts and users snapshots must already
    be loaded (a landing day with accounts.csv/users.csv on or before `landing_date`).
    """
    started = time.perf_counter()
    path = Path(path)
    name = relative_name(path, Path(landing_dir)) if landing_dir else path.name
    cols = mapping.columns

    def text(f: str) -> str:
        return f"nullif(trim({_q(cols[f])}::varchar), '')" if f in cols else "null::varchar"

    if mapping.timestamp_format:
        event_at = f"try_strptime({text('event_at')}, {_lit(mapping.timestamp_format)})"
    else:
        event_at = f"(try_cast({text('event_at')} as timestamptz) at time zone 'UTC')"
    renames = " ".join(
        f"when {_lit(src)} then {_lit(dst)}" for src, dst in sorted(mapping.event_names.items())
    )
    event_name = (
        f"coalesce(case {text('event_name')} {renames} end, {text('event_name')})"
        if renames
        else text("event_name")
    )
    used = sorted(set(cols.values()))
    # A row's identity is every mapped field; '\x1f' keeps ('a','bc') and ('ab','c') apart.
    fingerprint = " || chr(31) || ".join(f"coalesce({_q(c)}::varchar, '')" for c in used)
    message_id = (
        f"coalesce({text('message_id')}, 'byo_' || md5({fingerprint}))"
        if "message_id" in cols
        else f"'byo_' || md5({fingerprint})"
    )
    raw_record = "json_object(" + ", ".join(f"{_lit(c)}, {_q(c)}::varchar" for c in used) + ")"
    props = (
        "json_object("
        + ", ".join(
            f"{_lit(f)}, {text(f)}"
            for f in ("session_id", "document_id", "feature", "duration_seconds", "campaign_id")
        )
        + ")::varchar"
    )
    with transaction(con):
        _read(con, path, mapping)
        con.execute(f"create or replace temp table _ev_cand ({CANDIDATE_COLUMNS})")
        con.execute(
            f"""
            insert into _ev_cand
            with m as (
                select source_line, {raw_record}::varchar as raw_record,
                       {message_id} as message_id, {text("account_id")} as account_id,
                       {text("user_id")} as user_id, {event_name} as event_name,
                       {text("event_at")} as ts_text, {event_at} as event_at,
                       {text("session_id")} as session_id, {text("document_id")} as document_id,
                       {text("feature")} as feature, {text("duration_seconds")} as duration_text,
                       {text("campaign_id")} as campaign_id, {props} as properties
                from _byo
            ),
            c as (
                select *,
                    concat_ws(', ',
                        case when account_id is null then {_lit(cols["account_id"])} end,
                        case when user_id is null then {_lit(cols["user_id"])} end,
                        case when event_name is null then {_lit(cols["event_name"])} end,
                        case when ts_text is null then {_lit(cols["event_at"])} end) as missing,
                    concat_ws(', ',
                        case when event_at is null and ts_text is not null
                            then {_lit(cols["event_at"])} end,
                        case when duration_text is not null
                             and try_cast(duration_text as double) is null
                            then {_lit(cols.get("duration_seconds", ""))} end) as wrong_type
                from m
            )
            select $day, $file, source_line, raw_record,
                case when missing <> '' then 'missing_field'
                     when wrong_type <> '' then 'bad_type' end,
                case when missing <> '' then 'missing: ' || missing
                     when wrong_type <> '' then 'wrong type: ' || wrong_type end,
                message_id, account_id, user_id, event_name, event_at, session_id, document_id,
                feature, try_cast(duration_text as double), campaign_id, properties
            from c
            """,
            {"file": name, "day": landing_date},
        )
        stats = finish_events(
            con,
            [landing_date],
            files={landing_date: 1},
            bytes_read={landing_date: path.stat().st_size},
            started=started,
        )
        return stats[landing_date]
