"""Bring-your-own event logs: how a CSV, Parquet, JSON Lines or plain-text export with its own
column names and event vocabulary maps onto raw.events (config/byo_mapping.example.yml).

`ByoMapping` is the mapping file; `stage_export` reads one export file into a staging table of
typed candidate rows (one pass, any size: DuckDB spills beyond its memory limit), with the
problems only the export format can have already named (missing fields, unparseable or zone-less
timestamps, malformed lines). Everything else — canonical names, duplicates, known accounts,
consent — is decided by `ingest.events.finish_events`, the one classification every event
source shares. `load_byo_file` loads one export as one landing day; `ingest.history` loads a
whole history by event date.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
import shutil
import time
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import yaml

from ingest.common import (
    IngestError,
    SourceStats,
    day_dir,
    manifest_files,
    relative_name,
    transaction,
)
from ingest.events import CANDIDATE_COLUMNS, finish_events
from ingest.schema import CANONICAL_EVENTS
from warehouse.catalog import table_exists

# Canonical fields a mapping may fill; the first four are required (from a column or a constant).
REQUIRED_FIELDS = ("account_id", "user_id", "event_name", "event_at")
OPTIONAL_FIELDS = (
    "message_id",
    "session_id",
    "document_id",
    "feature",
    "duration_seconds",
    "campaign_id",
)
FORMATS = ("csv", "parquet", "jsonl", "text")
# The category of every event whose name the mapping does not translate (unless it is canonical).
OTHER_ACTIVITY = "Other Activity"
EPOCH_FORMATS = ("epoch", "epoch_ms")
# File name endings of each format (a folder given to a history load; a landing folder's exports).
EXTENSIONS = {
    "csv": (".csv", ".csv.gz", ".tsv", ".tsv.gz"),
    "parquet": (".parquet",),
    "jsonl": (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json", ".json.gz"),
    "text": (".txt", ".txt.gz", ".dat", ".log", ".log.gz"),
}
# A landing folder's own files, never read as an export (events*.jsonl[.gz] are the JSON events).
CONTRACT_FILES = ("accounts.csv", "users.csv", "outcomes.csv")
# The text readers' buffer (DuckDB's default is 32 MB, twice over): small enough for a memory
# limit of a few dozen MB, and still 4x the longest line DuckDB accepts by default (2 MB).
READ_BUFFER_BYTES = 8 * 1024 * 1024
MAPPING_KEYS = {
    "format", "delimiter", "header", "names", "columns", "constants", "timestamp_format",
    "timezone", "event_names", "unmapped_events", "identical_rows", "properties",
}  # fmt: skip
# Columns of the staging table `stage_export` fills: a candidate row without its landing day.
STAGE_COLUMNS = (
    "source_file varchar, source_line bigint, event_date date, raw_record varchar, "
    "reason varchar, detail varchar, message_id varchar, account_id varchar, user_id varchar, "
    "event_name varchar, event_at timestamp, session_id varchar, document_id varchar, "
    "feature varchar, duration_seconds double, campaign_id varchar, properties varchar"
)


@dataclass(frozen=True)
class ByoMapping:
    """How a foreign event log maps onto raw.events (see config/byo_mapping.example.yml)."""

    columns: dict[str, str]
    format: str = "csv"
    delimiter: str = ","
    header: bool = True
    names: tuple[str, ...] = ()
    constants: dict[str, str] = field(default_factory=dict)
    timestamp_format: str | None = None
    timezone: str | None = None
    event_names: dict[str, str] = field(default_factory=dict)
    unmapped_events: str = "other"
    identical_rows: str = "merge"
    properties: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict) -> ByoMapping:
        if not isinstance(data, dict):
            raise IngestError("a BYO mapping must be a YAML mapping (key: value lines)")
        unknown = set(data) - MAPPING_KEYS
        if unknown:
            raise IngestError(
                f"unknown key(s) {sorted(map(str, unknown))} in the BYO mapping; allowed: "
                f"{sorted(MAPPING_KEYS)}"
            )
        columns = {k: v for k, v in _texts(data, "columns").items() if v}
        constants = {k: v for k, v in _texts(data, "constants").items() if v}
        missing = [f for f in REQUIRED_FIELDS if f not in columns and f not in constants]
        known = set(REQUIRED_FIELDS) | set(OPTIONAL_FIELDS)
        extra = (set(columns) | set(constants)) - known
        if missing or extra:
            raise IngestError(
                "the BYO mapping's `columns` (or `constants`) must give "
                f"{', '.join(REQUIRED_FIELDS)} (missing: {', '.join(missing) or 'none'}) and may "
                f"give {', '.join(OPTIONAL_FIELDS)} (unknown: {', '.join(sorted(extra)) or 'none'})"
            )
        both = sorted(set(columns) & set(constants))
        if both:
            raise IngestError(
                f"{', '.join(both)} is given both as a column and as a constant in the BYO "
                "mapping; keep one."
            )
        if "event_at" in constants:
            raise IngestError("event_at must come from a column, not from `constants`.")
        fmt = str(data.get("format", "csv"))
        if fmt not in FORMATS:
            raise IngestError(
                f"BYO mapping format must be one of {', '.join(FORMATS)}, not {fmt!r}"
            )
        header = data.get("header", True)
        if not isinstance(header, bool):
            raise IngestError(f"BYO mapping `header` must be true or false, not {header!r}")
        names = _list(data, "names")
        if fmt in ("csv", "text") and not header and not names:
            raise IngestError(
                "with `header: false` the BYO mapping must name the columns in order: "
                "`names: [first, second, ...]`"
            )
        if names and len(set(names)) != len(names):
            raise IngestError(f"the BYO mapping's `names` repeat a column: {list(names)}")
        event_names = _texts(data, "event_names")
        targets = set(CANONICAL_EVENTS)
        wrong = sorted({v for v in event_names.values() if v not in targets})
        if wrong:
            raise IngestError(
                f"`event_names` maps to {', '.join(wrong)}, which are not canonical event names; "
                f"use one of: {', '.join(CANONICAL_EVENTS)}"
            )
        unmapped = str(data.get("unmapped_events", "other"))
        if unmapped not in ("other", "quarantine"):
            raise IngestError(
                "BYO mapping `unmapped_events` must be `other` (load them as "
                f"{OTHER_ACTIVITY!r}) or `quarantine`, not {unmapped!r}"
            )
        identical = str(data.get("identical_rows", "merge"))
        if identical not in ("merge", "keep"):
            raise IngestError(
                "BYO mapping `identical_rows` must be `merge` (identical rows are one event) or "
                f"`keep` (each is an event of its own), not {identical!r}"
            )
        ts_format = _text(data, "timestamp_format")
        timezone = _text(data, "timezone")
        if timezone is not None:
            try:
                zoneinfo.ZoneInfo(timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
                raise IngestError(
                    f"BYO mapping `timezone` {timezone!r} is not a time zone name; use an IANA "
                    "name such as UTC or Europe/Berlin"
                ) from exc
        if (
            ts_format
            and ts_format not in EPOCH_FORMATS
            and not re.search("%[zZ]", ts_format)
            and timezone is None
        ):
            raise IngestError(
                f"timestamps read with timestamp_format {ts_format!r} carry no time zone: say "
                "which zone they are in with `timezone:` in the BYO mapping (e.g. `timezone: UTC`)"
            )
        properties = _list(data, "properties")
        return cls(
            columns=columns,
            format=fmt,
            delimiter=_text(data, "delimiter") or ",",
            header=header,
            names=names,
            constants=constants,
            timestamp_format=ts_format or None,
            timezone=timezone,
            event_names=event_names,
            unmapped_events=unmapped,
            identical_rows=identical,
            properties=properties,
        )

    @classmethod
    def from_yaml(cls, path: Path) -> ByoMapping:
        path = Path(path)
        if not path.is_file():
            raise IngestError(f"no mapping file {path}; see config/byo_mapping.example.yml")
        try:
            return cls.from_dict(yaml.safe_load(path.read_text()) or {})
        except yaml.YAMLError as exc:
            raise IngestError(f"{path} is not valid YAML: {exc}") from exc

    @property
    def source_columns(self) -> list[str]:
        """The export's columns the mapping reads, in a stable order."""
        return sorted(set(self.columns.values()) | set(self.properties))

    def stage_landing_exports(
        self, con, landing_dir: Path, dates: list[dt.date]
    ) -> dict[dt.date, list[Path]]:
        """The landing days' exports in this format, staged as their days' events (for
        ingest.events, which byo builds on and so cannot import).
        """
        return stage_landing_exports(con, landing_dir, dates, self)


def _scalar(value: object) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _text(data: dict, key: str) -> str | None:
    """An optional text value of the mapping (numbers read as text); anything else is refused."""
    value = data.get(key)
    if value is None or _scalar(value):
        return None if value is None else str(value)
    raise IngestError(f"BYO mapping `{key}` must be a text value, not {value!r}")


def _texts(data: dict, key: str) -> dict[str, str]:
    """An optional `name: value` section of text values (an empty value stays empty)."""
    value = data.get(key) or {}
    if not isinstance(value, dict) or not all(
        _scalar(k) and (v is None or _scalar(v)) for k, v in value.items()
    ):
        raise IngestError(
            f"BYO mapping `{key}` must be `name: value` lines of text, not {value!r}"
        )
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _list(data: dict, key: str) -> tuple[str, ...]:
    """An optional list of names, `[a, b]`."""
    value = data.get(key) or []
    if not isinstance(value, list) or not all(_scalar(v) for v in value):
        raise IngestError(f"BYO mapping `{key}` must be a list of names like [a, b], not {value!r}")
    return tuple(str(v) for v in value)


@dataclass
class StagedFile:
    """What `stage_export` read from one file."""

    path: Path
    name: str
    bytes: int
    rows: int = 0
    good_rows: int = 0
    first_date: dt.date | None = None
    last_date: dt.date | None = None
    ignored_columns: list[str] = field(default_factory=list)
    zone_less: int = 0
    seconds: float = 0.0

    @property
    def empty(self) -> bool:
        return self.rows == 0


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _first_line(path: Path) -> tuple[int, str]:
    """The first non-blank line of a text file (plain or .gz) and its 1-based number."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                return number, line
    return 0, ""


def _line_reader(path: Path) -> str:
    """SQL reading every physical line of a text file (plain or .gz), numbered, as `_k, line`."""
    return (
        f"select row_number() over () as _k, line from read_csv({_lit(str(path))}, "
        "columns = {'line': 'VARCHAR'}, delim = chr(31), quote = '', escape = '', "
        "header = false, auto_detect = false, parallel = false, "
        f"buffer_size = {READ_BUFFER_BYTES}, store_rejects = true, "
        "rejects_table = '_hist_rejects', rejects_scan = '_hist_reject_scans')"
    )


def _csv_options(mapping: ByoMapping) -> str:
    names = (
        ", names = [" + ", ".join(_lit(n) for n in mapping.names) + "]"
        if not mapping.header
        else ""
    )
    return (
        f"delim = {_lit(mapping.delimiter)}, header = {str(mapping.header).lower()}{names}, "
        # RFC 4180 quoting, never sniffed: a stray apostrophe in one line must not be taken for
        # the quote character and join the lines after it.
        "quote = '\"', escape = '\"', all_varchar = true, null_padding = true, parallel = false, "
        f"buffer_size = {READ_BUFFER_BYTES}"
    )


@dataclass
class _Source:
    """One export file as a relation: its numbered rows and each mapped column as SQL text."""

    sql: str  # select _k, <columns...>, plus `line` for line-based formats
    columns: dict[str, str]  # export column name -> SQL expression over the relation
    present: list[str]
    line_based: bool
    header_lines: int
    where: str = "true"
    extra_fields: str = "false"  # SQL: the row has more fields than the header names


def _source(con, path: Path, mapping: ByoMapping) -> _Source:
    fmt = mapping.format
    if fmt == "csv":
        sql = (
            f"select row_number() over () as _k, * from read_csv({_lit(str(path))}, "
            f"{_csv_options(mapping)}, store_rejects = true, rejects_table = '_hist_rejects', "
            "rejects_scan = '_hist_reject_scans')"
        )
        probe = (
            f"select * from read_csv({_lit(str(path))}, {_csv_options(mapping)}, "
            "ignore_errors = true) limit 0"
        )
        present = [d[0] for d in con.execute(probe).description]
        cols = {c: f"{_q(c)}::varchar" for c in present}
        return _Source(sql, cols, present, False, 1 if mapping.header else 0)
    if fmt == "parquet":
        present = [
            d[0]
            for d in con.execute(
                f"select * from read_parquet({_lit(str(path))}) limit 0"
            ).description
        ]
        sql = f"select row_number() over () as _k, * from read_parquet({_lit(str(path))})"
        cols = {c: f"{_q(c)}::varchar" for c in present}
        return _Source(sql, cols, present, False, 0)
    reader = _line_reader(path)
    if fmt == "jsonl":
        wanted = mapping.source_columns
        paths = ", ".join(
            _lit("$." + ".".join('"' + p.replace('"', '\\"') + '"' for p in c.split(".")))
            for c in wanted
        )
        sql = (
            "select _k, line, case when json_valid(line) and starts_with(ltrim(line), '{') "
            f"then try(json_extract_string(line, [{paths}])) end as _j from ({reader})"
        )
        cols = {c: f"_j[{i + 1}]" for i, c in enumerate(wanted)}
        return _Source(sql, cols, list(wanted), True, 0, where="trim(coalesce(line, '')) <> ''")
    # text: columns separated by any run of whitespace, as in fixed-width or space-aligned logs
    header_at, first = _first_line(path) if mapping.header else (0, "")
    names = first.split() if mapping.header else list(mapping.names)
    split = "regexp_split_to_array(regexp_replace(line, '^\\s+|\\s+$', '', 'g'), '\\s+')"
    sql = f"select _k, line, {split} as _f from ({reader})"
    cols = {c: f"_f[{i + 1}]" for i, c in enumerate(names)}
    where = "regexp_replace(coalesce(line, ''), '\\s', '', 'g') <> ''"
    if mapping.header:
        where += f" and _k > {header_at}"
    return _Source(sql, cols, names, True, 0, where=where, extra_fields=f"len(_f) > {len(names)}")


def _event_at(mapping: ByoMapping, ts: str) -> tuple[str, str]:
    """SQL for (the UTC timestamp, whether the text lacks a zone that is needed)."""
    fmt = mapping.timestamp_format
    tz = mapping.timezone

    def localise(naive: str) -> str:
        if tz in (None, "UTC", "Etc/UTC"):
            return naive
        return f"(({naive}) at time zone {_lit(tz)}) at time zone 'UTC'"

    if fmt == "epoch":
        return f"(to_timestamp(try_cast({ts} as double)) at time zone 'UTC')", "false"
    if fmt == "epoch_ms":
        return f"(to_timestamp(try_cast({ts} as double) / 1000) at time zone 'UTC')", "false"
    if fmt and re.search("%[zZ]", fmt):
        return f"(try_strptime({ts}, {_lit(fmt)}) at time zone 'UTC')", "false"
    if fmt:
        return localise(f"try_strptime({ts}, {_lit(fmt)})"), "false"
    # ISO-8601 text: a zone or offset in the value wins; otherwise the mapping's `timezone`.
    has_zone = f"regexp_matches({ts}, '([zZ]|[+-][0-9]{{2}}(:?[0-9]{{2}})?|\\s(UTC|GMT))$')"
    zoned = f"(try_cast({ts} as timestamptz) at time zone 'UTC')"
    if tz is None:
        # zone-less means: a timestamp that would parse, only without its zone
        return (
            f"case when {has_zone} then {zoned} end",
            f"(not {has_zone} and try_cast({ts} as timestamp) is not null)",
        )
    naive = localise(f"try_cast({ts} as timestamp)")
    return f"case when {has_zone} then {zoned} else {naive} end", "false"


def stage_export(
    con,
    path: Path,
    mapping: ByoMapping,
    table: str | None = None,
    *,
    directory: Path | None = None,
    name: str | None = None,
    not_after: dt.datetime | None = None,
    not_after_label: str = "more than a day after the load",
    keep_all_records: bool = False,
) -> StagedFile:
    """Append one export file's rows to `table` (columns STAGE_COLUMNS) as typed candidates, or
    write them to Parquet files in `directory` (compressed on disk), for loads of any size.

    One scan of the file. Rows the export format already rules out get a reason (malformed line,
    missing field, unparseable timestamp or duration, a timestamp without a zone when the mapping
    names none, a timestamp after `not_after`); their raw record is kept. Good rows get their
    UTC event date; `raw_record` is kept for them only with `keep_all_records` (or when a later
    rule may still quarantine them). Raises IngestError when the file cannot be read or lacks a
    mapped column.
    """
    started = time.perf_counter()
    path = Path(path)
    name = name or path.as_posix()
    staged = StagedFile(path=path, name=name, bytes=path.stat().st_size)
    if staged.bytes == 0:
        return staged
    _drop_rejects(con)
    try:
        src = _source(con, path, mapping)
    except duckdb.Error as exc:
        raise read_error(path, mapping, exc) from exc
    needed = mapping.source_columns
    missing = [c for c in needed if c not in src.columns]
    if missing:
        raise IngestError(
            f"{path} has no column(s) {', '.join(missing)} named in the BYO mapping "
            f"(the file has: {', '.join(src.present) or 'no columns'}); fix the mapping's "
            "`columns`/`properties` (or `names`, for a file without a header)."
        )
    staged.ignored_columns = [c for c in src.present if c not in needed]
    cols, consts = mapping.columns, mapping.constants

    def text(f: str) -> str:
        if f in consts:
            return _lit(consts[f])
        if f in cols:
            return f"nullif(trim({src.columns[cols[f]]}), '')"
        return "null::varchar"

    def label(f: str) -> str:
        return _lit(cols.get(f, f))

    event_at, zone_less = _event_at(mapping, "ts_text")
    canonical = ", ".join(_lit(e) for e in CANONICAL_EVENTS)
    fallback = _lit(OTHER_ACTIVITY) if mapping.unmapped_events == "other" else "source_event"
    renames = "".join(
        f"when source_event = {_lit(s)} then {_lit(t)} "
        for s, t in sorted(mapping.event_names.items())
    )
    event_name = (
        f"case when source_event is null then null {renames}"
        f"when source_event in ({canonical}) then source_event else {fallback} end"
    )
    used = [src.columns[c] for c in needed]
    # A row's identity is every mapped field; chr(31) keeps ('a','bc') and ('ab','c') apart.
    fingerprint = " || chr(31) || ".join(f"coalesce({u}, '')" for u in used) or "''"
    if src.line_based:
        raw_record = "line"
    else:
        raw_record = (
            "json_object("
            + ", ".join(f"{_lit(c)}, {src.columns[c]}" for c in needed)
            + ")::varchar"
        )
    # properties: the source's own event name when it was renamed, plus the kept columns
    kept = "".join(f", {_lit(p)}, _p{i}" for i, p in enumerate(mapping.properties))
    kept_columns = "".join(
        f", nullif(trim({src.columns[p]}), '') as _p{i}" for i, p in enumerate(mapping.properties)
    )
    props = (
        f"json_object('source_event', source_event{kept})::varchar"
        if kept
        else "case when source_event is distinct from event_name "
        "then json_object('source_event', source_event)::varchar end"
    )
    occurrence = (
        "row_number() over (partition by fp order by source_line) - 1"
        if mapping.identical_rows == "keep"
        else "0"
    )
    message_id = (
        "coalesce(mapped_message_id, 'byo_' || md5(case when occurrence = 0 then fp "
        "else fp || chr(30) || occurrence::varchar end))"
    )
    not_after_sql = "$not_after::timestamp" if not_after else "null::timestamp"
    keep_record = (
        "true"
        if keep_all_records
        else (
            f"reason is not null or event_name not in ({canonical}) "
            "or (event_name = 'Feature Used' and feature is null) or duration_seconds < 0"
        )
    )
    sql = f"""
        with src as ({src.sql}),
        rows as (
            select _k, {raw_record} as raw_all, {fingerprint} as fp, ({src.extra_fields}) as extra,
                {text("message_id")} as mapped_message_id, {text("account_id")} as account_id,
                {text("user_id")} as user_id, {text("event_name")} as source_event,
                {text("event_at")} as ts_text, {text("session_id")} as session_id,
                {text("document_id")} as document_id, {text("feature")} as feature,
                {text("duration_seconds")} as duration_text, {text("campaign_id")} as campaign_id
                {kept_columns},
                {"line is not null and _j is null" if mapping.format == "jsonl" else "false"}
                    as malformed
            from src where {src.where}
        ),
        numbered as ({{numbered}}),
        parsed as (
            select *, {event_at} as event_at, {zone_less} as zone_less,
                   try_cast(duration_text as double) as duration_seconds,
                   {event_name} as event_name,
                   {occurrence} as occurrence
            from numbered
        ),
        checked as (
            select *,
                concat_ws(', ',
                    case when account_id is null then {label("account_id")} end,
                    case when user_id is null then {label("user_id")} end,
                    case when source_event is null then {label("event_name")} end,
                    case when ts_text is null then {label("event_at")} end) as missing,
                concat_ws(', ',
                    case when ts_text is not null and event_at is null and not zone_less
                        then {label("event_at")} end,
                    case when duration_text is not null and duration_seconds is null
                        then {label("duration_seconds")} end) as wrong_type
            from parsed
        ),
        classified as (
            select *,
                case
                    when malformed then 'malformed_json'
                    when extra then 'bad_value'
                    when missing <> '' then 'missing_field'
                    when wrong_type <> '' then 'bad_type'
                    when ts_text is not null and zone_less then 'bad_value'
                    when event_at > {not_after_sql} then 'future_timestamp'
                end as reason,
                case
                    when malformed then 'invalid JSON or not a JSON object'
                    when extra then 'more fields than the header names'
                    when missing <> '' then 'missing: ' || missing
                    when wrong_type <> '' then 'wrong type: ' || wrong_type
                    when ts_text is not null and zone_less then 'timestamp ' || ts_text
                        || ' has no time zone; say which zone it is in with `timezone:` in the '
                        || 'mapping'
                    when event_at > {not_after_sql} then 'timestamp ' || event_at::varchar
                        || ' is ' || {_lit(not_after_label)}
                end as detail
            from checked
        )
        select $file as source_file, source_line,
               case when reason is null then event_at::date end as event_date,
               case when {keep_record} then raw_all end as raw_record, reason, detail,
               {message_id} as message_id, account_id, user_id, event_name, event_at, session_id,
               document_id, feature, duration_seconds, campaign_id, {props} as properties
        from classified
    """
    params: dict = {"file": name}
    if not_after:
        params["not_after"] = not_after
    # Without undecodable lines, row k of the file is line header + k; with them (rare), the good
    # rows after each one shift by a line (an ASOF lookup in _hist_line_shift).
    plain = f"select *, {src.header_lines} + _k as source_line from rows"
    shifted = (
        f"select r.*, {src.header_lines} + _k + coalesce(adj.n, 0) as source_line "
        "from rows r asof left join _hist_line_shift adj on r._k > adj.good_before"
    )
    rejected = 0
    unreadable = "malformed_json" if mapping.format == "jsonl" else "bad_value"

    def write(select: str, args: dict) -> int:
        if directory is None:
            return con.execute(f"insert into {table} by name {select}", args).fetchone()[0]
        # One streaming write per pass (a partitioned write would hold everything until the
        # end). Small row groups keep the writer's buffer well under a tight memory limit, and
        # carry min/max event dates, so a batch skips the ones outside its days when the
        # export is roughly in time order.
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"part-{len(list(directory.iterdir())):03d}.parquet"
        return con.execute(
            f"copy ({select}) to {_lit(str(target))} "
            "(format parquet, compression zstd, row_group_size 16384)",
            args,
        ).fetchone()[0]

    try:
        inserted = write(sql.replace("{numbered}", plain), params)
        if _has_rejects(con):
            # Undecodable lines (rare): the reader numbers them itself and skips them, so the
            # good rows after them shift; load again with the shift known.
            con.execute(
                """
                create or replace temp table _hist_rejected as
                select line, any_value(csv_line) as csv_line,
                       string_agg(distinct error_type, ', ') as errors
                from _hist_rejects group by line
                """
            )
            _drop_rejects(con)
            if directory is None:
                con.execute(f"delete from {table} where source_file = $file", {"file": name})
            else:
                shutil.rmtree(directory, ignore_errors=True)
            _line_shift(con, src.header_lines)
            inserted = write(sql.replace("{numbered}", shifted), params)
            nulls = ", ".join(
                f"null::{t} as {c}"
                for c, t in (col.split(" ", 1) for col in STAGE_COLUMNS.split(", "))
                if c not in ("source_file", "source_line", "raw_record", "reason", "detail")
            )
            rejected = write(
                "select $file as source_file, line as source_line, csv_line as raw_record, "
                f"$reason as reason, 'unreadable line: ' || errors as detail, {nulls} "
                "from _hist_rejected",
                {"file": name, "reason": unreadable},
            )
    except duckdb.Error as exc:
        raise read_error(path, mapping, exc) from exc
    finally:
        _drop_rejects(con)
    staged.rows = inserted + rejected
    if staged.rows == 0:
        staged.seconds = round(time.perf_counter() - started, 3)
        return staged
    where = (
        f"from {table} where source_file = $file"
        if directory is None
        else f"from {staged_parquet([directory])} where source_file = $file"
    )
    good, first, last, zone_less_n = con.execute(
        f"""
        select count(*) filter (where reason is null), min(event_date), max(event_date),
               count(*) filter (where reason = 'bad_value' and detail like '% has no time zone%')
        {where}
        """,
        {"file": name},
    ).fetchone()
    staged.good_rows, staged.first_date, staged.last_date = good, first, last
    staged.zone_less = zone_less_n
    staged.seconds = round(time.perf_counter() - started, 3)
    return staged


def staged_parquet(directories: list[Path]) -> str:
    """SQL reading what `stage_export` wrote to these directories."""
    globs = ", ".join(_lit(f"{d}/*.parquet") for d in directories)
    return f"read_parquet([{globs}], union_by_name = true)"


def out_of_memory(con, what: str) -> IngestError:
    """The error for DuckDB running out of its memory limit: what to change."""
    limit = con.execute("select current_setting('memory_limit')").fetchone()[0]
    return IngestError(
        f"DuckDB ran out of its memory limit ({limit}) {what}; raise it (--memory-limit, "
        "EA_DUCKDB_MEMORY_LIMIT) or load fewer rows per transaction (--batch-rows)."
    )


def read_error(path: Path, mapping: ByoMapping, exc: Exception) -> IngestError:
    if isinstance(exc, duckdb.OutOfMemoryException):
        return IngestError(
            f"DuckDB ran out of its memory limit reading {path}: {str(exc).splitlines()[0]}; "
            "raise it (--memory-limit, EA_DUCKDB_MEMORY_LIMIT)."
        )
    return IngestError(
        f"cannot read {path} as {mapping.format}: {exc}. Check the file and the mapping's "
        "`format`, `delimiter` and `header`."
    )


def _drop_rejects(con) -> None:
    for t in ("_hist_rejects", "_hist_reject_scans"):
        con.execute(f"drop table if exists {t}")


def _has_rejects(con) -> bool:
    if not table_exists(con, "main", "_hist_rejects"):
        return False
    return con.execute("select count(*) from _hist_rejects").fetchone()[0] > 0


def _line_shift(con, header_lines: int) -> None:
    """Good row k sits at line header + k + (rejected lines before it): an ASOF lookup table."""
    con.execute(
        f"""
        create or replace temp table _hist_line_shift as
        select max(line - {header_lines} - i) as good_before, max(i) as n
        from (select line, row_number() over (order by line) as i
              from (select distinct line from _hist_rejected))
        group by line - {header_lines} - i
        """
    )


def landing_exports(folder: Path, mapping: ByoMapping) -> list[Path]:
    """A landing folder's exports in the mapping's format: every file with one of the format's
    endings except the contract's own files (events*, accounts.csv, users.csv, outcomes.csv);
    only those the manifest lists, when it lists files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    listed = manifest_files(folder)
    return [
        p
        for p in sorted(folder.iterdir())
        if p.is_file()
        and p.name.lower().endswith(EXTENSIONS[mapping.format])
        and p.name not in CONTRACT_FILES
        and not p.name.startswith(("events", ".", "_"))
        and (listed is None or p.name in listed)
    ]


def stage_landing_exports(
    con, landing_dir: Path, dates: list[dt.date], mapping: ByoMapping
) -> dict[dt.date, list[Path]]:
    """Append the exports of these landing days to `_ev_cand` (each as its day's events)."""
    con.execute(f"create or replace temp table _ev_byo_stage ({STAGE_COLUMNS})")
    found: dict[dt.date, list[Path]] = {}
    for day in dates:
        found[day] = landing_exports(day_dir(landing_dir, day), mapping)
        for path in found[day]:
            con.execute("delete from _ev_byo_stage")
            name = relative_name(path, Path(landing_dir))
            stage_export(con, path, mapping, "_ev_byo_stage", name=name, keep_all_records=True)
            con.execute(
                "insert into _ev_cand select $day, * exclude (event_date) from _ev_byo_stage",
                {"day": day},
            )
    return found


def load_byo_file(
    con,
    path: Path,
    mapping: ByoMapping,
    landing_date: dt.date,
    landing_dir: Path | None = None,
) -> SourceStats:
    """Load one foreign event export as the events of `landing_date` (replacing that day's events).

    Rows get the same validation as JSON Lines (unknown accounts/users when snapshots exist,
    future timestamps, ...). Without a mapped message id, a deterministic one is the md5 of the
    row's mapped fields, so re-loading the same export never duplicates rows. To load a whole
    history by event date, use `ingest.history.load_history`.
    """
    started = time.perf_counter()
    path = Path(path)
    name = relative_name(path, Path(landing_dir)) if landing_dir else path.name
    with transaction(con):
        con.execute(f"create or replace temp table _byo_stage ({STAGE_COLUMNS})")
        stage_export(con, path, mapping, "_byo_stage", name=name, keep_all_records=True)
        con.execute(f"create or replace temp table _ev_cand ({CANDIDATE_COLUMNS})")
        con.execute(
            "insert into _ev_cand select $day, * exclude (event_date) from _byo_stage",
            {"day": landing_date},
        )
        stats = finish_events(
            con,
            [landing_date],
            files={landing_date: 1},
            bytes_read={landing_date: path.stat().st_size},
            started=started,
        )
        return stats[landing_date]
