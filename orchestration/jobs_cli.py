"""`ea job`: run one Dagster job in this process, recorded in the Dagster instance ($DAGSTER_HOME).

The same runs `dagster dev` would launch, without starting it: for example the marts after a
history load (`ea job marts_job`), or the first full run on a new warehouse
(`ea job full_pipeline_job`). Runs are serialised by DuckDB's single writer, so stop other
writers (a running `dagster dev` with sensors on) first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ea job",
        description=__doc__,
        epilog="examples:\n"
        "  ea job --list\n"
        "  ea job marts_job\n"
        "  ea job marts_job --config '{ops: {marts_dbt: {config: {full_refresh: true}}}}'\n"
        "  ea job full_pipeline_job",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", nargs="?", help="the job to run")
    p.add_argument("--config", help="run config as YAML/JSON text, or a YAML file")
    p.add_argument("--list", action="store_true", help="list the jobs and exit")
    return p


def _run_config(text: str | None) -> dict:
    if not text:
        return {}
    path = Path(text)
    loaded = yaml.safe_load(path.read_text() if path.is_file() else text)
    if not isinstance(loaded, dict):
        raise SystemExit(f"--config must be a mapping (YAML or JSON), not {text!r}")
    return loaded


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import dagster as dg

    from orchestration.definitions import defs

    jobs = {
        job.name: job.description or ""
        for job in defs.resolve_all_job_defs()
        if not job.name.startswith("__")
    }
    if args.list or not args.name:
        for name in sorted(jobs):
            print(f"{name}: {jobs[name]}")
        return 0
    if args.name not in jobs:
        print(f"error: no job {args.name!r}; jobs: {', '.join(sorted(jobs))}", file=sys.stderr)
        return 2
    run_config = _run_config(args.config)
    # progress lines (context.log.info) on the console, not every Dagster event
    run_config.setdefault("loggers", {"console": {"config": {"log_level": "INFO"}}})
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def(args.name).execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=False
        )
    seconds = time.perf_counter() - started
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure and event.event_specific_data.error:
                message = event.event_specific_data.error.message.strip()[:2000]
                print(f"error: {event.step_key}: {message}", file=sys.stderr)
        print(f"{args.name} failed after {seconds:.0f}s (run {result.run_id})", file=sys.stderr)
        return 1
    checks = result.get_asset_check_evaluations()
    failed = [f"{c.asset_key.to_user_string()}:{c.check_name}" for c in checks if not c.passed]
    print(
        json.dumps(
            {
                "job": args.name,
                "run_id": result.run_id,
                "seconds": round(seconds, 1),
                "assets_materialized": len(result.get_asset_materialization_events()),
                "checks": len(checks),
                "checks_failed": failed,
            }
        )
    )
    return 0
