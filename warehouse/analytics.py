"""The `analytics` schema: curated views over marts, scores, alerts and deliveries, PII masked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from warehouse.catalog import table_columns

ANALYTICS_SCHEMA = "analytics"
# The analyst database is written in DuckDB 1.5's storage format, which every DuckDB client
# from 1.5 on reads: the `duckdb` CLI and JDBC/ODBC drivers people have installed often lag
# behind the 2.0 Python package that writes it.
ANALYST_STORAGE_VERSION = "v1.5.0"

# Emails become a stable pseudonym (so analysts can still group by owner) that keeps only the
# domain readable. It is an unsalted digest: fine against casual reading, not against someone
# who already holds a list of candidate addresses (docs/security.md says so).
_MASK_MACRO = f"""
create or replace macro {ANALYTICS_SCHEMA}.mask_email(e) as
    case when e is null or trim(e) = '' then null
         else 'user_' || left(md5(lower(trim(e))), 12) || '@' || split_part(trim(e), '@', 2) end
"""
# Free text (explanations, errors, actors) can quote an address; replace any we find.
_EMAIL_RE = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"


@dataclass(frozen=True)
class ViewSpec:
    """One analytics view: its source table, columns left out, free-text columns scrubbed."""

    name: str
    source: str
    drop: tuple[str, ...] = ()
    scrub: tuple[str, ...] = ()
    description: str = ""
    # Columns that hold an address in some rows only (a KPI's dimension value): masked there.
    mask_values: tuple[str, ...] = ()


VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec(
        "accounts",
        "marts.dim_accounts",
        drop=("csm_name", "manager_name"),
        description="one row per account, current attributes",
    ),
    ViewSpec(
        "account_daily_engagement",
        "marts.fct_account_daily_engagement",
        description="one row per account and day of activity measures",
    ),
    ViewSpec(
        "account_health",
        "marts.account_health",
        description="daily rolling windows, trends and the 0-100 health score",
    ),
    ViewSpec("feature_adoption", "marts.feature_adoption", description="feature use per account"),
    ViewSpec("data_freshness", "marts.data_freshness", description="which days have landed"),
    ViewSpec(
        "account_scores",
        "ml.account_scores",
        description="churn and expansion probabilities with their top drivers",
    ),
    ViewSpec("anomalies", "ml.anomalies", description="flagged daily metric anomalies"),
    ViewSpec("segments", "ml.segments", description="behavioural segment per account"),
    ViewSpec(
        "alerts",
        "alerts.alerts",
        scrub=("explanation", "recommendation_text", "resolution_reason", "title"),
        description="every alert episode with status, priority and explanation",
    ),
    ViewSpec(
        "alert_history",
        "alerts.audit_log",
        scrub=("actor", "reason", "details_json"),
        description="append-only lifecycle events of alerts",
    ),
    ViewSpec(
        "deliveries",
        "ops.outbox",
        # The rendered message and its subject name people; analysts get the delivery facts.
        drop=("payload_json", "subject", "idempotency_key"),
        scrub=("last_error",),
        description="one row per email / CRM task with its delivery status (no message bodies)",
    ),
    ViewSpec(
        "alert_outcomes",
        "kpis.alert_outcomes",
        scrub=("resolution_reason",),
        description="every account alert followed to what happened to the account",
    ),
    ViewSpec(
        "kpi_alerts_weekly",
        "kpis.kpi_alerts_weekly",
        mask_values=("dimension_value",),
        description="weekly alert KPIs overall and by rule, type, severity, CSM and team",
    ),
    ViewSpec(
        "kpi_churn_coverage",
        "kpis.kpi_churn_coverage",
        description="churned accounts and whether a risk alert came first, with lead time",
    ),
    ViewSpec(
        "kpi_holdout_uplift",
        "kpis.kpi_holdout_uplift",
        description="churn and expansion rates with and without alerts (control group)",
    ),
)


def _columns(con, source: str) -> list[str] | None:
    return list(table_columns(con, *source.split("."))) or None


def _select(spec: ViewSpec, columns: list[str]) -> str:
    parts = []
    for col in columns:
        if col in spec.drop:
            continue
        quoted = f'"{col}"'
        if col.endswith("email") or col == "recipient":
            parts.append(f"{ANALYTICS_SCHEMA}.mask_email({quoted}) as {quoted}")
        elif col in spec.mask_values:
            parts.append(
                f"case when {quoted} like '%@%' then {ANALYTICS_SCHEMA}.mask_email({quoted}) "
                f"else {quoted} end as {quoted}"
            )
        elif col in spec.scrub:
            parts.append(
                f"regexp_replace(cast({quoted} as varchar), '{_EMAIL_RE}', '[email]', 'g') "
                f"as {quoted}"
            )
        else:
            parts.append(quoted)
    return ",\n    ".join(parts)


def create_analytics_views(con) -> dict[str, list[str]]:
    """Create or refresh every analytics view whose source table exists.

    Returns ``{"created": [view names], "skipped": [source tables not built yet]}``. Views select
    from the live tables, so they never go stale between refreshes; a refresh is only needed when
    a source table gains or loses columns. Re-running is harmless.
    """
    con.execute(f"create schema if not exists {ANALYTICS_SCHEMA}")
    con.execute(_MASK_MACRO)
    created, skipped = [], []
    for spec in VIEWS:
        columns = _columns(con, spec.source)
        if columns is None:
            con.execute(f"drop view if exists {ANALYTICS_SCHEMA}.{spec.name}")
            skipped.append(spec.source)
            continue
        con.execute(
            f"create or replace view {ANALYTICS_SCHEMA}.{spec.name} as\n"
            f"select\n    {_select(spec, columns)}\nfrom {spec.source}"
        )
        if spec.description:
            con.execute(
                f"comment on view {ANALYTICS_SCHEMA}.{spec.name} is "
                f"'{spec.description} (from {spec.source}; emails masked)'"
            )
        created.append(spec.name)
    return {"created": created, "skipped": skipped}


def mask_email(con, email: str | None) -> str | None:
    """The masked form an analytics view shows for `email` (same macro, for tests and docs)."""
    return con.execute(f"select {ANALYTICS_SCHEMA}.mask_email(?)", [email]).fetchone()[0]


def snapshot_queries(con) -> tuple[dict[str, str], dict[str, str]]:
    """What the analyst database holds: one `analytics.<view>` table per view whose source
    exists (the same masked select as the view, straight from the source) and the one-row
    `analytics.snapshot` (when it was published, the latest day it covers, by which run).

    Returns (queries by table name, comments by table name), for `publish_snapshot`.
    """
    queries, comments = {}, {}
    for spec in VIEWS:
        columns = _columns(con, spec.source)
        if columns is None:
            continue
        name = f"{ANALYTICS_SCHEMA}.{spec.name}"
        select = _select(spec, columns).replace(
            f"{ANALYTICS_SCHEMA}.mask_email(", "ea_mask_email("
        )
        queries[name] = f"select\n    {select}\nfrom {spec.source}"
        comments[name] = f"{spec.description} (from {spec.source}; emails masked)"
    return queries, comments


# Written by many steps (alert evaluation, deliveries, escalations, inbox actions, CRM sync):
# every publish refreshes them.
ALWAYS_REFRESHED = ("alerts", "alert_history", "deliveries")


def tables_changed_by(sources: set[str]) -> set[str]:
    """Analytics tables to refresh after a run that wrote `sources` ("schema.table" each)."""
    return {v.name for v in VIEWS if v.source in sources} | set(ALWAYS_REFRESHED)


def publish_analyst_database(con, target, source: str = "", refresh: set[str] | None = None):
    """Publish the analyst database at `target` (see `warehouse.publish.publish_snapshot`):
    only the curated, masked `analytics` tables and `analytics.snapshot`; never raw data.

    `refresh` names the tables a run changed: when `target` exists, the others are kept from it
    (copied) and only these are rebuilt; None rebuilds every table.
    """
    import datetime as dt

    from warehouse.publish import publish_snapshot

    con.execute(_MASK_MACRO.replace(f"{ANALYTICS_SCHEMA}.mask_email", "ea_mask_email", 1)
                .replace("create or replace macro", "create or replace temp macro", 1))  # fmt: skip
    queries, comments = snapshot_queries(con)
    target = Path(target)
    base = None
    if refresh is not None and target.is_file():
        names = {f"{ANALYTICS_SCHEMA}.{name}" for name in refresh}
        queries = {k: v for k, v in queries.items() if k in names}
        comments = {k: v for k, v in comments.items() if k in names}
        base = target
    latest = (
        "(select max(as_of_date) from marts.account_health)"
        if _has_column(con, "marts.account_health")
        else "null::date"
    )
    published = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat()
    queries[f"{ANALYTICS_SCHEMA}.snapshot"] = (
        f"select cast('{published}' as timestamp) as published_at, "
        f"cast({latest} as date) as latest_data_date, "
        f"'{source.replace(chr(39), '')}' as published_by"
    )
    comments[f"{ANALYTICS_SCHEMA}.snapshot"] = (
        "when this snapshot was published (UTC), the latest day of data it covers, and the run "
        "that published it; reopen the database (`.refresh` in `ea sql`) for a newer one"
    )
    return publish_snapshot(
        con, target, queries, comments, storage_version=ANALYST_STORAGE_VERSION, base=base
    )


def _has_column(con, source: str, column: str = "as_of_date") -> bool:
    return column in (_columns(con, source) or [])
