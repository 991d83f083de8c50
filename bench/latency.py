"""Latency: a landed file with one account's engagement collapse -> its critical email.

Runs the real Dagster daemon (its own process group, the bench's DAGSTER_HOME) over the bench
warehouse, drops one day's folder in which the busiest account has no events, and times the
chain landing_sensor -> landing_day_job (ingest, marts, scores, alerts, then the critical email
step) until the email is in the local SMTP capture server.

Also runnable on its own against a world an earlier bench run left behind (copied first, the
original is not touched):

    python -m bench.latency --world data/bench_runs/small --work /tmp/lat --tier small
"""

from __future__ import annotations

import email
import email.policy
import gzip
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import yaml

REPO = Path(__file__).resolve().parents[1]
RULE_ID = "bench_engagement_collapse"
IN_FLIGHT = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def pick_target(database: Path) -> dict:
    """The account with the most active users that was active on the latest built day."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        row = con.execute(
            """
            select h.account_id, a.account_name, h.active_users_28d, h.as_of_date
            from marts.account_health h
            join marts.dim_accounts a using (account_id)
            where h.as_of_date = (select max(as_of_date) from marts.account_health)
              and h.days_since_last_activity = 0
              and not a.is_churned
              and a.csm_email is not null
            order by h.active_users_28d desc, h.account_id
            limit 1
            """
        ).fetchone()
    finally:
        con.close()
    if row is None:
        raise SystemExit("No active account on the latest built day: the latency test needs one.")
    return {
        "account_id": row[0],
        "account_name": row[1],
        "active_users_28d": int(row[2]),
        "baseline_day": str(row[3]),
    }


def add_collapse_rule(config_dir: Path, min_users: int) -> None:
    """A bench-only critical rule: a large account with no activity at all on the new day."""
    path = config_dir / "rules.yml"
    doc = yaml.safe_load(path.read_text())
    doc["rules"] = [r for r in doc["rules"] if r["id"] != RULE_ID]
    doc["rules"].append(
        {
            "id": RULE_ID,
            "title": "Benchmark - a large daily-active account went silent",
            "type": "engagement_drop",
            "condition": f"days_since_last_activity >= 1 and active_users_28d >= {min_users}",
            "severity": "critical",
            "routing": {"owner": "csm", "escalation": "manager"},
            "cooldown_days": 14,
            "sla_hours": 4,
            "recommendation": {"action": "call", "template": "engagement_drop.j2"},
            "enabled": True,
        }
    )
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def stage_drop(source: Path, staging: Path, account_id: str) -> int:
    """Copy a day's folder without the account's events; the manifest gets the new sizes."""
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    removed = 0
    manifest = json.loads((source / "_manifest.json").read_text())
    for path in sorted(source.iterdir()):
        if path.name == "_manifest.json":
            continue
        target = staging / path.name
        if path.name.startswith("events-") and path.stat().st_size > 0:
            with gzip.open(path, "rt", encoding="utf-8", errors="surrogateescape") as fin:
                lines = fin.readlines()
            kept = [ln for ln in lines if f'"groupId":"{account_id}"' not in ln]
            removed += len(lines) - len(kept)
            with gzip.open(target, "wt", encoding="utf-8", errors="surrogateescape") as fout:
                fout.writelines(kept)
        else:
            shutil.copy2(path, target)
        manifest["files"][path.name] = target.stat().st_size
    (staging / "_manifest.json").write_text(json.dumps(manifest))
    return removed


def _dagster(env: dict, *args: str) -> None:
    cli = str(Path(sys.executable).with_name("dagster"))
    subprocess.run(
        [cli, *args, "-w", str(REPO / "workspace.yaml")],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )


def _runs(instance) -> list:
    return list(instance.get_run_records())


def _runs_after(instance, after: float) -> list:
    recs = [r for r in _runs(instance) if r.create_timestamp.timestamp() >= after]
    return sorted(recs, key=lambda r: r.create_timestamp.timestamp())


def _in_flight(instance) -> int:
    return sum(1 for r in _runs(instance) if r.dagster_run.status.value in IN_FLIGHT)


def _critical_emails(mail: Path, account_name: str) -> list[tuple[float, str, str]]:
    found = []
    for path in sorted(mail.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        subject = str(msg.get("Subject", ""))
        if subject.startswith("Critical:") and account_name in subject:
            found.append((path.stat().st_mtime, path.name, subject))
    return found


def _timeline(instance, after: float, t0: float) -> list[dict]:
    """Every run created after the drop, with its queue wait and its steps, in seconds from t0."""
    out = []
    for rec in sorted(_runs(instance), key=lambda r: r.create_timestamp.timestamp()):
        created = rec.create_timestamp.timestamp()
        if created < after:
            continue
        run = rec.dagster_run
        name = run.job_name
        out.append({"at": created - t0, "what": f"{name} run created ({run.run_id[:8]})"})
        if rec.start_time:
            out.append({"at": rec.start_time - t0, "what": f"{name} run started"})
        for step in instance.get_run_step_stats(run.run_id):
            if step.start_time and step.end_time:
                out.append(
                    {
                        "at": step.end_time - t0,
                        "what": f"{name} step {step.step_key} done "
                        f"({step.end_time - step.start_time:.1f}s)",
                    }
                )
        if rec.end_time:
            why = _failures(instance, run.run_id) if run.status.value == "FAILURE" else ""
            out.append({"at": rec.end_time - t0, "what": f"{name} run {run.status.value}{why}"})
    return sorted(out, key=lambda s: s["at"])


def _stand_in_daily_run(instance, env: dict, t0: float, logs: Path) -> subprocess.Popen | None:
    """If an ingest-only run (ingest_job) loaded the day and daily_after_ingest_sensor has not
    started daily_job 30 s after it ended (one missed 15 s interval plus slack), launch it the
    way an operator would, so the rest of the chain is still measured; the report says so.
    (The landing sensor's own runs, landing_day_job, include the daily assets.)"""
    runs = [r for r in _runs(instance) if r.create_timestamp.timestamp() >= t0 - 1]
    ingest_done = [
        r.end_time for r in runs if r.dagster_run.job_name == "ingest_job" and r.end_time
    ]
    if any(r.dagster_run.job_name == "daily_job" for r in runs):
        return None
    if not ingest_done or time.time() - max(ingest_done) < 30:
        return None
    cli = str(Path(sys.executable).with_name("dagster"))
    say("  latency: daily_after_ingest_sensor started no run; the bench launches daily_job")
    with (logs / "launch_daily.out").open("w") as out:
        return subprocess.Popen(
            [cli, "job", "launch", "-j", "daily_job", "-w", str(REPO / "workspace.yaml")],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _failures(instance, run_id: str) -> str:
    """Why a run failed, in one line: failed steps (checks included) with their first error line."""
    parts = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not event.is_step_failure:
            continue
        error = getattr(event.event_specific_data, "error", None)
        first = (error.message.strip().splitlines() or [""])[0][:200] if error else ""
        parts.append(f"{event.step_key}: {first}")
    return (" — " + "; ".join(parts)) if parts else ""


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the daemon's whole process group (code server, run workers); SIGKILL if stuck."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def measure_latency(work: Path, env: dict, export: Path, day: str, timeout: float = 900) -> dict:
    """Seconds from the dropped folder to the critical email; a failure is recorded, not lost."""
    try:
        return _measure(work, env, export, day, timeout)
    except (Exception, SystemExit) as exc:  # the other stages' figures must still be written
        detail = getattr(exc, "stderr", None) or ""
        say(f"  latency: failed: {exc} {detail[-1500:]}")
        return {"error": f"{type(exc).__name__}: {exc} {detail[-1500:]}".strip()}


def measure_drops(
    work: Path, env: dict, export: Path, day: str, drops: int = 5, timeout: float = 900
) -> dict:
    """The latency `drops` times, each on its own copy of the tier's world (the day not loaded
    yet, its own daemon, warehouse, Dagster instance and capture server): the median, the
    slowest and each drop's seconds, with the median drop's timeline."""
    if drops <= 1:
        return measure_latency(work, env, export, day, timeout)
    from bench.harness import stage_env
    from notifications.capture import CaptureServer

    try:
        _land_previous_day(work, env, export, day)
    except (Exception, SystemExit) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    results = []
    for i in range(drops):
        copy = work / f"latency_{i + 1}"
        _copy_world(work, copy)
        copy_env = stage_env(copy)
        mail = copy / "mail"
        capture = CaptureServer(mail).start()
        copy_env.update(
            {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(capture.port), "BENCH_MAIL_DIR": str(mail)}
        )
        say(f"  latency: drop {i + 1} of {drops}")
        try:
            results.append(measure_latency(copy, copy_env, export, day, timeout))
        finally:
            capture.stop()
            # The copy's logs stay for reading; its warehouse and landing folders go.
            for name in ("warehouse.duckdb", "warehouse.duckdb.wal", "landing", "data"):
                target = copy / name
                shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(
                    missing_ok=True
                )
    seconds = [r["seconds_to_critical_email"] for r in results]
    timed = [x for x in seconds if x is not None]
    if not timed:
        return {**results[0], "drops": seconds}
    mid = statistics.median(timed)
    chosen = min(range(len(results)), key=lambda i: abs((seconds[i] or 1e9) - mid))
    return {
        **results[chosen],
        "seconds_to_critical_email": round(mid, 1),
        # A drop without an email within the timeout is the slowest of all.
        "max_seconds": max(timed) if len(timed) == len(seconds) else None,
        "drops": seconds,
        "timeline_of": f"drop {chosen + 1} (the one nearest the median)",
    }


def _copy_world(work: Path, copy: Path) -> None:
    """A copy of the world to measure on: files copied, landing folders hard-linked."""
    shutil.rmtree(copy, ignore_errors=True)
    skip = shutil.ignore_patterns("logs", "mail", "drop_staging", "latency_*", "spark_bench",
                                  "landing")  # fmt: skip
    shutil.copytree(work, copy, ignore=skip, symlinks=True)
    shutil.copytree(work / "landing", copy / "landing", copy_function=os.link)
    (copy / "logs").mkdir(exist_ok=True)


def _land_previous_day(work: Path, env: dict, export: Path, day: str) -> None:
    """Load the day before the drop if the world lacks it (a run without `incremental`): while
    a day is missing, the freshness gate holds every account's alerts back, so no critical
    email could come at all."""
    from bench.harness import Runner, link_day

    before = sorted(p.name for p in export.iterdir() if p.name < day)
    landing = Path(env["EA_LANDING_DIR"])
    if not before or (landing / before[-1] / "_manifest.json").exists():
        return
    say(f"  latency: {before[-1]} is not loaded yet; loading it and building the marts first")
    runner = Runner(work, env)
    link_day(export, landing, before[-1])
    for label, stage, *args in (
        ("latency_prep_ingest", "ingest", f"--days={before[-1]}"),
        ("latency_prep_marts", "marts"),
    ):
        if "error" in runner.stage(label, stage, *args, record=False):
            raise SystemExit(f"Preparing the latency world failed; see {work / 'logs'}")


def _measure(work: Path, env: dict, export: Path, day: str, timeout: float) -> dict:
    import dagster as dg

    from ingest.loader import find_landing_days

    _land_previous_day(work, env, export, day)
    target = pick_target(Path(env["DUCKDB_DATABASE"]))
    # Tolerate the few users who drop out of the 28-day window on the new day.
    add_collapse_rule(Path(env["EA_CONFIG_DIR"]), max(3, int(target["active_users_28d"] * 0.8)))
    staging = work / "drop_staging" / day
    removed = stage_drop(export / day, staging, target["account_id"])
    landing = Path(env["EA_LANDING_DIR"])
    mail = Path(env["BENCH_MAIL_DIR"])
    say(f"  latency: {target['account_name']} ({target['account_id']}) goes silent on {day}")

    # The landing sensor starts with what is already loaded, so it loads only the dropped day.
    cursor = {d.isoformat(): h for d, h in find_landing_days(landing).items()}
    _dagster(env, "sensor", "start", "landing_sensor")
    _dagster(env, "sensor", "cursor", "landing_sensor", "--set", json.dumps(cursor))

    logs = work / "logs"
    daemon_cmd = [
        str(Path(sys.executable).with_name("dagster-daemon")),
        "run",
        "-w",
        str(REPO / "workspace.yaml"),
    ]
    with (logs / "daemon.out").open("w") as out, (logs / "daemon.err").open("w") as err:
        daemon = subprocess.Popen(
            daemon_cmd, cwd=REPO, env=env, stdout=out, stderr=err, start_new_session=True
        )
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    instance = dg.DagsterInstance.get()
    try:
        started = time.time()
        # Let every sensor tick once and the catch-up daily run finish before the drop.
        while True:
            time.sleep(2)
            if daemon.poll() is not None:
                raise SystemExit(f"dagster-daemon exited early; see {logs / 'daemon.err'}")
            if time.time() - started > 45 and _in_flight(instance) == 0:
                break
            if time.time() - started > timeout:
                raise SystemExit("The daemon's first runs did not finish in time.")
        warmup = time.time() - started
        before = {p.name for p in mail.glob("*.eml")}
        dst = landing / day
        dst.mkdir(parents=True, exist_ok=True)
        for path in sorted(staging.iterdir(), key=lambda p: p.name == "_manifest.json"):
            shutil.copy2(path, dst / path.name)
        t0 = time.time()
        say(f"  latency: dropped {dst} after {warmup:.0f}s of warm-up; waiting for the email")
        arrived, stand_in = None, None
        while time.time() - t0 < timeout:
            time.sleep(0.5)
            if stand_in is None:
                stand_in = _stand_in_daily_run(instance, env, t0, logs)
            hits = [
                (m, s)
                for m, name, s in _critical_emails(mail, target["account_name"])
                if name not in before
            ]
            if hits:
                arrived, subject = min(hits)
                arrived -= t0
                break
            if daemon.poll() is not None:
                raise SystemExit(f"dagster-daemon exited; see {logs / 'daemon.err'}")
        # Stop cleanly: let the runs the drop started finish first (they hold the warehouse).
        while _in_flight(instance) and time.time() - t0 < timeout:
            time.sleep(2)
        timeline = _timeline(instance, t0 - 1, t0)
    finally:
        stop(daemon)
    if stand_in is not None:
        stand_in.wait(timeout=120)
    runs = _runs_after(instance, t0 - 1)
    if stand_in is not None:
        daily_by = "the bench (the sensor did not start it)"
    elif any(r.dagster_run.job_name == "landing_day_job" for r in runs):
        daily_by = "landing_sensor (ingest and daily assets in one landing_day_job run)"
    else:
        daily_by = "daily_after_ingest_sensor"
    result = {
        "account_id": target["account_id"],
        "events_removed": removed,
        "warm_up_seconds": round(warmup, 1),
        "seconds_to_critical_email": round(arrived, 1) if arrived is not None else None,
        "email_subject": subject if arrived is not None else "no critical email within timeout",
        "daily_assets_run_by": daily_by,
        "runs": len(runs),
        # Queued -> started: the daemon's dequeue plus a new process importing the definitions.
        "run_start_seconds": ", ".join(
            f"{r.dagster_run.job_name} {r.start_time - r.create_timestamp.timestamp():.1f}"
            for r in runs
            if r.start_time
        ),
        "timeline": [{"at": round(s["at"], 1), "what": s["what"]} for s in timeline],
    }
    if arrived is not None:
        result["timeline"].append({"at": round(arrived, 1), "what": "critical email captured"})
        result["timeline"].sort(key=lambda s: s["at"])
    say(f"  latency: {result['seconds_to_critical_email']}s to the critical email")
    return result


def main(argv: list[str] | None = None) -> int:
    """Measure the latency alone on a copy of a world a bench run built (ingest, marts, train)."""
    import argparse

    from bench.harness import cache_dir, stage_env, tier_config
    from notifications.capture import CaptureServer

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--world", type=Path, required=True, help="a bench run's tier folder")
    parser.add_argument("--work", type=Path, required=True, help="where the copy goes (wiped)")
    parser.add_argument("--tier", default="small")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=REPO / "data" / "bench_cache")
    args = parser.parse_args(argv)
    export = cache_dir(args.cache, args.tier, tier_config(args.tier, args.seed)) / "portal_export"
    if not (args.world / "warehouse.duckdb").exists() or not export.exists():
        raise SystemExit(f"{args.world} or {export} is missing: run `python -m bench` first.")
    shutil.rmtree(args.work, ignore_errors=True)
    shutil.copytree(args.world, args.work, symlinks=True)
    for stale in ("mail", "drop_staging"):
        shutil.rmtree(args.work / stale, ignore_errors=True)
    (args.work / "logs").mkdir(exist_ok=True)
    # The copy's own warehouse, MLflow store, landing folders and DAGSTER_HOME (runs, cursors).
    env = stage_env(args.work)
    mail = args.work / "mail"
    capture = CaptureServer(mail).start()
    env.update(
        {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(capture.port), "BENCH_MAIL_DIR": str(mail)}
    )
    try:
        days = sorted(p.name for p in export.iterdir() if (p / "_manifest.json").exists())
        result = measure_latency(args.work, env, export, days[-1])
    finally:
        capture.stop()
    print(json.dumps(result, indent=1))
    return 0 if result.get("seconds_to_critical_email") is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
