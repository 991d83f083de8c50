"""What the benchmark's runner and its latency measurement share: tiers, work folders, stages.

`bench.run` (the whole benchmark) and `bench.latency` (landed file -> critical email) both build
on this module; neither imports the other's internals.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
END = dt.date(2025, 10, 31)
# accounts x days; "tiny" exists for the harness's own smoke test.
TIERS = {
    "tiny": (12, 40),
    "small": (300, 400),
    "medium": (2_000, 365),
    "large": (5_000, 365),
}


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def tier_config(tier: str, seed: int) -> dict:
    accounts, days = TIERS[tier]
    start = END - dt.timedelta(days=days - 1)
    return {"accounts": accounts, "start": start.isoformat(), "end": END.isoformat(), "seed": seed}


def cache_dir(root: Path, tier: str, config: dict) -> Path:
    # Keyed by the simulator config: a changed tier never reuses stale files.
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    return root / f"{tier}-{config['seed']}-{key}"


class Runner:
    """Runs stages as child processes in one work folder and records their figures."""

    def __init__(self, work: Path, env: dict[str, str]):
        self.work = work
        self.env = env
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.figures: dict[str, dict] = {}

    def stage(self, label: str, name: str, *args: str, record: bool = True) -> dict:
        cmd = [sys.executable, "-m", "bench.stage", name, *args]
        out, err = self.logs / f"{label}.out", self.logs / f"{label}.err"
        started = time.perf_counter()
        with out.open("w") as fo, err.open("w") as fe:
            proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=fo, stderr=fe)
            # wait4 gives this child's own rusage: the peak RSS of it or any of its reaped
            # children (dbt runs as a grandchild), not the sum and not other stages' peaks.
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            # Recorded, not fatal: the other stages' figures are still worth having.
            tail = (err.read_text()[-1200:] + out.read_text()[-1200:]).strip()
            say(f"  {label}: FAILED (exit {proc.returncode}), see {err}:\n{tail}")
            figures = {"error": f"exit {proc.returncode}; see {err}", "seconds": round(seconds, 2)}
            if record:
                self.figures[label] = figures
            return figures
        lines = [ln for ln in out.read_text().splitlines() if ln.startswith("{")]
        figures = json.loads(lines[-1]) if lines else {}
        figures["seconds"] = round(seconds, 2)
        figures["peak_rss_mib"] = round(usage.ru_maxrss / 1024, 1)
        # CPU seconds of the stage and the children it waited for (dbt): on a shared machine
        # wall time grows with other people's load, CPU time much less.
        figures["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 2)
        if record:
            self.figures[label] = figures
        say(
            f"  {label}: {seconds:.1f}s (cpu {figures['cpu_seconds']:.1f}s), "
            f"peak {figures['peak_rss_mib']:.0f} MiB {figures}"
        )
        return figures


def link_day(source: Path, landing: Path, day: str) -> None:
    """Land one day as an export would (manifest last); hard links when the disk allows."""
    src, dst = source / day, landing / day
    dst.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in src.iterdir() if p.name != "_manifest.json")
    for path in [*files, src / "_manifest.json"]:
        target = dst / path.name
        target.unlink(missing_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def stage_env(work: Path) -> dict[str, str]:
    home = work / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    config = work / "config"
    if not config.exists():
        shutil.copytree(REPO / "config", config)
    env = dict(os.environ)
    env.update(
        {
            "EA_DATA_DIR": str(work / "data"),
            "EA_LANDING_DIR": str(work / "landing"),
            "EA_CONFIG_DIR": str(config),
            "DUCKDB_DATABASE": str(work / "warehouse.duckdb"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
            "DAGSTER_HOME": str(home),
            # As the Makefile sets it: one planned event per asset for a range run.
            "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "GX_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    (work / "data").mkdir(parents=True, exist_ok=True)
    (work / "landing").mkdir(parents=True, exist_ok=True)
    return env
