"""One benchmark stage in its own process, so the parent can read its wall time and peak memory.

Run by bench.run as `python -m bench.stage <stage> --work DIR [--days ...]`; the environment
(EA_*, DUCKDB_DATABASE, MLFLOW_TRACKING_URI, DAGSTER_HOME, SMTP_*) is set by the parent. The
last stdout line is a JSON object with the stage's own figures (rows, events, ...).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _pipeline():
    """The project's definitions plus two bench-only asset jobs (scoring, rule evaluation)."""
    import dagster as dg

    from orchestration.definitions import defs
    from orchestration.demo import Demo

    extra = dg.Definitions(
        jobs=[
            dg.define_asset_job(
                "bench_scoring_job",
                selection=dg.AssetSelection.assets(
                    ["ml", "account_scores"], ["ml", "anomalies"], ["ml", "segments"]
                ),
            ),
            dg.define_asset_job(
                "bench_rules_job", selection=dg.AssetSelection.assets(["alerts", "alerts"])
            ),
            # The delivery path of a daily run (the deliveries group also holds weekly KPI mail
            # and more): critical emails first, as landing_day_job sends them, so that the
            # blocking check `critical_alerts_delivered` on the outbox judges what the product does.
            dg.define_asset_job(
                "bench_digests_job",
                selection=dg.AssetSelection.assets(
                    ["ops", "critical_alerts"],
                    ["ops", "crm_tasks"],
                    ["ops", "digests"],
                    ["ops", "outbox"],
                ),  # fmt: skip
            ),
        ]
    )
    merged = dg.Definitions.merge(defs, extra)
    return Demo(merged, dg.DagsterInstance.get())


def _execute(demo, job_name: str, ops_config: dict | None = None, tolerate: str = "") -> list:
    """Like Demo.run, with op config; step keys ending in `tolerate` may fail (returned)."""
    job = demo.defs.resolve_job_def(job_name)
    result = job.execute_in_process(
        run_config={**QUIET, "ops": ops_config or {}}, instance=demo.instance, raise_on_error=False
    )
    failed = [
        (e.step_key, e.event_specific_data.error.message.strip()[:800])
        for e in result.all_events
        if e.is_step_failure and e.event_specific_data and e.event_specific_data.error
    ]
    fatal = [f for f in failed if not (tolerate and f[0].endswith(tolerate))]
    if fatal or (not result.success and not failed):
        raise SystemExit(f"{job_name} failed:\n" + "\n".join(f"{k}: {m}" for k, m in fatal))
    return [k for k, _ in failed]


def _days(text: str) -> list[dt.date]:
    first, _, last = text.partition("..")
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last or first)
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _landed(days: list[dt.date]) -> list[dt.date]:
    landing = Path(os.environ["EA_LANDING_DIR"])
    return [d for d in days if (landing / d.isoformat() / "_manifest.json").exists()]


def _count(sql: str) -> int:
    import duckdb

    con = duckdb.connect(os.environ["DUCKDB_DATABASE"], read_only=True)
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


def simulate(args) -> dict:
    from simulator import SimConfig, simulate

    cfg = SimConfig(
        accounts=args.accounts,
        start=dt.date.fromisoformat(args.start),
        end=dt.date.fromisoformat(args.end),
        seed=args.seed,
    )
    summary = simulate(cfg, Path(args.out))
    return {"events": summary.events_written, "users": summary.users}


def ingest(args) -> dict:
    days = _landed(_days(args.days))
    _pipeline().ingest(days)
    return {
        "days": len(days),
        "raw_events": _count("select count(*) from raw.events"),
    }


def marts(args) -> dict:
    config = {"full_refresh": bool(args.full_refresh)}
    demo = _pipeline()
    _execute(demo, "marts_job", {"marts_dbt": {"config": config}})
    run_id = demo.instance.get_runs(limit=1)[0].run_id
    return {
        "dbt_slowest": _dbt_slowest(run_id),
        "account_days": _count("select count(*) from marts.fct_account_daily_engagement"),
        "health_rows": _count("select count(*) from marts.account_health"),
    }


def _dbt_slowest(run_id: str, top: int = 4) -> str:
    """The slowest dbt nodes of this run (dagster-dbt keeps run_results.json per invocation)."""
    # The marts asset keeps one dbt target folder per warehouse (partial parsing between runs);
    # older versions used dagster-dbt's folder per run.
    stable = Path(os.environ["EA_DATA_DIR"]) / "dbt_target" / "marts" / "run_results.json"
    target = REPO / "dbt_project" / "target"
    found = sorted(target.glob(f"marts_dbt-{run_id[:7]}-*/run_results.json"))
    found = [stable] if stable.exists() else found
    if not found:
        return "run_results.json not found"
    doc = json.loads(found[-1].read_text())
    nodes = sorted(doc["results"], key=lambda r: -(r.get("execution_time") or 0))[:top]
    slowest = "; ".join(
        f"{r['unique_id'].split('.')[-1]} {r['execution_time']:.1f}s" for r in nodes
    )
    return f"dbt {doc['elapsed_time']:.1f}s for {len(doc['results'])} nodes; slowest: {slowest}"


def train(args) -> dict:
    """Both models trained; a model the promotion gate refuses is promoted here anyway, in the
    bench's own throwaway registry, so that scoring can be timed (the report says so)."""
    from ml import registry

    demo = _pipeline()
    refused = [
        k.replace("_promote_if_better", "")
        for k in _execute(demo, "training_job", tolerate="promote_if_better")
    ]
    forced = []
    uri = os.environ["MLFLOW_TRACKING_URI"]
    for model, name in registry.REGISTERED_NAMES.items():
        if registry.champion_version(uri, name) is None:
            event = demo.instance.get_latest_materialization_event(dg_key(["ml", f"{model}_model"]))
            version = event.asset_materialization.metadata["version"].value
            registry.promote(uri, name, str(version))
            forced.append(model)
    return {
        "training_rows": _count("select count(*) from marts.ml_features"),
        "gate_refused": ",".join(k.split("__")[1] for k in refused) or "none",
        "promoted_by_bench": ",".join(forced) or "none",
    }


def dg_key(path: list[str]):
    import dagster as dg

    return dg.AssetKey(path)


def score(args) -> dict:
    _pipeline().run("bench_scoring_job")
    return {"scores": _count("select count(*) from ml.account_scores")}


def rules(args) -> dict:
    _pipeline().run("bench_rules_job")
    return {"alerts": _count("select count(*) from alerts.alerts")}


def digests(args) -> dict:
    """Critical emails, CRM tasks, digests and the outbox with its checks; a failed blocking
    check fails the stage. Counts what the capture server received and the check's outcome."""
    result = _pipeline().run("bench_digests_job")
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    mail = Path(os.environ["BENCH_MAIL_DIR"])  # the tier's capture server stores mail here
    emails = [p.read_text(errors="replace") for p in mail.glob("*.eml")]
    return {
        "emails_captured": len(emails),
        "critical_emails": sum("Subject: Critical:" in e for e in emails),
        "critical_alerts": _count("select count(*) from alerts.alerts where severity = 'critical'"),
        "critical_alerts_delivered": checks.get("critical_alerts_delivered"),
    }


def publish(args) -> dict:
    """The analyst database published from the tier's warehouse, as a run's last step does."""
    import duckdb

    from orchestration.resources import duckdb_memory_limit
    from warehouse.analytics import publish_analyst_database

    warehouse = Path(os.environ["DUCKDB_DATABASE"])
    target = Path(os.environ["EA_DATA_DIR"]) / "analyst.duckdb"
    con = duckdb.connect(str(warehouse), config={"memory_limit": duckdb_memory_limit()})
    try:
        result = publish_analyst_database(con, target, "bench")
    finally:
        con.close()
    return {
        "publish_seconds": round(result.seconds, 3),
        "analyst_rows": sum(result.rows.values()),
        "analyst_mib": round(result.bytes / 2**20, 1),
        "warehouse_mib": round(warehouse.stat().st_size / 2**20, 1),
    }


def rules_10k(args) -> dict:
    """bench/rules_10k.py (the alerts engineer's) on 10,000 synthetic accounts, two days."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.rules_10k", "--accounts", "10000"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    seconds = [float(s) for s in re.findall(r"seconds=([0-9.]+)", out)]
    if len(seconds) != 2:
        raise SystemExit(f"bench.rules_10k printed no timings:\n{out}")
    return {"day1_seconds": seconds[0], "day2_seconds": seconds[1]}


def ref_duckdb(args) -> dict:
    from bench.references import duckdb_single_pass

    return {"rows": duckdb_single_pass(Path(args.landing), day=args.day or None)}


def ref_pandas(args) -> dict:
    from bench.references import pandas_daily

    return {"rows": pandas_daily(Path(args.landing))}


def history(args) -> dict:
    """`ea load-history` of one export file into a warehouse of its own (no CRM snapshot)."""
    import duckdb

    from ingest.byo import ByoMapping
    from ingest.history import load_history

    mapping = ByoMapping.from_yaml(Path(args.mapping))
    limit = os.environ.get("EA_DUCKDB_MEMORY_LIMIT") or "2GB"
    with duckdb.connect(args.database, config={"memory_limit": limit}) as con:
        through = dt.date.fromisoformat(args.through) if args.through else None
        stats = load_history(con, [Path(args.file)], mapping, progress=print, through=through)
        days = con.execute(
            "select count(*) from raw.landed_partitions where source = 'history'"
        ).fetchone()[0]
    return {
        "file_gib": round(Path(args.file).stat().st_size / 2**30, 3),
        "rows_read": stats.rows_read,
        "rows_loaded": stats.rows_loaded,
        "rows_quarantined": stats.rows_quarantined,
        "duplicates_dropped": stats.duplicates_dropped,
        "batches": stats.batches,
        "history_days": days,
        "memory_limit": limit,
        "rows_per_second": round(stats.rows_read / stats.seconds) if stats.seconds else 0,
    }


# The models both engines build (as tests/spark/test_engines_equal.py compares them): data tests
# run on DuckDB only, and the outcomes models need the ML schema, which Spark does not hold.
SPARK_SELECTION = (
    "--resource-type", "model", "--resource-type", "seed", "--exclude", "path:models/outcomes",
)  # fmt: skip


def _dbt(target: str, work: Path, args: list[str]) -> float:
    """One dbt command on `target` in its own process (as the Spark test runs it); seconds."""
    dbt = Path(sys.executable).with_name("dbt")
    env = {**os.environ, "EA_DBT_TARGET": target, "EA_SPARK_DIR": str(work / "spark")}
    started = time.perf_counter()
    result = subprocess.run(
        [str(dbt), *args, "--project-dir", str(REPO / "dbt_project"), "--profiles-dir",
         str(REPO / "dbt_project"), "--target-path", str(work / f"dbt_target_{target}"),
         "--log-path", str(work / "logs")],
        cwd=work, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"dbt {args[0]} on {target} failed:\n{result.stdout[-3000:]}")
    return time.perf_counter() - started


def spark(args) -> dict:
    """The marts built from the same raw rows by DuckDB and by Spark (local mode, this machine):
    a full refresh of every model on each engine, timed as separate dbt processes."""
    import duckdb

    from orchestration.asof import resolve_as_of
    from orchestration.defs.marts import (
        build_window,
        dbt_build_args,
        dbt_vars,
        load_health_config,
        warehouse_state,
    )
    from orchestration.engine import export_raw_to_parquet

    work = Path(os.environ["EA_DATA_DIR"]) / "spark_bench"
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with duckdb.connect(os.environ["DUCKDB_DATABASE"]) as con:
        counts = export_raw_to_parquet(con, work / "spark" / "raw")
        # What the marts asset reads before a build: the as-of date and the landed history.
        as_of = resolve_as_of(con)
        first, _, accounts = warehouse_state(con)
    export_s = time.perf_counter() - started
    # A full refresh exactly as the marts asset runs one (its window, batch size and vars), so
    # both engines build what the pipeline builds; without them dbt's default is a day batch.
    window = build_window(as_of, first, None, full_refresh=True, accounts=accounts)
    health = load_health_config(Path(os.environ["EA_CONFIG_DIR"]))
    build = [*dbt_build_args(window, dbt_vars(as_of, window, first, health)), *SPARK_SELECTION]
    duck_s = _dbt("duckdb", work, build)
    spark_s = _dbt("spark", work, build)
    return {
        "raw_events": counts["events"],
        "export_seconds": round(export_s, 2),
        "dbt_duckdb_seconds": round(duck_s, 2),
        "dbt_spark_seconds": round(spark_s, 2),
        "spark_vs_duckdb": round(spark_s / duck_s, 2),
        "batch_size": window.batch_size,
        "spark_driver_memory": os.environ.get("EA_SPARK_DRIVER_MEMORY", "1g"),
    }


STAGES = {
    "simulate": simulate,
    "spark": spark,
    "ingest": ingest,
    "marts": marts,
    "train": train,
    "score": score,
    "rules": rules,
    "digests": digests,
    "publish": publish,
    "rules_10k": rules_10k,
    "ref_duckdb": ref_duckdb,
    "ref_pandas": ref_pandas,
    "history": history,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--days", default="", help="first..last landing day (ingest)")
    parser.add_argument("--full-refresh", action="store_true")
    parser.add_argument("--landing", default="")
    parser.add_argument("--day", default="", help="one landing day only (ref_duckdb)")
    parser.add_argument("--out", default="")
    parser.add_argument("--accounts", type=int, default=0)
    parser.add_argument("--start", default="")
    parser.add_argument("--end", default="")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--file", default="", help="the export to load (history)")
    parser.add_argument("--mapping", default="", help="its mapping file (history)")
    parser.add_argument("--database", default="", help="the warehouse to load into (history)")
    parser.add_argument("--through", default="", help="the export's last day (history)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    figures = STAGES[args.stage](args)
    figures["inner_seconds"] = round(time.perf_counter() - started, 3)
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
