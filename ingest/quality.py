"""Data-quality suites on the raw tables, run with Great Expectations over the loaded partitions."""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from ingest.schema import CANONICAL_EVENTS

# Rows per table and run handed to GX for the row-level expectations. A daily run (a few thousand
# events) is validated whole; a backfill of hundreds of days validates an even, deterministic
# sample of every loaded day, so the checks cost seconds instead of minutes and stay bounded in
# memory. Key uniqueness stays exact: every stored copy of a duplicated key is always included.
SAMPLE_ROWS = 50_000
# Upper bound on the copies of duplicated keys shown to GX (a broken load could have millions).
MAX_DUPLICATE_ROWS = 100_000


def _keep_pyspark_connect_from_exiting() -> None:
    """Stop GX's `import pyspark.sql.connect` from ending the process with SystemExit(0).

    With the Spark extra installed, Great Expectations imports pyspark.sql.connect, whose
    dependency check takes a process whose __main__ has neither __spec__ nor __file__ for a
    doctest session and calls sys.exit(0) when Spark Connect's own dependencies are missing.
    Dagster's run workers (launched by the daemon or the UI) and `python -c` are such
    processes: a load there ended silently with exit status 0 before its checks. In that case
    only, mark the module unavailable; GX then treats Spark Connect as absent, as elsewhere.
    """
    main = sys.modules.get("__main__")
    if (
        main is None
        or getattr(main, "__spec__", None) is not None
        or hasattr(main, "__file__")
        or hasattr(sys, "ps1")
        or importlib.util.find_spec("pyspark") is None
    ):
        return
    # Spark Connect's requirements (pyspark.sql.connect.utils): with all of them, no exit.
    if all(_has_module(name) for name in ("grpc", "grpc_status", "google.rpc", "zstandard")):
        return
    sys.modules.setdefault("pyspark.sql.connect", None)


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package is missing
        return False


# Before any GX import below (they are lazy, inside the functions).
_keep_pyspark_connect_from_exiting()


@dataclass
class QualityResult:
    """One expectation's outcome on one raw table (one property; blocking = poisons the marts)."""

    table: str
    name: str
    description: str
    passed: bool
    blocking: bool
    checked_rows: int
    unexpected_count: int
    examples: list = field(default_factory=list)
    rows_in_scope: int = 0  # rows of the checked landing days (checked_rows may be a sample)
    scope: str = ""  # what was checked, in words (for the check's metadata)


@functools.cache
def _context():
    # Imported lazily: GX takes seconds to import, and most callers of `ingest` never need it.
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


def prepare() -> None:
    """Import Great Expectations and build its context now (it takes seconds the first time)."""
    _context()


def _validate(table: str, df, suite: Sequence[tuple[str, str, bool, object]]) -> list:
    """Validate a DataFrame against (name, description, blocking, expectation) entries."""
    ctx = _context()
    source = ctx.data_sources.add_or_update_pandas(name="raw_quality")
    asset = source.add_dataframe_asset(name=f"{table}_{uuid.uuid4().hex[:8]}")
    batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(
        batch_parameters={"dataframe": df}
    )
    results = []
    try:
        for name, description, blocking, expectation in suite:
            if len(df) == 0:
                # GX cannot type an empty frame's columns; nothing loaded means nothing wrong.
                results.append(QualityResult(table, name, description, True, blocking, 0, 0))
                continue
            r = batch.validate(expectation, result_format="SUMMARY")
            examples = [_plain(v) for v in (r.result.get("partial_unexpected_list") or [])[:5]]
            results.append(
                QualityResult(
                    table=table,
                    name=name,
                    description=description,
                    passed=bool(r.success),
                    blocking=blocking,
                    checked_rows=int(r.result.get("element_count") or len(df)),
                    unexpected_count=int(r.result.get("unexpected_count") or 0),
                    examples=examples,
                )
            )
    finally:
        source.delete_asset(asset.name)
    return results


def _plain(value):
    """Examples go into Dagster metadata as JSON: turn numpy/pandas values into text."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value if value == value else None  # NaN -> None
    return str(value)


_ACCOUNT_KEY = "snapshot_date::varchar || '/' || account_id"
_USER_KEY = "snapshot_date::varchar || '/' || user_id"
_OUTCOME_KEY = "account_id || '/' || outcome || '/' || effective_date::varchar"


def _ordered(table: str, results: list[QualityResult]) -> list[QualityResult]:
    """Results in the order CHECKS declares them."""
    order = [name for name, _ in CHECKS[table]]
    return sorted(results, key=lambda r: order.index(r.name))


def _per_day(con, table: str, dates: Sequence[dt.date]) -> int:
    """Rows per landing day: SAMPLE_ROWS shared by the days that hold rows of this table
    (snapshots arrive on Mondays only, so dividing by every day would check too few).
    """
    days_with_rows = con.execute(
        f"select count(distinct landing_date) from raw.{table} "
        "where list_contains($dates, landing_date)",
        {"dates": list(dates)},
    ).fetchone()[0]
    return max(1, -(-SAMPLE_ROWS // max(days_with_rows, 1)))


def _sample(con, columns: str, table: str, key: str, dates: Sequence[dt.date], per_day: int):
    """Up to SAMPLE_ROWS rows of the given landing days, spread evenly over the days.

    The order is a hash of the row's key, so a re-run checks the same rows and the sample is not
    biased towards the start of the files; a day with fewer rows than its share is taken whole.
    """
    return con.execute(
        f"""
        with {_hash_cut(table)}
        select {columns} from raw.{table} join cut using (landing_date)
        where list_contains($dates, landing_date) and hash({key}) <= cut.max_hash
        qualify row_number() over (partition by landing_date order by hash({key}), {key})
                <= $per_day
        """,
        {"dates": list(dates), "per_day": per_day},
    ).df()


# How many times a day's share of rows the hash cut lets through before the exact per-day order.
_CUT_MARGIN = 4


def _hash_cut(table: str, keep: str = "true") -> str:
    """A `cut` CTE: per landing day, the largest key hash a sampled row can have.

    The sample is a day's `per_day` rows of smallest key hash. Ordering every row of a backfill
    by hash costs seconds per million; instead only rows whose hash lies in the lowest
    `_CUT_MARGIN * per_day / rows` part of the hash range are ordered (a day with at most
    `per_day` rows is taken whole). The rows of smallest hash are among them unless fewer than
    `per_day` rows pass, which for a few hundred rows expected is vanishingly unlikely; the
    sample is then smaller, never biased.
    """
    return f"""cut as (
            select landing_date,
                   case when count(*) <= $per_day then 18446744073709551615::ubigint
                        else least(1.0, {_CUT_MARGIN} * $per_day / count(*))
                             * 18446744073709551615.0
                   end as max_hash
            from raw.{table} where list_contains($dates, landing_date) and ({keep})
            group by landing_date
        )"""


def _keys(
    con, table: str, key: str, dates: Sequence[dt.date], per_day: int, *, across_all_days: bool
):
    """The key column for a uniqueness expectation: exact for duplicates, sampled otherwise.

    Every stored copy of a key that is duplicated (within the given days, or for events anywhere
    in the table) is included, so GX sees every duplicate; the unique keys are sampled per day.
    """
    params = {"dates": list(dates)}
    in_days = "list_contains($dates, landing_date)"
    if not across_all_days:
        # Counted within the days.
        dup = f"select {key} as k from raw.{table} where {in_days} group by all having count(*) > 1"
    else:
        rows_in_days, rows = con.execute(
            f"select count(*) filter (where {in_days}), count(*) from raw.{table}", params
        ).fetchone()
        if rows_in_days * 4 >= rows:
            # A backfill: one aggregate over the table, keeping the keys these days hold.
            dup = (
                f"select {key} as k from raw.{table} group by all "
                f"having count(*) > 1 and bool_or({in_days})"
            )
        else:
            # A daily run: only the keys of these days are counted, not the whole table grouped.
            dup = (
                f"select {key} as k from raw.{table} where {key} in "
                f"(select {key} from raw.{table} where {in_days}) "
                "group by all having count(*) > 1"
            )
    con.execute(f"create or replace temp table _quality_dup as {dup}", params)
    (duplicated,) = con.execute("select count(*) from _quality_dup").fetchone()
    # A check's usual case is no duplicate at all: then no row needs comparing with the list.
    not_dup = f"{key} not in (select k from _quality_dup)" if duplicated else "true"
    scope = "true" if across_all_days else in_days
    try:
        return con.execute(
            f"""
            with copies as (
                select {key} as k from raw.{table}
                where {scope} and {key} in (select k from _quality_dup) limit $max_dup
            ),
            {_hash_cut(table, not_dup)},
            uniques as (
                select {key} as k from raw.{table} join cut using (landing_date)
                where {in_days} and {not_dup} and hash({key}) <= cut.max_hash
                qualify row_number() over (partition by landing_date order by hash({key}), {key})
                        <= $per_day
            )
            select k as key from copies union all select k from uniques
            """,
            {**params, "per_day": per_day, "max_dup": MAX_DUPLICATE_ROWS},
        ).df()
    finally:
        con.execute("drop table if exists _quality_dup")


def _scoped(
    con, table: str, dates: Sequence[dt.date], per_day: int, results: list[QualityResult]
) -> list:
    """Record how many rows the days hold and what was checked of them."""
    total = con.execute(
        f"select count(*) from raw.{table} where list_contains($dates, landing_date)",
        {"dates": list(dates)},
    ).fetchone()[0]
    for r in results:
        r.rows_in_scope = total
        whole = r.checked_rows >= total
        r.scope = (
            f"{len(dates)} landing day(s), all {total:,} rows"
            if whole
            else f"{len(dates)} landing day(s): {r.checked_rows:,} of {total:,} rows "
            f"(up to {per_day:,} per day, chosen by key hash"
            + (", plus every copy of a duplicated key)" if r.name.endswith("_unique") else ")")
        )
    return results


def check_events(con, landing_dates: Sequence[dt.date]) -> list[QualityResult]:
    """Suite on raw.events for the given landing days (keys unique across ALL days)."""
    import great_expectations.expectations as gxe

    per_day = _per_day(con, "events", landing_dates)
    df = _sample(
        con,
        "message_id, account_id, event_name, event_at, duration_seconds, "
        "(landing_date + interval 2 day)::timestamp as latest_allowed_at",
        "events",
        "message_id",
        landing_dates,
        per_day,
    )
    # Every stored copy of a duplicated id of these days, wherever it landed, so cross-day
    # duplicates show.
    ids = _keys(con, "events", "message_id", landing_dates, per_day, across_all_days=True)
    ids = ids.rename(columns={"key": "message_id"})
    suite = [
        ("message_id_not_null", "every event has a message id", True,
         gxe.ExpectColumnValuesToNotBeNull(column="message_id")),
        ("account_id_not_null", "every event names its account", True,
         gxe.ExpectColumnValuesToNotBeNull(column="account_id")),
        ("event_at_not_null", "every event has a timestamp", True,
         gxe.ExpectColumnValuesToNotBeNull(column="event_at")),
        ("event_at_not_future", "no event is after its landing day + 1", True,
         gxe.ExpectColumnPairValuesAToBeGreaterThanB(
             column_A="latest_allowed_at", column_B="event_at", or_equal=False)),
        ("event_name_canonical", "event names are the canonical set", False,
         gxe.ExpectColumnValuesToBeInSet(column="event_name", value_set=list(CANONICAL_EVENTS))),
        ("duration_non_negative", "session durations are >= 0", False,
         gxe.ExpectColumnValuesToBeBetween(column="duration_seconds", min_value=0)),
    ]  # fmt: skip
    unique = [
        ("message_id_unique", "a message id is stored once across all landing days", True,
         gxe.ExpectColumnValuesToBeUnique(column="message_id")),
    ]  # fmt: skip
    results = _validate("events", df, suite) + _validate("events", ids, unique)
    return _scoped(con, "events", landing_dates, per_day, results)


def check_accounts(con, landing_dates: Sequence[dt.date]) -> list[QualityResult]:
    """Suite on raw.accounts snapshots of the given landing days."""
    import great_expectations.expectations as gxe

    per_day = _per_day(con, "accounts", landing_dates)
    df = _sample(con, "account_id, seats, arr::double as arr", "accounts", "account_id",
                 landing_dates, per_day)  # fmt: skip
    keys = _keys(con, "accounts", _ACCOUNT_KEY, landing_dates, per_day, across_all_days=False)
    keys = keys.rename(columns={"key": "snapshot_key"})
    suite = [
        ("account_id_not_null", "every snapshot row has an account id", True,
         gxe.ExpectColumnValuesToNotBeNull(column="account_id")),
        ("seats_positive", "seats > 0", False,
         gxe.ExpectColumnValuesToBeBetween(column="seats", min_value=0, strict_min=True)),
        ("arr_non_negative", "ARR >= 0", False,
         gxe.ExpectColumnValuesToBeBetween(column="arr", min_value=0)),
    ]  # fmt: skip
    unique = [
        ("snapshot_key_unique", "one row per (snapshot_date, account_id)", True,
         gxe.ExpectColumnValuesToBeUnique(column="snapshot_key")),
    ]  # fmt: skip
    results = _validate("accounts", df, suite) + _validate("accounts", keys, unique)
    return _scoped(con, "accounts", landing_dates, per_day, _ordered("accounts", results))


def check_users(con, landing_dates: Sequence[dt.date]) -> list[QualityResult]:
    """Suite on raw.users snapshots of the given landing days."""
    import great_expectations.expectations as gxe

    per_day = _per_day(con, "users", landing_dates)
    df = _sample(con, "user_id, account_id, role", "users", "user_id", landing_dates, per_day)
    keys = _keys(con, "users", _USER_KEY, landing_dates, per_day, across_all_days=False)
    keys = keys.rename(columns={"key": "snapshot_key"})
    suite = [
        ("user_id_not_null", "every snapshot row has a user id", True,
         gxe.ExpectColumnValuesToNotBeNull(column="user_id")),
        ("role_known", "role is admin, power or casual", False,
         gxe.ExpectColumnValuesToBeInSet(column="role", value_set=["admin", "power", "casual"])),
    ]  # fmt: skip
    unique = [
        ("snapshot_key_unique", "one row per (snapshot_date, user_id)", True,
         gxe.ExpectColumnValuesToBeUnique(column="snapshot_key")),
    ]  # fmt: skip
    results = _validate("users", df, suite) + _validate("users", keys, unique)
    return _scoped(con, "users", landing_dates, per_day, _ordered("users", results))


def check_outcomes(con, landing_dates: Sequence[dt.date]) -> list[QualityResult]:
    """Suite on raw.outcomes of the given landing days."""
    import great_expectations.expectations as gxe

    per_day = _per_day(con, "outcomes", landing_dates)
    df = _sample(con, "account_id, outcome", "outcomes", _OUTCOME_KEY, landing_dates, per_day)
    keys = _keys(con, "outcomes", _OUTCOME_KEY, landing_dates, per_day, across_all_days=False)
    keys = keys.rename(columns={"key": "outcome_key"})
    unique = [
        ("outcome_key_unique", "one row per (account_id, outcome, effective_date)", True,
         gxe.ExpectColumnValuesToBeUnique(column="outcome_key")),
    ]  # fmt: skip
    suite = [
        ("outcome_known", "outcome is churned, renewed, expanded or contracted", False,
         gxe.ExpectColumnValuesToBeInSet(
             column="outcome", value_set=["churned", "renewed", "expanded", "contracted"])),
    ]  # fmt: skip
    results = _validate("outcomes", keys, unique) + _validate("outcomes", df, suite)
    return _scoped(con, "outcomes", landing_dates, per_day, results)


SUITES = {
    "events": check_events,
    "accounts": check_accounts,
    "users": check_users,
    "outcomes": check_outcomes,
}

# The checks each suite reports, with whether a failure blocks downstream assets; Dagster declares
# its asset checks from this table before any data exists.
CHECKS: dict[str, tuple[tuple[str, bool], ...]] = {
    "accounts": (
        ("account_id_not_null", True),
        ("snapshot_key_unique", True),
        ("seats_positive", False),
        ("arr_non_negative", False),
    ),
    "users": (
        ("user_id_not_null", True),
        ("snapshot_key_unique", True),
        ("role_known", False),
    ),
    "outcomes": (
        ("outcome_key_unique", True),
        ("outcome_known", False),
    ),
    "events": (
        ("message_id_not_null", True),
        ("account_id_not_null", True),
        ("event_at_not_null", True),
        ("event_at_not_future", True),
        ("event_name_canonical", False),
        ("duration_non_negative", False),
        ("message_id_unique", True),
    ),
}
