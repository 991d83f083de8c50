"""`ea status` and the inbox's status page: is today's data in, did the runs work, is mail
backing up, are the models fresh, is the disk filling, are the services up. One view for the
data team; the Dagster UI stays the place for details (every section links into it).

ea status            # text
ea status --json     # the same as JSON

It never opens the warehouse (a reader would block the pipeline): it reads the landing folder,
the Dagster instance (runs, materialized landing days, the drift check), the MLflow registry,
the analyst database every run publishes (alerts, deliveries) and the supervisor's state file.
Every section stands alone: one source being unavailable is shown as such, not as an error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.profile import Settings, redact
from service.supervise import pid_alive
from warehouse.catalog import table_exists

LOCATION = "orchestration.definitions"  # the code location's name in workspace.yaml
IN_FLIGHT = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
DRIFT_CHECK = (("ml", "account_scores"), "score_and_feature_drift")
# ml.registry.CHAMPION (not imported: ml.registry loads the training libraries).
CHAMPION_ALIAS = "champion"
# Past these, the view says so in its summary (and `ea status` exits 1).
STALE_LANDING_HOURS = 36
LOW_DISK_SHARE = 0.10


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def _size(path: Path) -> int | None:
    """Bytes of a file (with its .wal) or of everything under a folder; None when absent."""
    if path.is_file():
        wal = Path(f"{path}.wal")
        return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    if path.is_dir():
        total = 0
        for root, _dirs, files in os.walk(path):
            for name in files:
                try:
                    total += os.stat(os.path.join(root, name)).st_size
                except OSError:
                    pass
        return total
    return None


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


@dataclass
class Links:
    """Addresses in the Dagster UI."""

    base: str

    def run(self, run_id: str) -> str:
        return f"{self.base}/runs/{run_id}"

    def job(self, job: str) -> str:
        return f"{self.base}/locations/{LOCATION}/jobs/{job}"

    def sensor(self, name: str) -> str:
        return f"{self.base}/locations/{LOCATION}/sensors/{name}"

    def asset(self, *path: str) -> str:
        return f"{self.base}/assets/" + "/".join(urllib.parse.quote(p) for p in path)

    def runs(self) -> str:
        return f"{self.base}/runs"


@dataclass
class Status:
    """What the view shows; `problems` are the lines worth acting on."""

    generated_at: str
    profile: str
    dagster_url: str
    sections: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at,
            "profile": self.profile,
            "dagster_url": self.dagster_url,
            "problems": self.problems,
            **self.sections,
        }


# --- sources ---------------------------------------------------------------------------------


class Sources:
    """Opened lazily and reused (the inbox keeps one for its page)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._instance = None

    def instance(self):
        if self._instance is None:
            import dagster as dg

            self._instance = dg.DagsterInstance.from_config(str(self.settings.dagster_home))
        return self._instance

    def analyst(self):
        """A read-only view of the published analyst database, or None before the first run.
        Attached in a fresh in-memory database: a later publish (a rename) is seen next time.
        """
        import duckdb

        path = self.settings.analyst_database
        if not path.exists():
            return None
        con = duckdb.connect()
        con.execute("attach '" + str(path).replace("'", "''") + "' as analyst (read_only)")
        con.execute("use analyst")
        return con


def _rows(con, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _has(con, table: str) -> bool:
    return table_exists(con, "analytics", table)


# --- sections --------------------------------------------------------------------------------


def landing_section(src: Sources, now: dt.datetime) -> dict[str, Any]:
    from ingest.loader import find_landing_days

    folder = src.settings.landing_dir
    found = find_landing_days(folder) if folder.is_dir() else {}
    out: dict[str, Any] = {"folder": str(folder), "complete_folders": len(found)}
    if not found:
        out["last_landed_day"] = None
        out["note"] = f"no complete landing folder in {folder}"
        return out
    last = max(found)
    manifest = folder / last.isoformat() / "_manifest.json"
    landed_at = dt.datetime.fromtimestamp(manifest.stat().st_mtime, dt.UTC).replace(tzinfo=None)
    out.update(
        last_landed_day=last.isoformat(),
        landed_at=landed_at.isoformat(timespec="seconds"),
        landed_hours_ago=round((now - landed_at).total_seconds() / 3600, 1),
        data_days_behind_today=(now.date() - last).days,
    )
    try:
        import dagster as dg

        loaded = src.instance().get_materialized_partitions(dg.AssetKey(["raw", "events"]))
        out["last_loaded_day"] = max(loaded) if loaded else None
        out["landed_not_loaded"] = sorted(
            d.isoformat() for d in found if d.isoformat() not in loaded
        )
    except Exception as exc:  # noqa: BLE001 - the instance may be unreachable; say so
        out["last_loaded_day"] = None
        out["instance_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return out


def runs_section(src: Sources, links: Links) -> dict[str, Any]:
    instance = src.instance()
    latest: dict[str, dict[str, Any]] = {}
    in_flight = queued = 0
    for rec in instance.get_run_records(limit=500):
        run = rec.dagster_run
        status = run.status.value
        if status in IN_FLIGHT:
            in_flight += 1
            queued += status == "QUEUED"
        if run.job_name in latest or run.job_name.startswith("__"):
            continue
        ended = rec.end_time
        latest[run.job_name] = {
            "job": run.job_name,
            "status": status,
            "run_id": run.run_id,
            "created_at": rec.create_timestamp.replace(tzinfo=None).isoformat(timespec="seconds"),
            "seconds": round(ended - rec.start_time, 1) if ended and rec.start_time else None,
            "partition": run.tags.get("dagster/partition")
            or "..".join(
                t
                for t in (
                    run.tags.get("dagster/asset_partition_range_start"),
                    run.tags.get("dagster/asset_partition_range_end"),
                )
                if t
            )
            or None,
            "url": links.run(run.run_id),
        }
    return {
        "last_run_by_job": sorted(latest.values(), key=lambda r: r["created_at"], reverse=True),
        "in_flight": in_flight,
        "queued": queued,
        "url": links.runs(),
    }


def alerts_section(con) -> dict[str, Any]:
    if con is None or not _has(con, "alerts"):
        return {"note": "the analyst database is not published yet (no run has finished)"}
    as_of = con.execute("select max(last_seen_on) from analytics.alerts").fetchall()[0][0]
    today = _utcnow().date()
    by_severity = {
        r["severity"]: r["n"]
        for r in _rows(
            con,
            "select severity, count(*) as n from analytics.alerts "
            "where first_raised_on = ? group by severity",
            [as_of],
        )
    }
    open_rows = _rows(
        con,
        "select severity, count(*) as n from analytics.alerts "
        "where status in ('open', 'acknowledged') group by severity",
    )
    return {
        "data_day": as_of.isoformat() if as_of else None,
        "raised_on_data_day": by_severity,
        "raised_on_data_day_total": sum(by_severity.values()),
        "raised_today": con.execute(
            "select count(*) from analytics.alerts where first_raised_on = ?", [today]
        ).fetchall()[0][0],
        "open": sum(r["n"] for r in open_rows),
        "open_critical": sum(r["n"] for r in open_rows if r["severity"] == "critical"),
    }


def outbox_section(con, now: dt.datetime) -> dict[str, Any]:
    if con is None or not _has(con, "deliveries"):
        return {"note": "the analyst database is not published yet (no run has finished)"}
    counts = {r["status"]: r["n"] for r in _rows(
        con, "select status, count(*) as n from analytics.deliveries group by status"
    )}  # fmt: skip
    oldest = con.execute(
        "select min(created_at) from analytics.deliveries where status in ('pending', 'failed')"
    ).fetchall()[0][0]
    dead = _rows(
        con,
        "select channel, count(*) as n, max(last_error) as example_error "
        "from analytics.deliveries where status = 'dead' group by channel order by channel",
    )
    published = None
    if _has(con, "snapshot"):
        published = con.execute("select max(published_at) from analytics.snapshot").fetchall()[0][0]
    return {
        "by_status": counts,
        "backlog": counts.get("pending", 0) + counts.get("failed", 0),
        "oldest_waiting_minutes": round((now - oldest).total_seconds() / 60) if oldest else None,
        "dead_letters": counts.get("dead", 0),
        "dead_by_channel": dead,
        "as_of": published.isoformat(timespec="seconds") if published else None,
    }


def models_section(src: Sources, links: Links, now: dt.datetime) -> dict[str, Any]:
    out: dict[str, Any] = {"tracking_uri": redact(src.settings.mlflow_tracking_uri)}
    models = []
    uri = src.settings.mlflow_tracking_uri
    store = Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None
    if store is not None and not store.exists():
        # Not created here: a view does not write (MLflow would set up an empty store).
        out["models"] = [{"name": n, "champion": None} for n in _registered_names()]
        out["note"] = f"no MLflow store at {store} yet: no model has been trained"
        out["drift"] = _drift(src, links)
        return out
    try:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        from ml.config import REGISTERED_NAMES

        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        for name in REGISTERED_NAMES.values():
            try:
                version = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
            except MlflowException:
                models.append({"name": name, "champion": None})
                continue
            created = dt.datetime.fromtimestamp(version.creation_timestamp / 1000, dt.UTC)
            age = now - created.replace(tzinfo=None)
            models.append(
                {
                    "name": name,
                    "champion": version.version,
                    "trained_at": created.replace(tzinfo=None).isoformat(timespec="seconds"),
                    "age_days": round(age.total_seconds() / 86400, 1),
                }
            )
    except Exception as exc:  # noqa: BLE001 - the registry may be unreachable; say so
        out["registry_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    out["models"] = models
    out["drift"] = _drift(src, links)
    return out


def _registered_names() -> list[str]:
    from ml.config import REGISTERED_NAMES

    return list(REGISTERED_NAMES.values())


def _drift(src: Sources, links: Links) -> dict[str, Any]:
    """The latest evaluation of the score and feature drift check, from the Dagster instance."""
    try:
        import dagster as dg
        from dagster._core.storage.asset_check_execution_record import (
            AssetCheckExecutionRecordStatus,
        )

        key = dg.AssetCheckKey(dg.AssetKey(list(DRIFT_CHECK[0])), DRIFT_CHECK[1])
        done = {
            AssetCheckExecutionRecordStatus.SUCCEEDED,
            AssetCheckExecutionRecordStatus.FAILED,
        }
        history = src.instance().event_log_storage.get_asset_check_execution_history(
            key, limit=1, status=done
        )
        if not history:
            return {"summary": "not checked yet (the KPI run checks it)"}
        record = history[0]
        evaluation = record.event.dagster_event.event_specific_data
        meta = evaluation.metadata
        checked = dt.datetime.fromtimestamp(record.create_timestamp, dt.UTC).replace(tzinfo=None)
        return {
            "checked_at": checked.isoformat(timespec="seconds"),
            "retrain": not evaluation.passed,
            "summary": evaluation.description,
            "as_of_date": meta["as_of_date"].value if "as_of_date" in meta else None,
            "score_psi": meta["score_psi"].value if "score_psi" in meta else None,
            "url": links.asset(*DRIFT_CHECK[0]) + "?view=checks",
        }
    except Exception as exc:  # noqa: BLE001
        return {"summary": f"unavailable ({type(exc).__name__}: {str(exc)[:160]})"}


def disk_section(settings: Settings) -> dict[str, Any]:
    usage = shutil.disk_usage(settings.data_dir if settings.data_dir.exists() else Path("."))
    parts = {
        "warehouse": settings.warehouse,
        "analyst database": settings.analyst_database,
        "landing folder": settings.landing_dir,
        "MLflow artifacts": settings.mlflow_artifacts,
        "logs": settings.log_dir,
        "Dagster home": settings.dagster_home,
    }
    return {
        "folder": str(settings.data_dir),
        "free_bytes": usage.free,
        "total_bytes": usage.total,
        "free_share": round(usage.free / usage.total, 3) if usage.total else None,
        "sizes": {name: _size(path) for name, path in parts.items()},
    }


def services_section(settings: Settings) -> dict[str, Any]:
    from service.serve import state_path

    path = state_path(settings)
    if not path.exists():
        return {"note": "`ea serve` has not run for this data folder"}
    state = json.loads(path.read_text())
    running = pid_alive(state.get("supervisor_pid") or 0)
    services = []
    for name, s in (state.get("services") or {}).items():
        up = running and bool(s.get("pid")) and pid_alive(s["pid"])
        services.append(
            {
                "name": name,
                "up": up,
                "ready": up and bool(s.get("ready")),
                "restarts": s.get("restarts", 0),
                "last_exit": s.get("last_exit") or "",
                "log": s.get("log"),
            }
        )
    return {
        "supervisor_running": running,
        "started_at": state.get("started_at"),
        "services": services,
    }


# --- the view -------------------------------------------------------------------------------


def collect(settings: Settings, sources: Sources | None = None) -> Status:
    """Everything the view shows, each section guarded (one failing source is shown as such)."""
    src = sources or Sources(settings)
    now = _utcnow()
    links = Links(settings.dagster_url)
    status = Status(now.isoformat(timespec="seconds"), settings.profile, settings.dagster_url)
    con = None
    try:
        con = src.analyst()
    except Exception as exc:  # noqa: BLE001
        status.sections["analyst_error"] = f"{type(exc).__name__}: {exc}"
    builders = {
        "landing": lambda: landing_section(src, now),
        "runs": lambda: runs_section(src, links),
        "alerts": lambda: alerts_section(con),
        "outbox": lambda: outbox_section(con, now),
        "models": lambda: models_section(src, links, now),
        "disk": lambda: disk_section(settings),
        "services": lambda: services_section(settings),
    }
    for name, build in builders.items():
        try:
            status.sections[name] = build()
        except Exception as exc:  # noqa: BLE001 - a section that cannot be read says so
            status.sections[name] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    if con is not None:
        con.close()
    status.problems = problems(status.sections)
    return status


def problems(s: dict[str, Any]) -> list[str]:
    """The lines worth acting on, in plain words."""
    out = []
    landing = s.get("landing", {})
    hours = landing.get("landed_hours_ago")
    if landing.get("last_landed_day") is None:
        out.append("No landing folder has arrived yet.")
    elif hours is not None and hours > STALE_LANDING_HOURS:
        out.append(
            f"The last landing folder ({landing['last_landed_day']}) arrived {hours:.0f} h ago: "
            "check the export."
        )
    waiting = landing.get("landed_not_loaded") or []
    if waiting:
        out.append(f"{len(waiting)} landed day(s) not loaded yet: {', '.join(waiting[:5])}.")
    for run in s.get("runs", {}).get("last_run_by_job", []):
        if run["status"] == "FAILURE":
            out.append(f"The last {run['job']} run failed: {run['url']}")
    outbox = s.get("outbox", {})
    if outbox.get("dead_letters"):
        out.append(
            f"{outbox['dead_letters']} dead letter(s) in the outbox: see `ea outbox status`, "
            "fix the cause, then `ea outbox requeue-dead`."
        )
    models = s.get("models", {})
    for m in models.get("models", []):
        if m.get("champion") is None:
            out.append(
                f"{m['name']} has no champion: run `ea job full_pipeline_job` on a new "
                "warehouse, else `ea job training_job`."
            )
    if models.get("registry_error"):
        out.append(f"The MLflow registry cannot be read: {models['registry_error']}")
    if (models.get("drift") or {}).get("retrain"):
        out.append(f"Drift: {models['drift']['summary']}")
    disk = s.get("disk", {})
    if disk.get("free_share") is not None and disk["free_share"] < LOW_DISK_SHARE:
        out.append(f"Only {disk['free_share']:.0%} of the disk holding the data folder is free.")
    services = s.get("services", {})
    if services.get("services") and not services.get("supervisor_running"):
        out.append("`ea serve` is not running.")
    for svc in services.get("services", []):
        if services.get("supervisor_running") and not svc["up"]:
            out.append(f"The {svc['name']} service is down (restarting); see {svc['log']}.")
    for name, section in s.items():
        if isinstance(section, dict) and section.get("error"):
            out.append(f"The {name} section could not be read: {section['error']}")
    return out


def render_text(status: Status) -> str:
    s = status.sections
    lines = [f"Engagement Alerts status ({status.profile} profile, {status.generated_at} UTC)"]
    lines.append("")
    if status.problems:
        lines.append("Needs attention:")
        lines += [f"  ! {p}" for p in status.problems]
    else:
        lines.append("Nothing needs attention.")
    lines.append("")

    landing = s.get("landing", {})
    lines.append("Landing")
    if landing.get("error"):
        lines.append(f"  {landing['error']}")
    elif landing.get("last_landed_day"):
        lines.append(
            f"  last landed day {landing['last_landed_day']} (arrived "
            f"{_age(landing['landed_hours_ago'] * 3600)} ago; the data is "
            f"{landing['data_days_behind_today']} day(s) behind today), "
            f"{landing['complete_folders']} folder(s)"
        )
        lines.append(f"  last loaded day {landing.get('last_loaded_day') or 'none'}")
    else:
        lines.append(f"  {landing.get('note', '')}")

    runs = s.get("runs", {})
    lines.append("Runs" + (f" ({runs['in_flight']} in flight)" if runs.get("in_flight") else ""))
    if runs.get("error"):
        lines.append(f"  {runs['error']}")
    for r in runs.get("last_run_by_job", []):
        took = f" in {r['seconds']:.0f}s" if r.get("seconds") is not None else ""
        part = f" [{r['partition']}]" if r.get("partition") else ""
        lines.append(
            f"  {r['job']:<22} {r['status']:<8} {r['created_at']}{took}{part}  {r['url']}"
        )
    if not runs.get("last_run_by_job") and not runs.get("error"):
        lines.append("  no runs yet")

    alerts = s.get("alerts", {})
    lines.append("Alerts")
    if "note" in alerts or "error" in alerts:
        lines.append(f"  {alerts.get('note') or alerts.get('error')}")
    else:
        sev = ", ".join(f"{n} {k}" for k, n in sorted(alerts["raised_on_data_day"].items()))
        lines.append(
            f"  raised on the latest data day {alerts['data_day']}: "
            f"{alerts['raised_on_data_day_total']}" + (f" ({sev})" if sev else "")
        )
        lines.append(
            f"  raised today (calendar): {alerts['raised_today']}; open {alerts['open']} "
            f"({alerts['open_critical']} critical)"
        )

    outbox = s.get("outbox", {})
    lines.append("Outbox")
    if "note" in outbox or "error" in outbox:
        lines.append(f"  {outbox.get('note') or outbox.get('error')}")
    else:
        oldest = outbox["oldest_waiting_minutes"]
        lines.append(
            f"  backlog {outbox['backlog']}"
            + (f" (oldest {_age(oldest * 60)})" if oldest is not None else "")
            + f", dead letters {outbox['dead_letters']}; "
            + ", ".join(f"{n} {k}" for k, n in sorted(outbox["by_status"].items()))
            + f" (as of {outbox['as_of']})"
        )

    models = s.get("models", {})
    lines.append("Models")
    if models.get("error") or models.get("registry_error"):
        lines.append(f"  {models.get('error') or models.get('registry_error')}")
    for m in models.get("models", []):
        if m.get("champion") is None:
            lines.append(f"  {m['name']}: no champion")
        else:
            lines.append(
                f"  {m['name']}: champion v{m['champion']}, trained {m['trained_at']} "
                f"({m['age_days']:.0f} days ago)"
            )
    drift = models.get("drift") or {}
    if drift:
        link = f"  {drift['url']}" if drift.get("url") else ""
        lines.append(f"  drift: {drift.get('summary')}{link}")

    disk = s.get("disk", {})
    lines.append("Disk")
    if disk.get("error"):
        lines.append(f"  {disk['error']}")
    else:
        lines.append(
            f"  {human_bytes(disk['free_bytes'])} free of {human_bytes(disk['total_bytes'])} "
            f"({disk['free_share']:.0%}) on {disk['folder']}"
        )
        lines.append(
            "  " + ", ".join(f"{k} {human_bytes(v)}" for k, v in disk["sizes"].items())
        )

    services = s.get("services", {})
    lines.append("Services")
    if "note" in services or "error" in services:
        lines.append(f"  {services.get('note') or services.get('error')}")
    else:
        state = "running" if services["supervisor_running"] else "stopped"
        lines.append(f"  `ea serve` {state} since {services['started_at']}")
        for svc in services["services"]:
            state = "up" if svc["up"] else "down"
            restarts = f", {svc['restarts']} restart(s)" if svc["restarts"] else ""
            lines.append(f"  {svc['name']:<10} {state}{restarts}")
    lines.append("")
    lines.append(f"Details: the Dagster UI, {status.dagster_url}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="ea status", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--json", action="store_true", help="print the view as JSON")
    args = p.parse_args(argv)
    started = time.perf_counter()
    status = collect(Settings.from_env(os.environ))
    if args.json:
        print(json.dumps(status.as_dict(), indent=1, default=str))
    else:
        print(render_text(status))
        print(f"(collected in {time.perf_counter() - started:.1f}s)", file=sys.stderr)
    return 1 if status.problems else 0


if __name__ == "__main__":
    sys.exit(main())
