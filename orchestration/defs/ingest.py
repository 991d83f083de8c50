"""Dagster definitions for ingestion: landing-day partitions, raw assets, checks, sensor, job."""

import datetime as dt
import hashlib
import json
import time
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from dagster_duckdb import DuckDBResource

from ingest import (
    IngestError,
    LoadStats,
    ensure_raw_schema,
    find_landing_days,
    load_landing_days,
    quality,
)
from ingest.byo import ByoMapping
from ingest.history import DEFAULT_BATCH_ROWS, HistoryStats, load_history
from ingest.schema import HISTORY_SOURCE, SOURCES
from orchestration import warmup
from orchestration.resources import PathsResource, schedule_default, sensor_default

landing_days = dg.DynamicPartitionsDefinition(name="landing_days")

RAW_KEYS = {source: dg.AssetKey(["raw", source]) for source in SOURCES}

_DESCRIPTIONS = {
    "accounts": "CRM account snapshots (accounts.csv, first day and Mondays), typed and validated.",
    "users": "Portal user snapshots (users.csv), typed and validated.",
    "outcomes": "Account outcomes (churned/renewed/expanded/contracted) by effective date.",
    "events": "Portal events, deduplicated by message id; late events keep their own date. "
    "Bad lines go to raw.quarantine, opted-out users and non-consenting accounts are dropped.",
}


def _specs() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            key,
            description=_DESCRIPTIONS[source],
            group_name="raw",
            kinds={"duckdb"},
            # Events are checked against the same day's snapshots (known ids, consent, opt-outs).
            deps=[RAW_KEYS["accounts"], RAW_KEYS["users"]] if source == "events" else [],
        )
        for source, key in RAW_KEYS.items()
    ]


def _check_specs() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(name, asset=RAW_KEYS[source], blocking=blocking)
        for source, checks in quality.CHECKS.items()
        for name, blocking in checks
    ]


def _metadata(source: str, days: list[LoadStats], seconds: float) -> dict:
    stats = [d.sources[source] for d in days]
    by_reason: dict[str, int] = {}
    for s in stats:
        for reason, n in s.quarantined_by_reason.items():
            by_reason[reason] = by_reason.get(reason, 0) + n
    meta = {
        "landing_days": len(days),
        "first_day": days[0].landing_date.isoformat() if days else "",
        "last_day": days[-1].landing_date.isoformat() if days else "",
        "files": sum(s.files for s in stats),
        "rows_read": sum(s.rows_read for s in stats),
        "rows_loaded": sum(s.rows_loaded for s in stats),
        "rows_quarantined": sum(s.rows_quarantined for s in stats),
        "quarantined_by_reason": dg.MetadataValue.json(by_reason),
        "bytes_read": sum(s.bytes_read for s in stats),
        "seconds": round(seconds, 2),
    }
    if source == "events":
        loaded = sum(s.rows_loaded for s in stats)
        meta |= {
            "duplicates_dropped": sum(s.duplicates_dropped for s in stats),
            "late_events": sum(s.late_events for s in stats),
            "opted_out_dropped": sum(s.opted_out_dropped for s in stats),
            "events_per_second": round(loaded / seconds) if seconds else 0,
        }
    return meta


def _quarantine_examples(con, source: str, days: list[dt.date]) -> dg.MetadataValue:
    """Up to two quarantined rows per reason (file:line and detail) of these days."""
    rows = con.execute(
        """
        select reason, source_file || ':' || source_line as loc, detail
        from raw.quarantine where source = $source and list_contains($days, landing_date)
        qualify row_number() over (partition by reason order by source_file, source_line) <= 2
        order by reason, loc limit 16
        """,
        {"source": source, "days": days},
    ).fetchall()
    lines = ["| reason | file:line | detail |", "|---|---|---|"]
    lines += [f"| {r} | `{a}` | {d} |" for r, a, d in rows]
    return dg.MetadataValue.md("\n".join(lines))


# With this file in EA_CONFIG_DIR, landing folders may carry exports in its format (loaded as
# the day's events through it, beside any events*.jsonl.gz).
LANDING_MAPPING_FILE = "event_mapping.yml"


def landing_mapping(config_dir: Path) -> ByoMapping | None:
    """The mapping landing folders' exports load through, if the team has set one up."""
    path = Path(config_dir) / LANDING_MAPPING_FILE
    if not path.is_file():
        return None
    try:
        return ByoMapping.from_yaml(path)
    except IngestError as exc:
        raise dg.Failure(description=f"{path}: {exc}") from exc


@dg.multi_asset(
    name="raw_landing",
    specs=_specs(),
    check_specs=_check_specs(),
    partitions_def=landing_days,
    # A backfill of hundreds of days runs as ONE run that loads the range in date order.
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=False,
)
def raw_landing(context: dg.AssetExecutionContext, duckdb: DuckDBResource, paths: PathsResource):
    """Load the selected landing days (never half a day) and validate what was loaded."""
    dates = sorted(dt.date.fromisoformat(k) for k in context.partition_keys)
    started = time.perf_counter()
    mapping = landing_mapping(paths.config)
    # The checks below need GX; a landed day's run scores next: import both while DuckDB loads.
    groups: dict = {"quality": (quality.prepare,)}
    if context.run.job_name == LANDING_DAY_JOB:
        groups["ml"] = warmup.ML_MODULES
    warmup.warm_up(groups)
    with duckdb.get_connection() as con:
        ensure_raw_schema(con)
        try:
            # Batched and set-based: a 400-day backfill is a handful of transactions.
            loaded = load_landing_days(con, paths.landing, dates, mapping=mapping)
        except IngestError as exc:
            raise dg.Failure(
                description=str(exc),
                metadata={"days_requested": len(dates), "first_day": dates[0].isoformat()},
            ) from exc
        seconds = time.perf_counter() - started
        context.log.info(f"loaded {len(loaded)} landing day(s) in {seconds:.1f}s")
        examples = {s: _quarantine_examples(con, s, dates) for s in SOURCES}
        warmup.wait("quality")
        checks = {s: quality.SUITES[s](con, dates) for s in SOURCES}
    for source in SOURCES:
        meta = _metadata(source, loaded, seconds)
        meta["quarantine_examples"] = examples[source]
        yield dg.MaterializeResult(asset_key=RAW_KEYS[source], metadata=meta)
    for source in SOURCES:
        for r in checks[source]:
            yield dg.AssetCheckResult(
                asset_key=RAW_KEYS[source],
                check_name=r.name,
                passed=r.passed,
                severity=dg.AssetCheckSeverity.ERROR if r.blocking else dg.AssetCheckSeverity.WARN,
                description=r.description,
                metadata={
                    "checked_rows": r.checked_rows,
                    "rows_in_scope": r.rows_in_scope,
                    "scope": r.scope,
                    "unexpected_count": r.unexpected_count,
                    "failing_examples": dg.MetadataValue.json(r.examples),
                },
            )


ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets(*RAW_KEYS.values()),
    partitions_def=landing_days,
    description="Load landing days into the raw schema (one day, or a range in one run).",
)


def partition_range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run cover the landing days first..last (single-run backfill)."""
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}


def register_landing_days(instance: dg.DagsterInstance, landing_dir: Path) -> list[str]:
    """Add every complete landing folder not yet known as a partition (date order); returns all."""
    found = [d.isoformat() for d in find_landing_days(landing_dir)]
    existing = set(instance.get_dynamic_partitions(landing_days.name))
    missing = [k for k in found if k not in existing]
    if missing:
        instance.add_dynamic_partitions(landing_days.name, missing)
    return found


def _range_request(keys: list[str], run_key: str) -> dg.RunRequest:
    if len(keys) == 1:
        return dg.RunRequest(partition_key=keys[0], run_key=run_key)
    return dg.RunRequest(run_key=run_key, tags=partition_range_tags(keys[0], keys[-1]))


# The job the sensor and the schedule launch: ingestion plus the daily assets in one run, defined
# in orchestration/definitions.py where the whole asset graph is known.
LANDING_DAY_JOB = "landing_day_job"


# Listing a few folders and reading their manifests is cheap; a short interval keeps the time
# from a landed folder to its critical email low (the daemon's sensor loop runs every 5 s).
@dg.sensor(job_name=LANDING_DAY_JOB, minimum_interval_seconds=5, default_status=sensor_default())
def landing_sensor(context: dg.SensorEvaluationContext, paths: PathsResource):
    """Register complete landing folders as partitions and load new or re-exported days.

    New days found together are added in date order and loaded in one range run; a day whose
    manifest changed is re-loaded alone. Each run then builds the daily assets (marts, scores,
    alerts, critical emails, digests). Run keys carry the manifest hash, so nothing launches
    twice for the same files.
    """
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    found = {d.isoformat(): h for d, h in find_landing_days(paths.landing).items()}
    new = sorted(k for k in found if k not in seen)
    changed = sorted(k for k in found if k in seen and seen[k] != found[k])
    if not new and not changed:
        return dg.SkipReason(f"no new or changed landing folders in {paths.landing}")
    existing = set(context.instance.get_dynamic_partitions(landing_days.name))
    to_add = [k for k in new if k not in existing]
    requests = [_range_request([k], f"{k}:{found[k]}") for k in changed]
    if len(new) > 1 and to_add == new:
        # Added together at the end of the partition list, so the range spans exactly them.
        digest = _digest([found[k] for k in new])
        requests.insert(0, _range_request(new, f"{new[0]}..{new[-1]}:{digest}"))
    else:
        requests = [_range_request([k], f"{k}:{found[k]}") for k in new] + requests
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[landing_days.build_add_request(to_add)] if to_add else [],
        cursor=json.dumps(found, sort_keys=True),
    )


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


@dg.schedule(
    job_name=LANDING_DAY_JOB,
    cron_schedule="30 6 * * *",
    execution_timezone="UTC",
    default_status=schedule_default(),
)
def ingest_daily(context: dg.ScheduleEvaluationContext, paths: PathsResource):
    """Each morning, load every complete landing day not loaded yet: days the sensor missed
    and days whose earlier run failed (e.g. a corrupt file since re-exported) are retried,
    with the daily assets in the same run.
    """
    found = {d.isoformat(): h for d, h in find_landing_days(paths.landing).items()}
    if not found:
        return dg.SkipReason(f"no complete landing folders in {paths.landing}")
    register_landing_days(context.instance, paths.landing)
    done = context.instance.get_materialized_partitions(RAW_KEYS["events"])
    pending = [k for k in found if k not in done]
    if not pending:
        return dg.SkipReason("every complete landing day is loaded")
    tick = context.scheduled_execution_time.date().isoformat()
    if len(pending) == 1:
        day = pending[0]
        return dg.RunRequest(partition_key=day, run_key=f"{day}:{found[day]}:{tick}")
    # One run over the span; days in it that are already loaded re-load to the same rows.
    digest = _digest([f"{k}:{found[k]}" for k in pending])
    return _range_request(pending, f"{pending[0]}..{pending[-1]}:{digest}:{tick}")


HISTORY_KEY = dg.AssetKey(["raw", "history"])


class HistoryConfig(dg.Config):
    """Run config of `load_history_job`: the mapping file and the export files or folders."""

    mapping: str = ""
    paths: list[str] = []
    batch_rows: int = DEFAULT_BATCH_ROWS
    through: str = ""  # YYYY-MM-DD: the export's last day; later events are quarantined


def _resolve(path: str, base: Path) -> Path:
    """An absolute path, a path from the current folder, or one inside `base` (the config dir)."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    return base / p


def _history_metadata(stats: HistoryStats) -> dict:
    day = lambda d: d.isoformat() if d else ""  # noqa: E731
    return {
        "files": dg.MetadataValue.md(
            "\n".join(
                ["| file | bytes | rows | with a problem | event days | ignored columns |",
                 "|---|---:|---:|---:|---|---|"]
                + [
                    f"| `{f.name}` | {f.bytes:,} | {f.rows:,} | {f.rows - f.good_rows:,} | "
                    f"{day(f.first_date)}..{day(f.last_date)} | "
                    f"{', '.join(f.ignored_columns) or '-'} |"
                    for f in stats.files
                ]
            )
        ),
        "first_day": day(stats.first_day),
        "last_day": day(stats.last_day),
        "history_covers": f"{day(stats.covered_from)}..{day(stats.covered_to)}",
        "batches": stats.batches,
        "bytes_read": stats.bytes_read,
        "rows_read": stats.rows_read,
        "rows_loaded": stats.rows_loaded,
        "rows_quarantined": stats.rows_quarantined,
        "quarantined_by_reason": dg.MetadataValue.json(stats.quarantined_by_reason),
        "duplicates_dropped": stats.duplicates_dropped,
        "opted_out_dropped": stats.opted_out_dropped,
        "quiet_gaps": dg.MetadataValue.json([[day(a), day(b)] for a, b in stats.quiet_gaps]),
        "seconds": stats.seconds,
        "events_per_second": round(stats.rows_read / stats.seconds) if stats.seconds else 0,
    }  # fmt: skip


@dg.asset(
    key=HISTORY_KEY,
    group_name="raw",
    kinds={"duckdb"},
    description="A whole event history (CSV, Parquet, JSON Lines or text exports, through a "
    "mapping file) loaded into raw.events by event date: every day from its first to its last "
    "event is a landed day (raw.landed_partitions source 'history'). Same classification, "
    "dedupe and quarantine as landing days; re-running with the same files changes nothing.",
    check_specs=[
        dg.AssetCheckSpec(name, asset=HISTORY_KEY, blocking=blocking)
        for name, blocking in quality.CHECKS["events"]
    ],
)
def raw_history(
    context: dg.AssetExecutionContext,
    config: HistoryConfig,
    duckdb: DuckDBResource,
    paths: PathsResource,
):
    """Load the configured export files (same as `ea load-history`), then check what loaded."""
    if not config.mapping or not config.paths:
        raise dg.Failure(
            "load_history_job needs run config: ops: raw__history: config: {mapping: "
            "<mapping file>, paths: [<export file or folder>, ...]}"
        )
    try:
        mapping = ByoMapping.from_yaml(_resolve(config.mapping, paths.config))
        with duckdb.get_connection() as con:
            stats = load_history(
                con,
                [_resolve(p, paths.data) for p in config.paths],
                mapping,
                batch_rows=config.batch_rows,
                progress=context.log.info,
                through=dt.date.fromisoformat(config.through) if config.through else None,
            )
            days = (
                [stats.first_day + dt.timedelta(days=i)
                 for i in range((stats.last_day - stats.first_day).days + 1)]
                if stats.first_day else []
            )  # fmt: skip
            examples = _quarantine_examples(con, HISTORY_SOURCE, days)
            checks = quality.SUITES["events"](con, days) if days else []
    except IngestError as exc:
        raise dg.Failure(description=str(exc)) from exc
    meta = _history_metadata(stats)
    meta["quarantine_examples"] = examples
    yield dg.MaterializeResult(asset_key=HISTORY_KEY, metadata=meta)
    for r in checks:
        yield dg.AssetCheckResult(
            asset_key=HISTORY_KEY,
            check_name=r.name,
            passed=r.passed,
            severity=dg.AssetCheckSeverity.ERROR if r.blocking else dg.AssetCheckSeverity.WARN,
            description=r.description,
            metadata={
                "checked_rows": r.checked_rows,
                "rows_in_scope": r.rows_in_scope,
                "scope": r.scope,
                "unexpected_count": r.unexpected_count,
                "failing_examples": dg.MetadataValue.json(r.examples),
            },
        )


load_history_job = dg.define_asset_job(
    "load_history_job",
    selection=dg.AssetSelection.assets(HISTORY_KEY),
    description="Load a whole event history by event date (run config: mapping, paths); then run "
    "full_pipeline_job (first time) or daily_job for the marts and everything after them.",
)

defs = dg.Definitions(
    assets=[raw_landing, raw_history],
    jobs=[ingest_job, load_history_job],
    sensors=[landing_sensor],
    schedules=[ingest_daily],
)
