"""The benchmark harness: every stage timed in its own process per scale tier, plus references.

Run: python -m bench [--tiers small,medium,large] [--out bench/results] (or `make bench`).
Writes <out>/latest.json and <out>/latest.md (and a time-stamped copy of the JSON).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from bench.harness import (
    REPO,
    TIERS,
    Runner,
    cache_dir,
    link_day,
    say,
    stage_env,
    tier_config,
)

ALL_STAGES = (
    "simulate",
    "references",
    "ingest",
    "marts",
    "train",
    "score",
    "rules",
    "digests",
    "publish",
    "incremental",
    "history",
    "rules_10k",
    "latency",
    "spark",
)
# Spark needs the Spark extra (`make install-spark`, Java 17) and minutes: asked for by name.
DEFAULT_STAGES = tuple(s for s in ALL_STAGES if s != "spark")
TARGETS = {
    "full_vs_duckdb_max": 3.0,
    "pandas_vs_full_min": 2.0,
    # One incremental day as a share of a full refresh: 5 % at the large tier, 10 % below.
    "incremental_share_max": 0.10,
    "incremental_share_max_large": 0.05,
    "rules_10k_seconds_max": 1.0,
    # Landed file -> critical email: the median of the drops, and the slowest drop.
    "latency_seconds_max": 15.0,
    "latency_max_seconds_max": 30.0,
    "peak_rss_mib_max": 4096.0,
}
PACKAGES = (
    "dagster",
    "dagster-dbt",
    "dbt-core",
    "dbt-duckdb",
    "duckdb",
    "pandas",
    "lightgbm",
    "mlflow",
)


def machine() -> dict:
    """What the figures were measured on, so two result files can be compared."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    commit = _commit()
    return {
        "cpu_model": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "git_commit": commit,
        "versions": versions,
    }


def _commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()


def history_archive(export: Path, cache: Path) -> Path:
    """Every landed event file of the tier in one .jsonl.gz (written once per cache)."""
    archive = cache / "history_events.jsonl.gz"
    if not archive.exists():
        partial = archive.with_suffix(".partial")
        with partial.open("wb") as out:
            for path in sorted(export.glob("*/events-*.jsonl.gz")):
                with path.open("rb") as part:
                    shutil.copyfileobj(part, out)
        partial.rename(archive)
        say(f"  history: wrote {archive} ({archive.stat().st_size / 2**30:.2f} GiB)")
    return archive


def run_tier(
    tier: str, seed: int, stages: set[str], cache_root: Path, runs_root: Path, drops: int = 5
) -> dict:
    config = tier_config(tier, seed)
    work = runs_root / tier
    shutil.rmtree(work, ignore_errors=True)
    env = stage_env(work)
    runner = Runner(work, env)
    from notifications.capture import CaptureServer

    # One local SMTP capture server for the tier: digests and critical emails land in it.
    mail = work / "mail"
    capture = CaptureServer(mail).start()
    env.update({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(capture.port)})
    env["BENCH_MAIL_DIR"] = str(mail)
    try:
        return _run_tier(tier, config, stages, cache_root, work, runner, drops)
    finally:
        capture.stop()


def _run_tier(
    tier: str,
    config: dict,
    stages: set[str],
    cache_root: Path,
    work: Path,
    runner: Runner,
    drops: int = 5,
) -> dict:
    env = runner.env
    started_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    say(f"tier {tier}: {config['accounts']} accounts, {config['start']}..{config['end']}")
    cache = cache_dir(cache_root, tier, config)

    export = cache / "portal_export"
    done = cache / "_done.json"
    if done.exists():
        sim = json.loads(done.read_text())
        runner.figures["simulate"] = {**sim, "cached": True}
        say(f"  simulate: cached in {cache} ({sim.get('events', 0):,} events)")
    else:
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        args = [f"--{k}={v}" for k, v in config.items()]
        sim = runner.stage("simulate", "simulate", *args, f"--out={export}")
        if "error" in sim:
            raise SystemExit(f"The simulator failed; see {runner.logs / 'simulate.err'}")
        done.write_text(json.dumps({**sim, "config": config}))
    runner.figures["simulate"]["files_gib"] = round(
        sum(p.stat().st_size for p in export.rglob("*") if p.is_file()) / 2**30, 3
    )

    days = sorted(p.name for p in export.iterdir() if (p / "_manifest.json").exists())
    backfill, new_day, drop_day = days[:-2], days[-2], days[-1]
    landing = work / "landing"
    for day in backfill:
        link_day(export, landing, day)

    if "references" in stages:
        runner.stage("ref_duckdb", "ref_duckdb", f"--landing={landing}")
        runner.stage("ref_pandas", "ref_pandas", f"--landing={landing}")
    if "ingest" in stages:
        runner.stage("ingest_full", "ingest", f"--days={backfill[0]}..{backfill[-1]}")
    if "marts" in stages:
        runner.stage("marts_full_refresh", "marts", "--full-refresh")
    for name in ("train", "score", "rules", "digests", "publish"):
        if name in stages:
            runner.stage(name, name)
    if "incremental" in stages:
        if "references" in stages:
            # The limit for one new day: the same single pass over that day's files only.
            runner.stage("ref_duckdb_day", "ref_duckdb", f"--landing={export}", f"--day={new_day}")
        link_day(export, landing, new_day)
        runner.stage("ingest_day", "ingest", f"--days={new_day}")
        runner.stage("marts_day", "marts")
    if "history" in stages:
        # The tier's whole event archive as ONE file (the landed event files concatenated, gzip
        # members back to back; cached), loaded by `ea load-history` into a warehouse of its own.
        archive = history_archive(export, cache)
        runner.stage(
            "history", "history", f"--file={archive}",
            f"--mapping={REPO / 'config' / 'examples' / 'segment_jsonl_mapping.yml'}",
            f"--database={work / 'history.duckdb'}", f"--through={config['end']}",
        )  # fmt: skip
    if "rules_10k" in stages:
        runner.stage("rules_10k", "rules_10k")
    if "spark" in stages:
        runner.stage("spark", "spark")
    if "latency" in stages:
        from bench.latency import measure_drops

        runner.figures["latency"] = measure_drops(work, env, export, drop_day, drops)

    result = {
        "tier": tier,
        "config": config,
        "cache": str(cache),
        "started_at": started_at,
        "load_average_at_start": load_at_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "git_commit": _commit(),
        "stages": runner.figures,
    }
    result["summary"] = summarise(runner.figures, tier)
    return result


def summarise(f: dict, tier: str = "") -> dict:
    """Ratios and target checks; a figure that was not measured stays None."""

    def sec(label: str) -> float | None:
        entry = f.get(label, {})
        return None if "error" in entry else entry.get("seconds")

    out: dict[str, float | bool | None] = {}
    full = [sec("ingest_full"), sec("marts_full_refresh")]
    full_s = sum(full) if None not in full else None
    day = [sec("ingest_day"), sec("marts_day")]
    day_s = sum(day) if None not in day else None
    out["ingest_marts_full_seconds"] = round(full_s, 2) if full_s else None
    out["ingest_marts_day_seconds"] = round(day_s, 2) if day_s else None
    ref_d, ref_p, ref_day = sec("ref_duckdb"), sec("ref_pandas"), sec("ref_duckdb_day")
    out["day_vs_duckdb_day"] = round(day_s / ref_day, 2) if day_s and ref_day else None
    out["full_vs_duckdb"] = round(full_s / ref_d, 2) if full_s and ref_d else None
    out["pandas_vs_full"] = round(ref_p / full_s, 2) if full_s and ref_p else None
    out["incremental_share"] = round(day_s / full_s, 3) if full_s and day_s else None

    # The same ratios in CPU seconds (stages record them): on a shared machine the wall ratios
    # move with other people's load, which falls unevenly on the stages of one run.
    def cpu(*labels: str) -> float | None:
        values = [f.get(label, {}).get("cpu_seconds") for label in labels]
        bad = any("error" in f.get(label, {}) for label in labels)
        return None if bad or None in values else sum(values)

    full_c, day_c = cpu("ingest_full", "marts_full_refresh"), cpu("ingest_day", "marts_day")
    ref_dc, ref_pc = cpu("ref_duckdb"), cpu("ref_pandas")
    out["ingest_marts_full_cpu_seconds"] = round(full_c, 2) if full_c else None
    out["full_vs_duckdb_cpu"] = round(full_c / ref_dc, 2) if full_c and ref_dc else None
    out["pandas_vs_full_cpu"] = round(ref_pc / full_c, 2) if full_c and ref_pc else None
    out["incremental_share_cpu"] = round(day_c / full_c, 3) if full_c and day_c else None
    r10k = f.get("rules_10k", {})
    out["rules_10k_seconds"] = (
        max(r10k["day1_seconds"], r10k["day2_seconds"]) if "day1_seconds" in r10k else None
    )
    latency = f.get("latency", {})
    out["latency_seconds"] = latency.get("seconds_to_critical_email")
    out["latency_max_seconds"] = latency.get("max_seconds", out["latency_seconds"])
    out["spark_vs_duckdb"] = f.get("spark", {}).get("spark_vs_duckdb")
    # Our pipeline's stages only: the references and the simulator are not the product.
    # (The Spark comparison runs another engine in a JVM beside ours; its peak is in its row.)
    ours = {k: v for k, v in f.items() if k not in {"simulate", "ref_duckdb", "ref_pandas",
                                                    "ref_duckdb_day", "spark"}}  # fmt: skip
    peaks = [v.get("peak_rss_mib") for v in ours.values() if v.get("peak_rss_mib")]
    out["peak_rss_mib"] = max(peaks) if peaks else None
    checks = {
        "full_vs_duckdb": ("full_vs_duckdb_max", "<="),
        "pandas_vs_full": ("pandas_vs_full_min", ">="),
        "incremental_share": ("incremental_share_max", "<="),
        "rules_10k_seconds": ("rules_10k_seconds_max", "<"),
        "latency_seconds": ("latency_seconds_max", "<"),
        "latency_max_seconds": ("latency_max_seconds_max", "<="),
        "peak_rss_mib": ("peak_rss_mib_max", "<"),
    }
    if tier == "large":
        checks["incremental_share"] = ("incremental_share_max_large", "<=")
    out["meets"] = {}
    for name, (target, op) in checks.items():
        value = out[name]
        if value is None:
            out["meets"][name] = None
        elif op == ">=":
            out["meets"][name] = value >= TARGETS[target]
        elif op == "<=":
            out["meets"][name] = value <= TARGETS[target]
        else:
            out["meets"][name] = value < TARGETS[target]
    return out


STAGE_ROWS = (
    ("simulate", "simulate (cached runs show the first run's time)"),
    ("ref_duckdb", "reference: one DuckDB pass (daily aggregates)"),
    ("ref_pandas", "reference: pandas (daily + 28-day rolling)"),
    ("ingest_full", "ingest, full backfill"),
    ("marts_full_refresh", "dbt marts, full refresh"),
    ("train", "training (churn + expansion, MLflow)"),
    ("score", "scoring + anomalies + segments"),
    ("rules", "rule evaluation (pipeline accounts)"),
    ("digests", "deliveries: critical emails, CRM tasks, digests to SMTP capture; checks"),
    ("publish", "analyst database published (analytics tables, new file renamed into place)"),
    ("ref_duckdb_day", "reference: one DuckDB pass over the new day's files"),
    ("ingest_day", "ingest, one new day"),
    ("marts_day", "dbt marts, one incremental day"),
    ("rules_10k", "rule evaluation, 10,000 synthetic accounts"),
    ("spark", "marts on Spark vs DuckDB (same raw rows as Parquet, models full refresh)"),
)


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _ratio(value) -> str:
    return "—" if value is None else f"{value:,.2f}x"


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"# Benchmark results ({report['finished_at']})",
        "",
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB; load average at "
        f"start {m['load_average_at_start']} (shared machine); Python {m['python']}; commit "
        f"{m['git_commit']}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
        "",
        "Wall seconds include each child process's start-up (Python and Dagster imports); peak "
        "memory is the largest resident set of the stage's process or any child it waited for.",
    ]
    lines += _overview(report["tiers"])
    for tier in report["tiers"]:
        f, s, c = tier["stages"], tier["summary"], tier["config"]
        sim = f.get("simulate", {})
        lines += [
            "",
            f"## Tier {tier['tier']}: {c['accounts']:,} accounts x "
            f"{(dt.date.fromisoformat(c['end']) - dt.date.fromisoformat(c['start'])).days + 1} "
            f"days ({_fmt(sim.get('events'))} events, {sim.get('files_gib', 0):.2f} GiB gzip)",
            "",
            f"Run {tier.get('started_at', '?')}, commit {tier.get('git_commit', '?')}, load "
            f"average {tier.get('load_average_at_start', '?')} at start and "
            f"{tier.get('load_average_at_end', '?')} at end.",
            "",
            "| stage | wall s | peak MiB | details |",
            "|---|---:|---:|---|",
        ]
        for label, title in STAGE_ROWS:
            if label not in f:
                continue
            row = f[label]
            skip = {"seconds", "peak_rss_mib", "config", "cached"}
            details = ", ".join(f"{k} {_fmt(v)}" for k, v in row.items() if k not in skip)
            if row.get("cached"):
                details += " (cached files reused)"
            lines.append(
                f"| {title} | {_fmt(row.get('seconds'))} | {_fmt(row.get('peak_rss_mib'))} "
                f"| {details} |"
            )
        lat = f.get("latency")
        if lat:
            lines += ["", "Latency (landed file -> critical email, Dagster daemon running):", ""]
            lines += [f"- {k}: {_fmt(v)}" for k, v in lat.items() if k != "timeline"]
            for step in lat.get("timeline", []):
                lines.append(f"  - +{step['at']:.1f}s {step['what']}")
        meets = s["meets"]
        share_max = TARGETS[
            "incremental_share_max_large" if tier["tier"] == "large" else "incremental_share_max"
        ]
        lines += [
            "",
            "| target | measured | goal | met |",
            "|---|---:|---:|---|",
            f"| ingest+marts full refresh / DuckDB single pass | {_ratio(s['full_vs_duckdb'])} "
            f"| <= 3x | {_fmt(meets['full_vs_duckdb'])} |",
            f"| pandas / ingest+marts full refresh | {_ratio(s['pandas_vs_full'])} "
            f"| >= {TARGETS['pandas_vs_full_min']:g}x | {_fmt(meets['pandas_vs_full'])} |",
            f"| one incremental day / full refresh | {_fmt(s['incremental_share'])} "
            f"| <= {share_max:g} | {_fmt(meets['incremental_share'])} |",
            f"| rule evaluation, 10,000 accounts (s) | {_fmt(s['rules_10k_seconds'])} | < 1 "
            f"| {_fmt(meets['rules_10k_seconds'])} |",
            f"| landed file -> critical email, median of the drops (s) "
            f"| {_fmt(s['latency_seconds'])} | < {TARGETS['latency_seconds_max']:g} "
            f"| {_fmt(meets['latency_seconds'])} |",
            f"| landed file -> critical email, slowest drop (s) "
            f"| {_fmt(s.get('latency_max_seconds'))} | <= {TARGETS['latency_max_seconds_max']:g} "
            f"| {_fmt(meets.get('latency_max_seconds'))} |",
            f"| the same three ratios in CPU seconds: vs DuckDB, pandas / ours, day / full "
            f"| {_ratio(s.get('full_vs_duckdb_cpu'))}, {_ratio(s.get('pandas_vs_full_cpu'))}, "
            f"{_fmt(s.get('incremental_share_cpu'))} | (as above) | — |",
            f"| dbt marts on Spark / on DuckDB (same rows, same machine) "
            f"| {_ratio(s.get('spark_vs_duckdb'))} | (no target) | — |",
            f"| one incremental day / DuckDB pass over that day | "
            f"{_ratio(s.get('day_vs_duckdb_day'))} | (no target) | — |",
            f"| peak memory of any pipeline stage (MiB) | {_fmt(s['peak_rss_mib'])} | < 4,096 "
            f"| {_fmt(meets['peak_rss_mib'])} |",
        ]
    return "\n".join(lines) + "\n"


def _latency(s: dict) -> str:
    median, slowest = s.get("latency_seconds"), s.get("latency_max_seconds")
    if median is None or slowest is None or slowest == median:
        return _fmt(median)
    return f"{_fmt(median)} / {_fmt(slowest)}"


def _overview(tiers: list[dict]) -> list[str]:
    """One row per tier: the headline figures and ratios side by side."""
    if not tiers:
        return []
    lines = [
        "",
        "## Overview (each row from one run of its tier; ratios inside a run)",
        "",
        "| tier | events | DuckDB pass s | pandas s | ingest+marts full s | vs DuckDB "
        "| vs DuckDB, CPU s | pandas / ours | ingest+marts one day s | day / full | rules 10k s "
        "| latency s (median / max) | Spark / DuckDB | peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for tier in tiers:
        f, s = tier["stages"], tier["summary"]

        def sec(label: str, f: dict = f) -> str:
            return _fmt(f.get(label, {}).get("seconds"))

        lines.append(
            f"| {tier['tier']} | {_fmt(f.get('simulate', {}).get('events'))} "
            f"| {sec('ref_duckdb')} | {sec('ref_pandas')} "
            f"| {_fmt(s.get('ingest_marts_full_seconds'))} | {_ratio(s.get('full_vs_duckdb'))} "
            f"| {_ratio(s.get('full_vs_duckdb_cpu'))} "
            f"| {_ratio(s.get('pandas_vs_full'))} | {_fmt(s.get('ingest_marts_day_seconds'))} "
            f"| {_fmt(s.get('incremental_share'))} | {_fmt(s.get('rules_10k_seconds'))} "
            f"| {_latency(s)} | {_ratio(s.get('spark_vs_duckdb'))} "
            f"| {_fmt(s.get('peak_rss_mib'))} |"
        )
    lines.append(
        "\nGoals: vs DuckDB <= 3x, pandas / ours >= 2x, day / full <= 0.10 (0.05 at large), "
        "rules 10k < 1 s, latency median < 15 s and none over 30 s, peak < 4,096 MiB."
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", default="small", help=f"comma list of {', '.join(TIERS)}")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--stages", default=",".join(DEFAULT_STAGES), help="comma list of " + ", ".join(ALL_STAGES)
    )
    parser.add_argument("--cache", type=Path, default=REPO / "data" / "bench_cache")
    parser.add_argument("--work", type=Path, default=REPO / "data" / "bench_runs")
    parser.add_argument(
        "--latency-drops",
        type=int,
        default=5,
        help="landed file -> critical email measured this many times (median and slowest)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the tiers of the existing <out>/latest.json that this run does not measure",
    )
    args = parser.parse_args(argv)
    tiers = [t.strip() for t in args.tiers.split(",") if t.strip()]
    unknown = [t for t in tiers if t not in TIERS]
    stages = {s.strip() for s in args.stages.split(",") if s.strip()}
    if unknown or stages - set(ALL_STAGES):
        parser.error(
            f"unknown tier(s) {unknown} or stage(s) {sorted(stages - set(ALL_STAGES))}; "
            f"tiers: {', '.join(TIERS)}; stages: {', '.join(ALL_STAGES)}"
        )
    report = {"machine": machine(), "started_at": dt.datetime.now(dt.UTC).isoformat(), "tiers": []}
    for tier in tiers:
        report["tiers"].append(
            run_tier(tier, args.seed, stages, args.cache, args.work, args.latency_drops)
        )
    previous = args.out / "latest.json"
    if args.merge and previous.exists():
        measured = {t["tier"] for t in report["tiers"]}
        kept = [t for t in json.loads(previous.read_text())["tiers"] if t["tier"] not in measured]
        order = list(TIERS)
        report["tiers"] = sorted(report["tiers"] + kept, key=lambda t: order.index(t["tier"]))
    report["finished_at"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, default=str)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (args.out / "latest.json").write_text(text)
    (args.out / f"results-{stamp}.json").write_text(text)
    (args.out / "latest.md").write_text(markdown(report))
    say(f"wrote {args.out / 'latest.json'} and {args.out / 'latest.md'}")
    print(markdown(report))
    return 0
