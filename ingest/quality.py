"""Data-quality suites on the raw tables, run with Great Expectations over the loaded partitions."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from ingest.schema import CANONICAL_EVENTS

# Rows validated per table and run; keeps a 400-day backfill's checks bounded in memory.
MAX_ROWS = 500_000


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


@functools.cache
def _context():
    # Imported lazily: GX takes seconds to import, and most callers of `ingest` never need it.
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


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


def _frame(con, sql: str, dates: Sequence[dt.date]):
    return con.execute(sql, {"dates": list(dates), "limit": MAX_ROWS}).df()


def check_events(con, landing_dates: Sequence[dt.date]) -> list[QualityResult]:
    """Suite on raw.events for the given landing days (keys unique across ALL days)."""
    import great_expectations.expectations as gxe

    df = _frame(
        con,
        """
        select message_id, account_id, event_name, event_at, duration_seconds,
               (landing_date + interval 2 day)::timestamp as latest_allowed_at
        from raw.events where list_contains($dates, landing_date) limit $limit
        """,
        landing_dates,
    )
    # Every stored copy of this partition's ids, wherever it landed, so cross-day duplicates show.
    ids = _frame(
        con,
        """
        select message_id from raw.events where message_id in (
            select message_id from raw.events where list_contains($dates, landing_date)
        ) limit $limit
        """,
        landing_dates,
    )
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
    return _validate("events", df, suite) + _validate("events", ids, unique)


def check_accounts(con, landing_dates: Sequence[dt.date]) -> list[QualityResult]:
    """Suite on raw.accounts snapshots of the given landing days."""
    import great_expectations.expectations as gxe

    df = _frame(
        con,
        """
        select account_id, snapshot_date::varchar || '/' || account_id as snapshot_key,
               seats, arr::double as arr
        from raw.accounts where list_contains($dates, landing_date) limit $limit
        """,
        landing_dates,
    )
    suite = [
        ("account_id_not_null", "every snapshot row has an account id", True,
         gxe.ExpectColumnValuesToNotBeNull(column="account_id")),
        ("snapshot_key_unique", "one row per (snapshot_date, account_id)", True,
         gxe.ExpectColumnValuesToBeUnique(column="snapshot_key")),
        ("seats_positive", "seats > 0", False,
         gxe.ExpectColumnValuesToBeBetween(column="seats", min_value=0, strict_min=True)),
        ("arr_non_negative", "ARR >= 0", False,
         gxe.ExpectColumnValuesToBeBetween(column="arr", min_value=0)),
    ]  # fmt: skip
    return _validate("accounts", df, suite)


def check_users(con, landing_dates: Sequence[dt.date]) -> list[QualityResult]:
    """Suite on raw.users snapshots of the given landing days."""
    import great_expectations.expectations as gxe

    df = _frame(
        con,
        """
        select user_id, account_id, role, snapshot_date::varchar || '/' || user_id as snapshot_key
        from raw.users where list_contains($dates, landing_date) limit $limit
        """,
        landing_dates,
    )
    suite = [
        ("user_id_not_null", "every snapshot row has a user id", True,
         gxe.ExpectColumnValuesToNotBeNull(column="user_id")),
        ("snapshot_key_unique", "one row per (snapshot_date, user_id)", True,
         gxe.ExpectColumnValuesToBeUnique(column="snapshot_key")),
        ("role_known", "role is admin, power or casual", False,
         gxe.ExpectColumnValuesToBeInSet(column="role", value_set=["admin", "power", "casual"])),
    ]  # fmt: skip
    return _validate("users", df, suite)


def check_outcomes(con, landing_dates: Sequence[dt.date]) -> list[QualityResult]:
    """Suite on raw.outcomes of the given landing days."""
    import great_expectations.expectations as gxe

    df = _frame(
        con,
        """
        select account_id, outcome,
               account_id || '/' || outcome || '/' || effective_date::varchar as outcome_key
        from raw.outcomes where list_contains($dates, landing_date) limit $limit
        """,
        landing_dates,
    )
    suite = [
        ("outcome_key_unique", "one row per (account_id, outcome, effective_date)", True,
         gxe.ExpectColumnValuesToBeUnique(column="outcome_key")),
        ("outcome_known", "outcome is churned, renewed, expanded or contracted", False,
         gxe.ExpectColumnValuesToBeInSet(
             column="outcome", value_set=["churned", "renewed", "expanded", "contracted"])),
    ]  # fmt: skip
    return _validate("outcomes", df, suite)


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
