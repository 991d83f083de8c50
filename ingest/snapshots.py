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


def _read_csv(con, path: Path, source: CsvSource) -> list[str]:
    """Read a CSV into `_csv` as text with line numbers; returns its extra (padding) columns."""
    con.execute("drop table if exists _csv")
    exists = con.execute(
        "select count(*) from duckdb_tables() where table_name = '_csv_rejects'"
    ).fetchone()[0]
    if exists:
        con.execute("delete from _csv_rejects")
    if path.stat().st_size == 0:
        cols = ", ".join(f"{_q(c.name)} varchar" for c in source.columns)
        con.execute(f"create temp table _csv (source_line bigint, {cols})")
        return []
    try:
        con.execute(
            """
            create temp table _csv as
            select row_number() over () + 1 as source_line, *
            from read_csv(?, delim = ',', quote = '"', escape = '"', header = true,
                          all_varchar = true, null_padding = true, parallel = false,
                          store_rejects = true, rejects_table = '_csv_rejects',
                          rejects_scan = '_csv_reject_scans')
            """,
            [str(path)],
        )
    except duckdb.Error as exc:
        raise IngestError(
            f"cannot read {path}: {exc}. Re-export the file as comma-separated UTF-8 with a "
            "header row and re-run this landing day."
        ) from exc
    present = [r[0] for r in con.execute("describe _csv").fetchall()][1:]
    missing = [c.name for c in source.columns if c.name not in present]
    if missing and len(present) == 1 and present[0] == "column0":
        missing = []  # an empty or header-less file: handled as zero rows below
    if missing:
        raise IngestError(
            f"{path} lacks the column(s) {', '.join(missing)} (found: {', '.join(present)}); "
            f"the header of {source.file} must name: {', '.join(c.name for c in source.columns)}."
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
    """Load one CSV source for several landing days (replacing those days' rows)."""
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
        for d, st in stats.items():
            path = day_dir(landing_dir, d) / source.file
            listed = manifest_files(path.parent)
            if not path.exists() or (listed is not None and source.file not in listed):
                continue
            st.files = 1
            st.bytes_read = path.stat().st_size
            if _header_only(path):
                continue
            extra = _read_csv(con, path, source)
            name = relative_name(path, Path(landing_dir))
            _classify_and_insert(con, source, d, name, extra)
            rejected = _quarantine_rejects(con, source, d, name)
            if rejected:
                st.quarantined_by_reason["bad_value"] = rejected
                st.rows_quarantined += rejected
                st.rows_read += rejected
            for reason, n in con.execute(
                "select coalesce(reason, ''), count(*) from _csv_class group by all order by 1"
            ).fetchall():
                st.rows_read += n
                if reason:
                    st.quarantined_by_reason[reason] = st.quarantined_by_reason.get(reason, 0) + n
                    st.rows_quarantined += n
            st.rows_loaded = st.rows_read - st.rows_quarantined
        per_day = round((time.perf_counter() - started) / max(len(dates), 1), 3)
        for st in stats.values():
            st.seconds = per_day
        record_partitions(con, list(stats.values()))
    return stats


def load_csv_source(
    con, landing_dir: Path, landing_date: dt.date, source: CsvSource
) -> SourceStats:
    """Load one CSV source of a landing day into its raw table (replacing that day's rows)."""
    return load_csv_days(con, landing_dir, [landing_date], source)[landing_date]


def _quarantine_rejects(con, source: CsvSource, d: dt.date, file_name: str) -> int:
    """Lines the CSV reader could not decode (e.g. invalid UTF-8) go to quarantine."""
    exists = con.execute(
        "select count(*) from duckdb_tables() where table_name = '_csv_rejects'"
    ).fetchone()[0]
    if not exists:
        return 0
    return con.execute(
        """
        insert into raw.quarantine
        select $source, $d, $file, line, 'bad_value',
               'unreadable line: ' || string_agg(distinct error_type, ', '), any_value(csv_line),
               now()::timestamp
        from _csv_rejects group by line
        """,
        {"source": source.name, "d": d, "file": file_name},
    ).fetchone()[0]


def _classify_and_insert(
    con, source: CsvSource, d: dt.date, file_name: str, extra: list[str]
) -> None:
    cols = source.columns
    clean = ", ".join(f"nullif(trim({_q(c.name)}), '') as {_q(c.name)}" for c in cols)
    extras = " or ".join(f"{_q(e)} is not null" for e in extra) or "false"
    raw_record = "concat_ws(',', " + ", ".join(f"coalesce({_q(c.name)}, '')" for c in cols) + ")"
    missing = [
        f"case when {_q(c.name)} is null then {_lit(c.name)} end" for c in cols if c.required
    ]
    bad_type = [
        f"case when {_q(c.name)} is not null and {_typed(c)} is null then {_lit(c.name)} end"
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
                f"case when {_typed(c)} {op} {c.min_value} "
                f"then {_lit(f'{c.name} must be {word} {c.min_value:g}')} end"
            )
    key = ", ".join(_q(k) for k in source.key)
    account_check = (
        "when account_id not in (select account_id from raw.accounts where snapshot_date <= $d) "
        "then 'unknown_account'"
        if source.check_account
        else ""
    )
    account_detail = (
        "when account_id not in (select account_id from raw.accounts where snapshot_date <= $d) "
        "then 'account_id ' || account_id || ' is not a known account'"
        if source.check_account
        else ""
    )

    def listing(parts: list[str]) -> str:
        return "concat_ws(', ', " + ", ".join(parts) + ")" if parts else "''"

    con.execute(
        f"""
        create or replace temp table _csv_class as
        with cleaned as (
            select source_line, {raw_record} as raw_record, ({extras}) as has_extra, {clean}
            from _csv
        ),
        checked as (
            select *,
                {listing(missing)} as missing,
                {listing(bad_type)} as bad_type,
                {listing(bad_value)} as bad_value,
                row_number() over (partition by {key} order by source_line nulls last) > 1
                    as is_duplicate
            from cleaned
        )
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
        """,
        {"d": d} if source.check_account else {},
    )
    typed = ", ".join(_typed(c) for c in cols)
    snapshot = "$d, " if source.is_snapshot else ""
    con.execute(
        f"""
        insert into {source.table}
        select {typed}, {snapshot}$d, $file, source_line, now()::timestamp
        from _csv_class where reason is null
        """,
        {"d": d, "file": file_name},
    )
    con.execute(
        """
        insert into raw.quarantine
        select $source, $d, $file, source_line, reason, detail, raw_record, now()::timestamp
        from _csv_class where reason is not null
        """,
        {"d": d, "file": file_name, "source": source.name},
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
