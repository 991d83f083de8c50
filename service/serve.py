"""`ea serve`: the Dagster webserver, the Dagster daemon, the alert inbox and the MLflow server,
started and kept running together (see service/supervise.py for restarts and stopping).

ea serve                                   # the profile the environment says (EA_PROFILE)
ea --env-file /etc/engagement-alerts/ea.env serve
ea serve --only daemon,webserver           # a subset

The configuration comes from the environment (an environment file: `ea --env-file FILE serve`
or systemd's EnvironmentFile=). Before starting anything the configuration is checked (the
problems `ea doctor` reports as "config"), and the profile's Dagster instance configuration is
installed into $DAGSTER_HOME. Logs: $EA_LOG_DIR (default $EA_DATA_DIR/logs), one file per
service plus serve.log; state: $EA_DATA_DIR/run/serve.json. Stop with Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
import urllib.request
from pathlib import Path

from service.profile import REPO, Settings, install_instance_yaml
from service.supervise import Service, Supervisor

SERVICES = ("webserver", "daemon", "inbox", "mlflow")
# Embedded profile only, while mail goes to the local default relay (as `make ui`): a capture
# server, so the inbox's sign-in emails and the alerts land in $EA_DATA_DIR/mail.
MAIL = "mail"
STATE_FILE = Path("run") / "serve.json"


def state_path(settings: Settings) -> Path:
    return settings.data_dir / STATE_FILE


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our URL
            return 200 <= response.status < 300
    except (OSError, ValueError):
        return False


def _daemon_ready(started_at: float) -> bool:
    """Every daemon this instance needs (sensors, schedules, the run queue) has reported a
    heartbeat since the daemon's latest start.
    """
    import dagster as dg

    instance = _instance_cache.get("instance")
    if instance is None:
        instance = _instance_cache["instance"] = dg.DagsterInstance.get()
    beats = instance.get_daemon_heartbeats()
    needed = instance.get_required_daemon_types()
    return all(t in beats and beats[t].timestamp >= started_at for t in needed)


_instance_cache: dict[str, object] = {}


def local_mail(settings: Settings, environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return not settings.production and (env.get("SMTP_HOST") or "127.0.0.1") == "127.0.0.1"


def services(settings: Settings, only: tuple[str, ...] = SERVICES) -> list[Service]:
    """The service definitions of a profile (the same command lines the deploy/ files use)."""
    bindir = Path(sys.executable).parent
    workspace = str(REPO / "workspace.yaml")
    wh, wp = settings.dagster_listen
    ih, ip = settings.inbox_listen
    mh, mp = settings.mlflow_listen
    backend = settings.mlflow_backend_uri
    table = {
        "webserver": Service(
            "webserver",
            [str(bindir / "dagster-webserver"), "-w", workspace, "-h", wh, "-p", str(wp)],
            ready=lambda _t: http_ok(f"http://{wh}:{wp}/server_info"),
            description=f"Dagster UI on http://{wh}:{wp}",
        ),
        "daemon": Service(
            "daemon",
            [str(bindir / "dagster-daemon"), "run", "-w", workspace],
            ready=_daemon_ready,
            description="Dagster daemon: sensors, schedules, the run queue",
        ),
        "inbox": Service(
            "inbox",
            [sys.executable, "-m", "inbox.cli", "serve", "--host", ih, "--port", str(ip)],
            ready=lambda _t: http_ok(f"http://{ih}:{ip}/healthz"),
            description=f"alert inbox on http://{ih}:{ip} (links: {settings.public_url})",
        ),
        "mlflow": Service(
            "mlflow",
            [
                str(bindir / "mlflow"),
                "server",
                "--artifacts-destination",
                str(settings.mlflow_artifacts.resolve()),
                "--host",
                mh,
                "--port",
                str(mp),
                "--workers",
                "1",
            ],
            ready=lambda _t: http_ok(f"http://{mh}:{mp}/health"),
            description=f"MLflow server on http://{mh}:{mp}",
            # Its job runner (prompt optimisation, trace roll-ups) is unused here: without it
            # the server is one process group that stops on SIGTERM.
            env={
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                # The store's URL holds a password: the environment, not the command line
                # (which any user of the machine can read).
                "MLFLOW_BACKEND_STORE_URI": backend,
                "MLFLOW_REGISTRY_STORE_URI": backend,
            },
        ),
    }
    if local_mail(settings):
        port = os.environ.get("SMTP_PORT") or "8025"
        table[MAIL] = Service(
            MAIL,
            [sys.executable, "-m", "notifications.capture", "--port", port,
             "--dir", str(settings.data_dir / "mail")],  # fmt: skip
            description=f"mail capture on 127.0.0.1:{port} (files in {settings.data_dir / 'mail'})",
        )
    return [table[name] for name in (*SERVICES, MAIL) if name in only and name in table]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="ea serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--only",
        default=",".join((*SERVICES, MAIL)),
        help=f"comma-separated subset of {', '.join(SERVICES)} (and {MAIL} on embedded "
        "defaults with the local relay; default: all)",
    )
    p.add_argument(
        "--grace", type=float, default=20.0, help="seconds between SIGTERM and SIGKILL on stop"
    )
    args = p.parse_args(argv)
    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = sorted(set(only) - {*SERVICES, MAIL})
    if unknown:
        p.error(f"unknown service(s) {unknown}; choose from {', '.join((*SERVICES, MAIL))}")

    settings = Settings.from_env(os.environ)
    problems = settings.problems()
    if problems:
        for problem, fix in problems:
            print(f"error: {problem}\n  fix: {fix}", file=sys.stderr)
        print("ea serve: not started (run `ea doctor` for every check)", file=sys.stderr)
        return 2
    installed = install_instance_yaml(settings)
    for folder in (settings.data_dir, settings.landing_dir, settings.log_dir):
        folder.mkdir(parents=True, exist_ok=True)
    state = state_path(settings)
    state.parent.mkdir(parents=True, exist_ok=True)
    lock = (state.parent / "serve.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(
            f"error: `ea serve` is already running for this data folder ({state}); stop it first",
            file=sys.stderr,
        )
        return 2
    lock.write(str(os.getpid()))
    lock.flush()

    chosen = services(settings, only)
    supervisor = Supervisor(
        chosen,
        env=dict(os.environ),
        cwd=REPO,
        log_dir=settings.log_dir,
        state_path=state,
        grace=args.grace,
    )
    supervisor.install_signal_handlers()
    supervisor.say(
        f"{settings.profile} profile; data {settings.data_dir}; logs {settings.log_dir}"
        + (f"; {installed}" if installed else "")
    )
    for svc in chosen:
        supervisor.say(f"  {svc.name}: {svc.description}")
    supervisor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
