"""`ea backup`: back up and restore everything the pipeline cannot recompute, and rebuild the
marts from `raw.*` alone.

ea backup create --to /var/backups/engagement-alerts     # a new dated folder under --to
ea backup verify /var/backups/engagement-alerts/ea-backup-20260301T020000Z
ea backup restore /var/backups/engagement-alerts/ea-backup-20260301T020000Z --yes
ea backup rebuild-marts --yes                            # staging, intermediate, marts from raw

A backup folder holds: `warehouse.duckdb` (a consistent copy: taken between runs, after a
checkpoint, while this command holds the file), `inbox.sqlite` (actions people recorded that may
not have reached the warehouse yet), the Dagster instance (`dagster.pgdump` from Postgres in the
production profile, `dagster_home/` on the embedded one), the MLflow store (`mlflow.pgdump` or
`mlflow.db`) with its artifact folder (`mlflow-artifacts/`), a copy of the config folder, and
`manifest.json` (what, from where, sizes and SHA-256 of every file). Not in it: the landing
folder (the exports are their own source; raw.* holds what was loaded), the environment file
(it holds the secrets: keep it with them) and the published files (analyst database, inbox
snapshot, work list), which `restore` publishes again from the restored warehouse.

`restore` needs `ea serve` stopped; it moves what it replaces aside (`*.before-restore-<time>`)
and restores into the same paths and databases (MLflow's artifact locations are absolute).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from service.profile import Settings, redact
from warehouse.catalog import table_exists

MANIFEST = "manifest.json"
FORMAT = 1


def say(message: str) -> None:
    print(f"[backup {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- helpers ----------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path) -> dict[str, dict[str, object]]:
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        out[path.relative_to(folder).as_posix()] = {
            "bytes": path.stat().st_size,
            "sha256": _sha256(path),
        }
    return out


def sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy of a live sqlite database (its online backup API)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _copy_tree(source: Path, target: Path) -> None:
    """Copy a folder; sqlite files through their backup API (they may be written meanwhile)."""
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        dst = target / rel
        if path.is_dir():
            dst.mkdir(parents=True, exist_ok=True)
        elif path.suffix == ".db":
            sqlite_copy(path, dst)
        elif path.suffix not in (".db-wal", ".db-shm", ".db-journal") and path.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dst)


def pg_tool(name: str) -> str:
    """pg_dump / pg_restore: on PATH, else the newest Debian postgresql-client's."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    if versions:
        return str(versions[0])
    raise SystemExit(
        f"error: {name} is not installed: install the Postgres client (postgresql-client-15)"
    )


def _pg_args(url: str) -> tuple[list[str], dict[str, str]]:
    """Connection arguments for pg_dump/pg_restore, the password in the environment (never on
    the command line, which other users of the machine can read).
    """
    parts = urllib.parse.urlsplit(url)
    args = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432)]
    if parts.username:
        args += ["-U", urllib.parse.unquote(parts.username)]
    env = {**os.environ}
    if parts.password is not None:
        env["PGPASSWORD"] = urllib.parse.unquote(parts.password)
    return args + ["-d", parts.path.lstrip("/")], env


def pg_dump(url: str, target: Path) -> None:
    args, env = _pg_args(url)
    cmd = [pg_tool("pg_dump"), "--format=custom", "--no-owner", "-f", str(target), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"error: pg_dump of {redact(url)} failed: {done.stderr.strip()[:500]}")


def pg_restore(url: str, source: Path) -> None:
    args, env = _pg_args(url)
    cmd = [pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
           *args, str(source)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"error: pg_restore into {redact(url)} failed: {done.stderr[:500]}")


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def _instance(settings: Settings):
    import dagster as dg

    return dg.DagsterInstance.from_config(str(settings.dagster_home))


def runs_in_flight(settings: Settings) -> int:
    from dagster import DagsterRunStatus, RunsFilter

    busy = [
        DagsterRunStatus.QUEUED,
        DagsterRunStatus.NOT_STARTED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
        DagsterRunStatus.CANCELING,
    ]
    instance = _instance(settings)
    return len(instance.get_run_records(filters=RunsFilter(statuses=busy)))


def _connect_warehouse(path: Path, wait_seconds: float):
    """A connection to the warehouse, retried while a run holds it."""
    import duckdb

    deadline = time.time() + wait_seconds
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if time.time() > deadline:
                raise SystemExit(
                    f"error: the warehouse stayed busy for {wait_seconds:.0f}s ({exc}); "
                    "try again between runs"
                ) from None
            time.sleep(2)


def serve_running(settings: Settings) -> int | None:
    """The pid of `ea serve` for this data folder, or None."""
    import fcntl

    lock = settings.data_dir / "run" / "serve.lock"
    if not lock.exists():
        return None
    with lock.open("r") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = lock.read_text().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


# --- create -----------------------------------------------------------------------------------


def create(settings: Settings, to: Path, wait_seconds: float = 600) -> Path:
    """Write a new backup folder under `to`; returns it."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    final = to / f"ea-backup-{stamp}"
    work = to / f".ea-backup-{stamp}.partial"
    work.mkdir(parents=True)
    started = time.perf_counter()
    facts: dict[str, object] = {}

    # The Dagster and MLflow state first: a run that ends meanwhile is then in the warehouse copy
    # too (the warehouse is never behind the run history it is restored with).
    if settings.production:
        say("Dagster instance: pg_dump of EA_DAGSTER_POSTGRES_URL")
        pg_dump(settings.dagster_postgres_url, work / "dagster.pgdump")
        say("MLflow store: pg_dump of EA_MLFLOW_BACKEND_URI")
        pg_dump(settings.mlflow_backend_uri, work / "mlflow.pgdump")
    else:
        say(f"Dagster instance: {settings.dagster_home}")
        _copy_tree(settings.dagster_home, work / "dagster_home")
        db = _sqlite_path(settings.mlflow_backend_uri)
        if db is not None and db.exists():
            say(f"MLflow store: {db}")
            sqlite_copy(db, work / "mlflow.db")
    if settings.mlflow_artifacts.exists():
        say(f"MLflow artifacts: {settings.mlflow_artifacts}")
        shutil.copytree(settings.mlflow_artifacts, work / "mlflow-artifacts")

    inbox_store = Path(os.environ.get("EA_INBOX_DB") or settings.data_dir / "inbox.sqlite")
    if inbox_store.exists():
        say(f"inbox actions: {inbox_store}")
        sqlite_copy(inbox_store, work / "inbox.sqlite")
    if settings.config_dir.is_dir():
        shutil.copytree(settings.config_dir, work / "config")

    if settings.warehouse.exists():
        deadline = time.time() + wait_seconds
        try:
            while runs_in_flight(settings) and time.time() < deadline:
                say("a run is in flight: waiting for it to finish before copying the warehouse")
                time.sleep(5)
        except Exception as exc:  # noqa: BLE001 - no instance to ask: rely on the file lock
            say(f"cannot ask the Dagster instance about runs ({type(exc).__name__}); going on")
        con = _connect_warehouse(settings.warehouse, max(deadline - time.time(), 30))
        try:
            # Everything committed is in the main file after a checkpoint; holding the
            # connection keeps every other writer out while the file is copied.
            con.execute("checkpoint")
            held = time.perf_counter()
            shutil.copy2(settings.warehouse, work / "warehouse.duckdb")
            facts["warehouse_held_seconds"] = round(time.perf_counter() - held, 2)
        finally:
            con.close()
        say(f"warehouse: {settings.warehouse} (held {facts['warehouse_held_seconds']} s)")
        facts.update(warehouse_facts(work / "warehouse.duckdb"))

    manifest = {
        "format": FORMAT,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "profile": settings.profile,
        "source": {
            "warehouse": str(settings.warehouse),
            "dagster": redact(settings.dagster_postgres_url) or str(settings.dagster_home),
            "mlflow": redact(settings.mlflow_backend_uri),
            "mlflow_artifacts": str(settings.mlflow_artifacts),
            "inbox_store": str(inbox_store),
            "config": str(settings.config_dir),
        },
        "facts": facts,
        "not_included": [
            "the landing folder (the exports; raw.* holds what was loaded)",
            "the environment file (secrets: back it up with them)",
            "published files (analyst database, inbox snapshot, work list): restore republishes",
        ],
        "files": _files(work),
    }
    (work / MANIFEST).write_text(json.dumps(manifest, indent=1))
    work.rename(final)
    size = sum(f["bytes"] for f in manifest["files"].values())
    say(f"backup written to {final} ({size / 1e6:.1f} MB in {time.perf_counter() - started:.1f}s)")
    return final


def warehouse_facts(path: Path) -> dict[str, object]:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_schema = 'raw' and table_type = 'BASE TABLE' order by 1"
        ).fetchall()
        counts = {t: con.execute(f"select count(*) from {t}").fetchall()[0][0] for (t,) in tables}
        latest = None
        if "raw.events" in counts:
            latest = con.execute("select max(landing_date) from raw.events").fetchall()[0][0]
    finally:
        con.close()
    return {"raw_rows": counts, "latest_landing_day": str(latest) if latest else None}


# --- verify and restore -----------------------------------------------------------------------


def verify(folder: Path) -> dict:
    """The manifest, after checking every file's size and SHA-256; SystemExit on a mismatch."""
    path = folder / MANIFEST
    if not path.exists():
        raise SystemExit(f"error: {folder} is not a backup folder (no {MANIFEST})")
    manifest = json.loads(path.read_text())
    bad = []
    for name, info in manifest["files"].items():
        f = folder / name
        if not f.exists():
            bad.append(f"{name} is missing")
        elif f.stat().st_size != info["bytes"] or _sha256(f) != info["sha256"]:
            bad.append(f"{name} does not match its checksum")
    if bad:
        raise SystemExit(f"error: backup {folder} is damaged: " + "; ".join(bad[:10]))
    return manifest


def _aside(path: Path, stamp: str) -> Path | None:
    if not path.exists():
        return None
    target = path.with_name(f"{path.name}.before-restore-{stamp}")
    path.rename(target)
    return target


def restore(settings: Settings, folder: Path) -> dict[str, object]:
    pid = serve_running(settings)
    if pid is not None:
        raise SystemExit(
            f"error: `ea serve` is running (pid {pid}); stop it first "
            "(systemctl stop engagement-alerts, or Ctrl-C)"
        )
    manifest = verify(folder)
    if manifest["profile"] != settings.profile:
        raise SystemExit(
            f"error: the backup is of the {manifest['profile']} profile and this is the "
            f"{settings.profile} profile: restore it with the same profile"
        )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    moved = []
    if (folder / "warehouse.duckdb").exists():
        settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
        for p in (settings.warehouse, Path(f"{settings.warehouse}.wal")):
            if (m := _aside(p, stamp)) is not None:
                moved.append(m)
        shutil.copy2(folder / "warehouse.duckdb", settings.warehouse)
        say(f"warehouse restored to {settings.warehouse}")
    inbox_store = Path(os.environ.get("EA_INBOX_DB") or settings.data_dir / "inbox.sqlite")
    if (folder / "inbox.sqlite").exists():
        if (m := _aside(inbox_store, stamp)) is not None:
            moved.append(m)
        sqlite_copy(folder / "inbox.sqlite", inbox_store)
        say(f"inbox actions restored to {inbox_store}")
    if settings.production:
        pg_restore(settings.dagster_postgres_url, folder / "dagster.pgdump")
        say(f"Dagster instance restored into {redact(settings.dagster_postgres_url)}")
        pg_restore(settings.mlflow_backend_uri, folder / "mlflow.pgdump")
        say(f"MLflow store restored into {redact(settings.mlflow_backend_uri)}")
    else:
        if (folder / "dagster_home").exists():
            keep = settings.dagster_home / "dagster.yaml"
            yaml_text = keep.read_text() if keep.exists() else None
            if (m := _aside(settings.dagster_home, stamp)) is not None:
                moved.append(m)
            shutil.copytree(folder / "dagster_home", settings.dagster_home)
            if yaml_text is not None:
                keep.write_text(yaml_text)
            say(f"Dagster instance restored to {settings.dagster_home}")
        db = _sqlite_path(settings.mlflow_backend_uri)
        if db is not None and (folder / "mlflow.db").exists():
            if (m := _aside(db, stamp)) is not None:
                moved.append(m)
            sqlite_copy(folder / "mlflow.db", db)
            say(f"MLflow store restored to {db}")
    if (folder / "mlflow-artifacts").exists():
        if (m := _aside(settings.mlflow_artifacts, stamp)) is not None:
            moved.append(m)
        shutil.copytree(folder / "mlflow-artifacts", settings.mlflow_artifacts)
        say(f"MLflow artifacts restored to {settings.mlflow_artifacts}")
    if settings.warehouse.exists():
        republish(settings)
    for m in moved:
        say(f"kept the replaced copy as {m}")
    return {"restored_from": str(folder), "moved_aside": [str(m) for m in moved]}


def republish(settings: Settings) -> None:
    """The files readers and sensors use, published again from the restored warehouse."""
    import duckdb
    import yaml

    from alerts.recipients import People
    from inbox.snapshot import publish_app_snapshot
    from warehouse.analytics import publish_analyst_database
    from warehouse.ops_state import ops_state_path, publish_ops_state

    routing_file = settings.config_dir / "routing.yml"
    routing = yaml.safe_load(routing_file.read_text()) if routing_file.exists() else {}
    snapshot = Path(os.environ.get("EA_APP_SNAPSHOT") or settings.data_dir / "app_snapshot.duckdb")
    con = duckdb.connect(str(settings.warehouse))
    try:
        publish_analyst_database(con, settings.analyst_database, "ea backup restore")
        say(f"analyst database published to {settings.analyst_database}")
        publish_ops_state(con, ops_state_path(settings.data_dir), "ea backup restore")
        try:
            publish_app_snapshot(con, snapshot, People.from_routing(routing or {}))
            say(f"inbox snapshot published to {snapshot}")
        except RuntimeError as exc:  # no alerts yet: nothing for the inbox to show
            say(f"inbox snapshot not published: {exc}")
    finally:
        con.close()


# --- rebuild the marts --------------------------------------------------------------------------

DERIVED_SCHEMAS = ("staging", "intermediate", "marts")


def rebuild_marts(settings: Settings) -> dict[str, object]:
    """Drop every dbt-built schema and build them again from raw.* (full refresh), as a
    recorded Dagster run of marts_job.
    """
    pid = serve_running(settings)
    if pid is not None:
        raise SystemExit(
            f"error: `ea serve` is running (pid {pid}); stop it first: its runs need the "
            "warehouse this rebuild holds"
        )
    if not settings.warehouse.exists():
        raise SystemExit(f"error: no warehouse at {settings.warehouse}")
    con = _connect_warehouse(settings.warehouse, 60)
    try:
        if not table_exists(con, "raw", "events"):
            raise SystemExit("error: the warehouse has no raw.events: nothing to rebuild from")
        for schema in DERIVED_SCHEMAS:
            con.execute(f"drop schema if exists {schema} cascade")
    finally:
        con.close()
    say(f"dropped {', '.join(DERIVED_SCHEMAS)}; building them from raw.* (full refresh)")
    import dagster as dg

    from orchestration.definitions import defs

    started = time.perf_counter()
    config = {"ops": {"marts_dbt": {"config": {"full_refresh": True}}}}
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        result = defs.resolve_job_def("marts_job").execute_in_process(
            run_config=config, instance=instance, raise_on_error=False
        )
    if not result.success:
        errors = [
            f"{e.step_key}: {e.event_specific_data.error.message.strip()[:500]}"
            for e in result.all_events
            if e.is_step_failure and e.event_specific_data and e.event_specific_data.error
        ]
        raise SystemExit("error: the marts rebuild failed:\n" + "\n".join(errors))
    import duckdb

    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        tables = con.execute(
            "select count(*) from information_schema.tables where table_schema = 'marts'"
        ).fetchall()[0][0]
    finally:
        con.close()
    seconds = round(time.perf_counter() - started, 1)
    say(f"marts rebuilt: {tables} marts tables in {seconds}s (run {result.run_id})")
    return {"run_id": result.run_id, "marts_tables": tables, "seconds": seconds}


# --- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="ea backup", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create", help="write a new backup folder")
    c.add_argument("--to", type=Path, default=None, help="where (default $EA_BACKUP_DIR)")
    c.add_argument("--wait", type=float, default=600, help="seconds to wait for a run to end")
    v = sub.add_parser("verify", help="check a backup folder's files against its manifest")
    v.add_argument("folder", type=Path)
    r = sub.add_parser("restore", help="restore a backup folder (ea serve must be stopped)")
    r.add_argument("folder", type=Path)
    r.add_argument("--yes", action="store_true", help="really replace the current state")
    b = sub.add_parser("rebuild-marts", help="rebuild staging, intermediate and marts from raw")
    b.add_argument("--yes", action="store_true", help="really drop and rebuild them")
    args = p.parse_args(argv)
    settings = Settings.from_env(os.environ)
    if args.command == "create":
        to = args.to or (Path(os.environ["EA_BACKUP_DIR"]) if os.environ.get("EA_BACKUP_DIR")
                         else None)  # fmt: skip
        if to is None:
            p.error("give --to FOLDER or set EA_BACKUP_DIR")
        print(create(settings, to, args.wait))
        return 0
    if args.command == "verify":
        manifest = verify(args.folder)
        print(f"ok: {len(manifest['files'])} files match; {manifest['profile']} profile, "
              f"taken {manifest['created_at']}")  # fmt: skip
        return 0
    if not args.yes:
        p.error(f"`ea backup {args.command}` replaces data: add --yes")
    if args.command == "restore":
        print(json.dumps(restore(settings, args.folder), indent=1))
        return 0
    print(json.dumps(rebuild_marts(settings), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
