"""Dagster definitions for the marts stage: the dbt project as assets, its tests as checks."""

import dataclasses
import datetime as dt
import importlib.metadata
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)
from dagster_duckdb import DuckDBResource
from packaging import version

from orchestration.asof import AsOfConfig, resolve_as_of
from orchestration.engine import export_raw_to_parquet, load_spark_tables, spark_dir_layout
from orchestration.resources import PathsResource
from warehouse.catalog import table_exists

DBT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
# The dbt next to this interpreter, so a venv works without being activated.
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))
HEALTH_CONFIG_FILE = "health_score.yml"
# Late events arrive at most 5 days after their event date; every run rebuilds that many days.
LOOKBACK_DAYS = 5
# Microbatch sizes: a daily run (up to this many days) rebuilds whole months in one statement per
# model instead of one per day (each statement re-reads the 90-day look-back of account_health);
# longer runs (first run, full refresh, catch-up) use year-sized batches. The rows are the same.
DAILY_BATCH_LIMIT_DAYS = 31
# A year batch of account_health holds accounts x 365 account-days of window state at once; above
# this many (e.g. CDNOW's 23,570 customers) month batches keep a full build within DuckDB's
# memory limit. The large benchmark tier (5,000 accounts) still builds in year batches.
YEAR_BATCH_MAX_ACCOUNT_DAYS = 3_000_000
# The engine dbt builds on: `duckdb` (default) or `spark` (Spark extra; dbt_project/profiles.yml).
ENGINES = ("duckdb", "spark")
DBT_TARGET = os.environ.get("EA_DBT_TARGET", "duckdb").strip() or "duckdb"
if DBT_TARGET not in ENGINES:
    raise RuntimeError(f"EA_DBT_TARGET={DBT_TARGET!r}: set it to one of {', '.join(ENGINES)}")
# Spark's embedded Derby metastore takes one process at a time: dbt runs share this pool, whose
# limit must be 1 (`dagster instance concurrency set dbt_spark 1`, or `concurrency: pools:
# default_limit: 1` in dagster.yaml). On DuckDB the single-writer lock already serialises them.
SPARK_POOL = "dbt_spark"
MARTS = (
    "fct_account_daily_engagement",
    "account_health",
    "dim_accounts",
    "dim_accounts_history",
    "ml_features",
    "feature_adoption",
    "data_freshness",
    "account_dormancy",
)


def _prepare_manifest(project: DbtProject) -> None:
    """Write target/manifest.json with `dbt parse` so the definitions load on a fresh clone."""
    # Parsing opens no database; the profile only needs the variable to exist.
    env = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **os.environ}
    env.setdefault("DUCKDB_DATABASE", str(DBT_DIR / "target" / "parse-only.duckdb"))
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            "parse",
            "--quiet",
            "--project-dir",
            str(DBT_DIR),
            "--profiles-dir",
            str(DBT_DIR),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not project.manifest_path.exists():
        raise RuntimeError(
            f"`dbt parse` failed in {DBT_DIR}; fix the dbt project (run `dbt parse` there to "
            f"see the error):\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )


def _manifest_is_stale(project: DbtProject) -> bool:
    """No manifest yet, or a project file changed after it was written (a fresh clone, an edit)."""
    manifest = project.manifest_path
    if not manifest.exists():
        return True
    written = manifest.stat().st_mtime
    sources = [DBT_DIR / "dbt_project.yml"] + [
        path
        for folder in ("models", "macros", "seeds", "tests")
        for path in (DBT_DIR / folder).rglob("*")
        if path.is_file()
    ]
    return any(path.stat().st_mtime > written for path in sources)


dbt_project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)
if _manifest_is_stale(dbt_project):
    _prepare_manifest(dbt_project)
else:
    dbt_project.prepare_if_dev()


class LeanDbtCliResource(DbtCliResource):
    """DbtCliResource without two start-up costs paid before every dbt command (about 3-7 s).

    dagster-dbt asks a `dbt --version` process which dbt it runs, and loads a dbt adapter into
    this process; the adapter only serves optional row-count and column metadata, which these
    assets do not fetch (they read their own counts after dbt has released the warehouse).
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        # DBT_EXECUTABLE is the dbt of this interpreter's environment, so its version is ours
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args):  # noqa: ARG002 - dagster-dbt's signature
        return None


class MartsTranslator(DagsterDbtTranslator):
    """Keys ["<schema>", "<name>"] (sources ["raw", "<table>"]); groups by schema folder."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return dbt_resource_props["schema"]


class MartsConfig(AsOfConfig):
    """Run config: the as-of date (empty = latest landed day) and an optional full rebuild."""

    full_refresh: bool = False


@dataclasses.dataclass(frozen=True)
class BuildWindow:
    """Which days the incremental (microbatch) models rebuild in one run."""

    start: dt.date
    end: dt.date  # exclusive: the day after the as-of date
    batch_size: str
    full_refresh: bool


def build_window(
    as_of: dt.date,
    first_landed: dt.date,
    latest_built: dt.date | None,
    full_refresh: bool = False,
    accounts: int = 0,
) -> BuildWindow:
    """The days to (re)build: everything on a first run or a full refresh, else the days since
    the last built day plus LOOKBACK_DAYS before them (late events). `accounts` (how many the
    warehouse has) picks month batches for long builds that would not fit a year batch.
    """
    if full_refresh or latest_built is None:
        start, full_refresh = first_landed, True
    else:
        start = min(latest_built + dt.timedelta(days=1), as_of) - dt.timedelta(days=LOOKBACK_DAYS)
        start = max(start, first_landed)
    end = as_of + dt.timedelta(days=1)
    if (end - start).days > DAILY_BATCH_LIMIT_DAYS:
        year_days = accounts * min((end - start).days, 366)
        batch_size = "month" if year_days > YEAR_BATCH_MAX_ACCOUNT_DAYS else "year"
    elif latest_built is not None and latest_built > as_of and not full_refresh:
        # replaying an older day: a month batch would delete the later days of its month that
        # this run does not rebuild, so only the window's own days are replaced
        batch_size = "day"
    else:
        batch_size = "month"
    return BuildWindow(start=start, end=end, batch_size=batch_size, full_refresh=full_refresh)


def dbt_vars(
    as_of: dt.date, window: BuildWindow, first_landed: dt.date, health: Mapping | None
) -> dict[str, Any]:
    """The --vars of a run; `health` is config/health_score.yml (None = dbt_project defaults)."""
    out: dict[str, Any] = {
        "as_of_date": as_of.isoformat(),
        "history_start": first_landed.isoformat(),
        "microbatch_size": window.batch_size,
    }
    if health is not None:
        out["health_score"] = dict(health)
    return out


def dbt_build_args(window: BuildWindow, variables: Mapping[str, Any]) -> list[str]:
    """`dbt build` arguments for one run (dagster-dbt adds the selection)."""
    args = [
        "build",
        "--vars",
        json.dumps(variables, sort_keys=True),
        "--event-time-start",
        window.start.isoformat(),
        "--event-time-end",
        window.end.isoformat(),
    ]
    if window.full_refresh:
        args.append("--full-refresh")
    else:
        # dbt unit tests check the SQL, not the day's data: they run on full refreshes and in CI
        args += ["--exclude-resource-type", "unit_test"]
    return args


def load_health_config(config_dir: Path) -> dict[str, Any]:
    """Read the health-score weights the team edits; errors say which file to fix."""
    path = config_dir / HEALTH_CONFIG_FILE
    if not path.is_file():
        raise dg.Failure(
            f"{path} is missing: copy config/{HEALTH_CONFIG_FILE} from the repository into "
            "EA_CONFIG_DIR (it holds the health-score weights and tiers)."
        )
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise dg.Failure(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict) or not isinstance(loaded.get("components"), dict):
        raise dg.Failure(f"{path} must be a mapping with a `components` section.")
    return loaded


def warehouse_state(con) -> tuple[dt.date | None, dt.date | None, int]:
    """(first landed events day, last as_of_date in marts.account_health, about how many
    accounts the events hold).
    """
    first = con.execute(
        "select min(landing_date) from raw.landed_partitions where source in ('events', 'history')"
    ).fetchone()[0]
    exists = table_exists(con, "marts", "account_health")
    latest = (
        con.execute("select max(as_of_date) from marts.account_health").fetchone()[0]
        if exists
        else None
    )
    accounts = con.execute("select approx_count_distinct(account_id) from raw.events").fetchone()[0]
    return first, latest, int(accounts or 0)


def _mart_metadata(con, as_of: dt.date) -> dict[str, dict[str, Any]]:
    """Row counts and a few examples per mart, read after dbt has released the database."""
    existing = {
        name
        for (name,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'marts'"
        ).fetchall()
    }
    names = [name for name in MARTS if name in existing]
    out: dict[str, dict[str, Any]] = {}
    if names:
        # one statement for every row count
        counts = con.execute(
            " union all ".join(f"select '{name}', count(*) from marts.{name}" for name in names)
        ).fetchall()
        out = {name: {"rows": rows} for name, rows in counts}
    if "account_health" in out:
        tiers = con.execute(
            "select health_tier, count(*) from marts.account_health where as_of_date = ? "
            "group by 1 order by 1",
            [as_of],
        ).fetchall()
        worst = con.execute(
            "select account_id, health_score, health_tier from marts.account_health "
            "where as_of_date = ? order by health_score, account_id limit 5",
            [as_of],
        ).fetchall()
        out["account_health"] |= {
            "accounts_on_as_of_date": sum(n for _, n in tiers),
            "tiers_on_as_of_date": dg.MetadataValue.json(dict(tiers)),
            "lowest_scores": dg.MetadataValue.md(
                "\n".join(
                    ["| account | score | tier |", "|---|---|---|"]
                    + [f"| {a} | {s} | {t} |" for a, s, t in worst]
                )
            ),
        }
    if "ml_features" in out:
        observable = con.execute(
            "select count(*) from marts.ml_features where is_label_observable"
        ).fetchone()[0]
        out["ml_features"]["label_observable_rows"] = observable
    if "data_freshness" in out:
        missing = con.execute(
            "select activity_date from marts.data_freshness where not is_landed "
            "order by activity_date desc limit 10"
        ).fetchall()
        out["data_freshness"]["days_not_landed"] = ", ".join(str(d) for (d,) in missing) or "none"
    return out


# This stage owns these folders; other stages may add their own folders (and @dbt_assets) to the
# same project, built when their inputs exist.
MARTS_SELECTION = "path:seeds path:models/staging path:models/intermediate path:models/marts"


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    name="marts_dbt",
    select=MARTS_SELECTION,
    pool=SPARK_POOL if DBT_TARGET == "spark" else None,
    dagster_dbt_translator=MartsTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
    ),
)
def marts_dbt(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    duckdb: DuckDBResource,
    paths: PathsResource,
    config: MartsConfig,
) -> Iterator[Any]:
    """`dbt build` of the selected models as of the run's date; dbt tests become asset checks."""
    health = load_health_config(paths.config)
    # Read what we need and close the connection: dbt needs DuckDB's single writer lock.
    with duckdb.get_connection() as con:
        as_of = resolve_as_of(con, config)
        first_landed, latest_built, accounts = warehouse_state(con)
    if first_landed is None:
        raise dg.Failure("raw.landed_partitions has no events day: run the ingestion assets first.")
    window = build_window(as_of, first_landed, latest_built, config.full_refresh, accounts)
    spark = spark_dir_layout(_spark_dir(paths)) if DBT_TARGET == "spark" else None
    exported: dict[str, int] = {}
    if spark:
        # Spark reads the validated raw tables as Parquet (macros/raw_sources.sql)
        with duckdb.get_connection() as con:
            exported = export_raw_to_parquet(con, spark["raw"])
    variables = dbt_vars(as_of, window, first_landed, health)
    if not config.as_of_date:
        # dbt's own default is the same day (latest landed); leaving the var out keeps --vars
        # identical from day to day, so dbt can parse partially instead of from scratch.
        variables.pop("as_of_date")
    args = dbt_build_args(window, variables)
    context.log.info(f"dbt {' '.join(args)}")
    started = time.perf_counter()
    # A stable target folder per warehouse lets dbt re-use its partial parse between daily runs
    # (dagster-dbt's default is a fresh folder per run, which re-parses the whole project).
    target = paths.data / "dbt_target" / "marts"
    common = {
        "as_of_date": as_of.isoformat(),
        "rebuilt_from": window.start.isoformat(),
        "batch_size": window.batch_size,
        "full_refresh": window.full_refresh,
        "engine": DBT_TARGET,
    }
    # Staging and intermediate results (and their tests) are recorded while dbt still runs, so
    # the event log's writes overlap dbt's work; the marts' results wait for their row counts,
    # which need the database after dbt has let go of it. Each asset's checks follow it.
    held: list[Any] = []
    released: set[dg.AssetKey] = set()
    for event in dbt.cli(args, context=context, target_path=target).stream():
        if isinstance(event, dg.Output):
            key = context.asset_key_for_output(event.output_name)
            if key.path[-1] not in MARTS:
                released.add(key)
                yield _with_metadata(event, common)
                continue
        elif isinstance(event, dg.AssetCheckResult) and event.asset_key in released:
            yield event
            continue
        held.append(event)
    seconds = round(time.perf_counter() - started, 2)
    copied: dict[str, int] = {}
    with duckdb.get_connection() as con:
        if spark:
            # later stages read marts.* from DuckDB whichever engine built them
            copied = load_spark_tables(con, spark["warehouse"])
        extra = _mart_metadata(con, as_of)
    common["dbt_seconds"] = seconds
    if spark:
        common |= {
            "raw_rows_exported": sum(exported.values()),
            "spark_tables_copied": len(copied),
        }
    for event in held:
        if isinstance(event, dg.Output):
            key = context.asset_key_for_output(event.output_name)
            yield _with_metadata(event, {**common, **extra.get(key.path[-1], {})})
        else:
            yield event


def _with_metadata(event: dg.Output, extra: Mapping[str, Any]) -> dg.Output:
    return dg.Output(
        value=event.value,
        output_name=event.output_name,
        metadata={**event.metadata, **extra},
        data_version=event.data_version,
        tags=event.tags,
    )


def _spark_dir(paths: PathsResource) -> Path:
    """The Spark target's files; the dbt profile uses the same default (EA_DATA_DIR/spark)."""
    return Path(os.environ.get("EA_SPARK_DIR") or Path(paths.data) / "spark")


marts_job = dg.define_asset_job(
    "marts_job",
    selection=dg.AssetSelection.assets(marts_dbt),
    description="Build the dbt marts as of a date (run config `as_of_date`, empty = latest landed "
    "day); `full_refresh: true` rebuilds all history.",
)

defs = dg.Definitions(
    assets=[marts_dbt],
    jobs=[marts_job],
    resources={
        "dbt": LeanDbtCliResource(
            project_dir=dbt_project,
            profiles_dir=str(DBT_DIR),
            dbt_executable=DBT_EXECUTABLE,
            target=DBT_TARGET,
        )
    },
)
