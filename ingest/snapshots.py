"""Load the CSV sources (accounts and users snapshots, outcomes) with set-based validation."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ingest.common import (
    IngestError,
    SourceStats,
    day_dir,
    manifest_files,
    relative_name,
    transaction,
)
from ingest.events import record_partitions
from warehouse.catalog import table_exists

_SQL_TYPES = {
    "string": "varchar",
    "int": "integer",
    "decimal": "decimal(18, 2)",
    "date": "date",
    "timestamp": "timestamp",
    "bool": "boolean",
}


@dataclass(frozen=True)
class Col:
    """One CSV column: its type, whether it must be present, and optional value rules."""

    name: str
    kind: str = "string"
    required: bool = False
    allowed: tuple[str, ...] = ()
    min_value: float | None = None
    min_inclusive: bool = True


@dataclass(frozen=True)
class CsvSource:
    """A CSV landing source and the raw table it fills."""

    name: str
    file: str
    table: str
    columns: tuple[Col, ...]
    key: tuple[str, ...]
    is_snapshot: bool
    check_account: bool  # the row's account_id must be a known account


ACCOUNTS = CsvSource(
    name="accounts",
    file="accounts.csv",
    table="raw.accounts",
    columns=(
        Col("account_id", required=True),
        Col("account_name"),
        Col("domain"),
        Col("plan", allowed=("starter", "growth", "enterprise")),
        Col("seats", "int", min_value=0, min_inclusive=False),
        Col("arr", "decimal", min_value=0),
        Col("contract_start_date", "date"),
        Col("renewal_date", "date"),
        Col("csm_name"),
        Col("csm_email"),
        Col("manager_name"),
        Col("manager_email"),
        Col("industry"),
        Col("region"),
        Col("tracking_consent", "bool", required=True),
    ),
    key=("account_id",),
    is_snapshot=True,
    check_account=False,
)

USERS = CsvSource(
    name="users",
    file="users.csv",
    table="raw.users",
    columns=(
        Col("user_id", required=True),
        Col("account_id", required=True),
        Col("email"),
        Col("role", allowed=("admin", "power", "casual")),
        Col("created_at", "timestamp"),
        Col("deactivated_at", "timestamp"),
        Col("opted_out", "bool", required=True),
    ),
    key=("user_id",),
    is_snapshot=True,
    check_account=True,
)

OUTCOMES = CsvSource(
    name="outcomes",
    file="outcomes.csv",
    table="raw.outcomes",
    columns=(
        Col("account_id", required=True),
        Col("outcome", required=True, allowed=("churned", "renewed", "expanded", "contracted")),
        Col("effective_date", "date", required=True),
        Col("arr_delta", "decimal"),
    ),
    key=("account_id", "outcome", "effective_date"),
    is_snapshot=False,
    check_account=True,
)

CSV_SOURCES = {s.name: s for s in (ACCOUNTS, USERS, OUTCOMES)}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _typed(col: Col) -> str:
    """The SQL that turns the cleaned text of a column into its typed value."""
    ref = _q(col.name)
    if col.kind == "timestamp":
        # Timestamps may carry an offset; store the UTC instant without a zone.
        return f"(try_cast({ref} as timestamptz) at time zone 'UTC')"
    if col.kind == "bool":
        return f"(case lower({ref}) when 'true' then true when 'false' then false end)"
    return f"try_cast({ref} as {_SQL_TYPES[col.kind]})"


def _read_csv(con, files: list[tuple[Path, str, dt.date]], source: CsvSource) -> list[str]:
    """Read CSV files that share one header into `_csv`, all text, in one scan.

    `_csv` has landing_date, source_file, source_line (the data row number + 1, per file; see
    `load_many_lines` for the order it relies on) and the columns; returns its extra (padding)
    columns.
    """
    for table in ("_csv", "_csv_file", "_csv_rejects", "_csv_reject_scans"):
        con.execute(f"drop table if exists {table}")
    paths = [str(p) for p, _, _ in files]
    con.execute(
        "create or replace temp table _csv_names as select unnest($paths) as path, "
        "unnest($names) as source_file, unnest($days)::date as landing_date",
        {"paths": paths, "names": [n for _, n, _ in files], "days": [d for _, _, d in files]},
    )
    try:
        con.execute(
            """
            create temp table _csv_file as
            select row_number() over () as _k, *
            from read_csv($paths, delim = ',', quote = '"', escape = '"', header = true,
                          all_varchar = true, null_padding = true, parallel = false,
                          filename = '_path', store_rejects = true,
                          rejects_table = '_csv_rejects', rejects_scan = '_csv_reject_scans')
            """,
            {"paths": paths},
        )
    except duckdb.Error as exc:
        raise IngestError(
            f"cannot read {', '.join(paths)}: {exc}. Re-export the file as comma-separated UTF-8 "
            "with a header row and re-run this landing day."
        ) from exc
    present = [r[0] for r in con.execute("describe _csv_file").fetchall()]
    present = [c for c in present if c not in ("_k", "_path")]
    if present == ["column0"]:
        # Only blank lines: no header and no rows, so zero rows.
        cols = ", ".join(f"null::varchar as {_q(c.name)}" for c in source.columns)
        con.execute(
            f"create temp table _csv as select null::date as landing_date, "
            f"null::varchar as source_file, null::bigint as source_line, {cols} limit 0"
        )
        return []
    missing = [c.name for c in source.columns if c.name not in present]
    if missing:
        raise IngestError(
            f"{', '.join(paths)} lacks the column(s) {', '.join(missing)} (found: "
            f"{', '.join(present)}); the header of {source.file} must name: "
            f"{', '.join(c.name for c in source.columns)}."
        )
    con.execute(
        """
        create temp table _csv as
        with firsts as (select _path, min(_k) as k0 from _csv_file group by _path)
        -- A hash join with each file's first number: cheaper than a window per file.
        select n.landing_date, n.source_file, f._k - firsts.k0 + 2 as source_line,
               f.* exclude (_k, _path)
        from _csv_file f join firsts using (_path) join _csv_names n on n.path = f._path
        """
    )
    expected = {c.name for c in source.columns}
    return [c for c in present if c not in expected and c.startswith("column")]


def _header_only(path: Path) -> bool:
    """True for a small file with at most a header line (most days' outcomes.csv)."""
    if path.stat().st_size > 4096:
        return False
    return len([ln for ln in path.read_bytes().splitlines() if ln.strip()]) <= 1


def load_csv_days(
    con, landing_dir: Path, dates: list[dt.date], source: CsvSource
) -> dict[dt.date, SourceStats]:
    """Load one CSV source for several landing days (replacing those days' rows).

    Files that share a header line are read and validated together, in one set of statements,
    instead of one set per file (a year has about 240 small outcomes files).
    """
    started = time.perf_counter()
    stats = {d: SourceStats(source=source.name, landing_date=d) for d in dates}
    days = {"dates": sorted(dates)}
    with transaction(con):
        con.execute(f"delete from {source.table} where list_contains($dates, landing_date)", days)
        con.execute(
            "delete from raw.quarantine where source = $source "
            "and list_contains($dates, landing_date)",
            {**days, "source": source.name},
        )
        by_header: dict[bytes, list[tuple[Path, str, dt.date]]] = {}
        for d, st in stats.items():
            path = day_dir(landing_dir, d) / source.file
            listed = manifest_files(path.parent)
            if not path.exists() or (listed is not None and source.file not in listed):
                continue
            st.files = 1
            st.bytes_read = path.stat().st_size
            if _header_only(path):
                continue
            name = relative_name(path, Path(landing_dir))
            by_header.setdefault(_header(path), []).append((path, name, d))
        for files in by_header.values():
            extra = _read_csv(con, files, source)
            _classify_and_insert(con, source, extra)
            for d, n in _quarantine_rejects(con, source):
                st = stats[d]
                st.quarantined_by_reason["bad_value"] = n
                st.rows_quarantined += n
                st.rows_read += n
            for d, reason, n in con.execute(
                "select landing_date, coalesce(reason, ''), count(*) from _csv_class "
                "group by all order by all"
            ).fetchall():
                st = stats[d]
                st.rows_read += n
                if reason:
                    st.quarantined_by_reason[reason] = st.quarantined_by_reason.get(reason, 0) + n
                    st.rows_quarantined += n
        for st in stats.values():
            st.rows_loaded = st.rows_read - st.rows_quarantined
        per_day = round((time.perf_counter() - started) / max(len(dates), 1), 3)
        for st in stats.values():
            st.seconds = per_day
        record_partitions(con, list(stats.values()))
    return stats


def _header(path: Path) -> bytes:
    """A file's first line: files with the same header can be read in one scan."""
    with path.open("rb") as fh:
        return fh.readline().strip()


def load_csv_source(
    con, landing_dir: Path, landing_date: dt.date, source: CsvSource
) -> SourceStats:
    """Load one CSV source of a landing day into its raw table (replacing that day's rows)."""
    return load_csv_days(con, landing_dir, [landing_date], source)[landing_date]


def _quarantine_rejects(con, source: CsvSource) -> list[tuple[dt.date, int]]:
    """Lines the CSV reader could not decode (e.g. invalid UTF-8) go to quarantine."""
    if not table_exists(con, "main", "_csv_rejects"):
        return []
    con.execute(
        """
        create or replace temp table _csv_rejected as
        select n.landing_date, n.source_file, r.line,
               string_agg(distinct r.error_type, ', ') as errors,
               any_value(r.csv_line) as csv_line
        from _csv_rejects r
        join _csv_reject_scans s using (scan_id, file_id)
        join _csv_names n on n.path = s.file_path
        group by all
        """
    )
    # A row with more fields than the header is rejected by the reader when it lies beyond the
    # rows the reader sampled for its columns; it gets the same detail as one inside them.
    con.execute(
        """
        insert into raw.quarantine
        select $source, landing_date, source_file, line, 'bad_value',
               case when errors = 'TOO MANY COLUMNS' then 'more fields than the header names'
                    else 'unreadable line: ' || errors end,
               csv_line, now()::timestamp
        from _csv_rejected
        """,
        {"source": source.name},
    )
    return con.execute("select landing_date, count(*) from _csv_rejected group by all").fetchall()


def _t(col: Col) -> str:
    """The name of a column's typed value inside `_csv_class`."""
    return _q("_t_" + col.name)


def _classify_and_insert(con, source: CsvSource, extra: list[str]) -> None:
    cols = source.columns
    clean = ", ".join(f"nullif(trim({_q(c.name)}), '') as {_q(c.name)}" for c in cols)
    # The row as read, kept aside under other names so the record of a quarantined row is built
    # from them (for those rows only, not for every row of a snapshot).
    kept = ", ".join(f"{_q(c.name)} as {_q('_raw_' + c.name)}" for c in cols)
    raw_record = (
        "concat_ws(',', " + ", ".join(f"coalesce({_q('_raw_' + c.name)}, '')" for c in cols) + ")"
    )
    extras = " or ".join(f"{_q(e)} is not null" for e in extra) or "false"
    missing = [
        f"case when {_q(c.name)} is null then {_lit(c.name)} end" for c in cols if c.required
    ]
    bad_type = [
        f"case when {_q(c.name)} is not null and {_t(c)} is null then {_lit(c.name)} end"
        for c in cols
        if c.kind != "string"
    ]
    bad_value = []
    for c in cols:
        if c.allowed:
            bad_value.append(
                f"case when {_q(c.name)} not in ({', '.join(map(_lit, c.allowed))}) "
                f"then {_lit(c.name + ' not in ' + '|'.join(c.allowed))} end"
            )
        if c.min_value is not None:
            op = "<" if c.min_inclusive else "<="
            word = ">=" if c.min_inclusive else ">"
            bad_value.append(
                f"case when {_t(c)} {op} {c.min_value} "
                f"then {_lit(f'{c.name} must be {word} {c.min_value:g}')} end"
            )
    key_cols = [_q(k) for k in source.key]
    key = ", ".join(key_cols)
    # A later copy of a key in the same file is a duplicate. Keys held more than once are found
    # by one aggregate and only their rows compared, instead of numbering every row in a window.
    # A row whose key is incomplete is quarantined as missing_field before this applies.
    dup_join = " and ".join(f"d.{k} = cleaned.{k}" for k in key_cols)
    # Known = in any accounts snapshot up to the row's landing day: the account's first
    # snapshot day is on or before it.
    known_join = (
        "left join (select account_id, min(snapshot_date) as first_seen from raw.accounts "
        "group by account_id) acc on acc.account_id = cleaned.account_id"
        if source.check_account
        else ""
    )
    unknown = "first_seen is null or first_seen > landing_date"
    account_check = f"when {unknown} then 'unknown_account'" if source.check_account else ""
    account_detail = (
        f"when {unknown} then 'account_id ' || account_id || ' is not a known account'"
        if source.check_account
        else ""
    )

    def listing(parts: list[str]) -> str:
        return "concat_ws(', ', " + ", ".join(parts) + ")" if parts else "''"

    names = ", ".join(_q(c.name) for c in cols)
    # Each typed column is cast once, for the checks and the insert alike.
    typed_cols = [c for c in cols if c.kind != "string"]
    typed_once = ", ".join(f"{_typed(c)} as {_t(c)}" for c in typed_cols) or "null as _t_none"
    typed_names = ", ".join(_t(c) for c in typed_cols) or "_t_none"
    con.execute(
        f"""
        create or replace temp table _csv_class as
        with cleaned as (
            select landing_date, source_file, source_line, ({extras}) as has_extra,
                   {clean}, {kept}
            from _csv
        ),
        typed as (select *, {typed_once} from cleaned),
        dups as (
            select source_file, {key}, min(source_line) as first_line
            from cleaned group by all having count(*) > 1
        ),
        joined as (
            select cleaned.*,
                coalesce(cleaned.source_line > d.first_line, false) as is_duplicate
                {", acc.first_seen" if source.check_account else ""}
            from typed cleaned
            left join dups d on d.source_file = cleaned.source_file and {dup_join}
            {known_join}
        ),
        checked as (
            select *,
                {listing(missing)} as missing,
                {listing(bad_type)} as bad_type,
                {listing(bad_value)} as bad_value
            from joined
        ),
        classified as (
            select *,
                case
                    when has_extra then 'bad_value'
                    when missing <> '' then 'missing_field'
                    when bad_type <> '' then 'bad_type'
                    when bad_value <> '' then 'bad_value'
                    when is_duplicate then 'bad_value'
                    {account_check}
                end as reason,
                case
                    when has_extra then 'more fields than the header names'
                    when missing <> '' then 'missing: ' || missing
                    when bad_type <> '' then 'wrong type: ' || bad_type
                    when bad_value <> '' then bad_value
                    when is_duplicate then 'duplicate key ({", ".join(source.key)}) in this file'
                    {account_detail}
                end as detail
            from checked
        )
        select landing_date, source_file, source_line, {names}, {typed_names}, reason, detail,
               case when reason is not null then {raw_record} end as raw_record
        from classified
        """
    )
    typed = ", ".join(_t(c) if c.kind != "string" else _q(c.name) for c in cols)
    snapshot = "landing_date, " if source.is_snapshot else ""
    con.execute(
        f"""
        insert into {source.table}
        select {typed}, {snapshot}landing_date, source_file, source_line, now()::timestamp
        from _csv_class where reason is null
        """
    )
    con.execute(
        """
        insert into raw.quarantine
        select $source, landing_date, source_file, source_line, reason, detail, raw_record,
               now()::timestamp
        from _csv_class where reason is not null
        """,
        {"source": source.name},
    )


def load_accounts(con, landing_dir: Path, landing_date: dt.date) -> SourceStats:
    """Load the day's accounts.csv snapshot (if any) into raw.accounts."""
    return load_csv_source(con, landing_dir, landing_date, ACCOUNTS)


def load_users(con, landing_dir: Path, landing_date: dt.date) -> SourceStats:
    """Load the day's users.csv snapshot (if any) into raw.users."""
    return load_csv_source(con, landing_dir, landing_date, USERS)


def load_outcomes(con, landing_dir: Path, landing_date: dt.date) -> SourceStats:
    """Load the day's outcomes.csv (if any) into raw.outcomes."""
    return load_csv_source(con, landing_dir, landing_date, OUTCOMES)
