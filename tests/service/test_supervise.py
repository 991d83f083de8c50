"""The supervisor with small stand-in programs: restarts with backoff, readiness, clean stops."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from service.supervise import Service, Supervisor, group_alive, pid_alive

PY = sys.executable
# Ignores SIGTERM, and so does the child it starts (like a server whose workers linger).
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(600)
"""
# Starts a child, then waits; exits on SIGTERM (the child too: same process group).
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(600)
"""


def _supervisor(tmp_path: Path, services: list[Service], **kw) -> tuple[Supervisor, list[str]]:
    lines: list[str] = []
    sup = Supervisor(
        services,
        env=dict(os.environ),
        cwd=tmp_path,
        log_dir=tmp_path / "logs",
        state_path=tmp_path / "state.json",
        tick=0.05,
        say=lines.append,
        **kw,
    )
    return sup, lines


def _run_until(sup: Supervisor, done, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while not done():
        assert time.time() < deadline, "timed out"
        sup.step()
        time.sleep(0.05)


def _wait_file(path: Path, timeout: float = 20) -> int:
    deadline = time.time() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.time() < deadline
        time.sleep(0.05)
    return int(path.read_text())


def test_a_crashing_service_is_restarted_with_doubling_delays(tmp_path):
    crash = Service("crash", [PY, "-c", "import sys; sys.exit(3)"])
    sup, lines = _supervisor(tmp_path, [crash], min_backoff=0.2, max_backoff=0.8)
    sup.start()
    _run_until(sup, lambda: sup.running[0].restarts >= 4)
    sup.stop_all()
    delays = [float(m) for m in re.findall(r"restarting in ([\d.]+)s", " ".join(lines))]
    # Logged rounded to whole seconds; the schedule itself doubles up to the cap.
    assert "crash exited with code 3" in " ".join(lines)
    assert len(delays) >= 4
    assert sup.running[0].backoff == 0.8  # 0.2 -> 0.4 -> 0.8, capped
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["services"]["crash"]["restarts"] >= 4
    assert "code 3" in state["services"]["crash"]["last_exit"]


def test_the_delay_returns_to_the_minimum_after_a_stable_run(tmp_path):
    flag = tmp_path / "flag"
    # Exits at once the first two times, then runs a while, then exits again.
    code = (
        "import sys, time, pathlib; p = pathlib.Path(sys.argv[1]); n = int(p.read_text() or 0) "
        "if p.exists() else 0; p.write_text(str(n + 1)); time.sleep(0.6 if n >= 2 else 0)"
    )
    svc = Service("flaky", [PY, "-c", code, str(flag)])
    sup, lines = _supervisor(tmp_path, [svc], min_backoff=0.1, max_backoff=5, stable_after=0.5)
    sup.start()
    _run_until(sup, lambda: sup.running[0].restarts >= 3)
    sup.stop_all()
    # Two quick failures doubled the delay; the stable run reset it before the third exit.
    assert sup.running[0].backoff == 0.2


def test_readiness_is_probed_after_each_start(tmp_path):
    seen: list[float] = []

    def ready(started_at: float) -> bool:
        seen.append(started_at)
        return len(seen) >= 3

    svc = Service("slow", [PY, "-c", "import time; time.sleep(600)"], ready=ready)
    sup, lines = _supervisor(tmp_path, [svc])
    sup.start()
    _run_until(sup, lambda: sup.all_ready_at is not None)
    sup.stop_all()
    assert len(seen) >= 3 and set(seen) == {sup.running[0].started_at}
    assert any("slow ready after" in line for line in lines)
    assert any("all services ready after" in line for line in lines)


def test_stop_terminates_each_group_and_kills_what_ignores_sigterm(tmp_path):
    # Started, as `ea serve` is, from a process that ignores SIGTERM and SIGINT: a shell's
    # background job ignores SIGINT, and Dagster's interrupt handling copies SIGINT's handler
    # onto SIGTERM after an in-process run. An ignored signal stays ignored in the children,
    # so without the supervisor's own handlers the polite service would ignore SIGTERM too.
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in saved:
        signal.signal(sig, signal.SIG_IGN)
    child_of_parent, child_of_stubborn = tmp_path / "a.pid", tmp_path / "b.pid"
    try:
        sup, lines = _supervisor(
            tmp_path,
            [
                Service("polite", [PY, "-c", PARENT, str(child_of_parent)]),
                Service("stubborn", [PY, "-c", STUBBORN, str(child_of_stubborn)]),
            ],
            grace=5,  # a polite service exits well within it, even on a loaded machine
        )
        sup.install_signal_handlers()
        sup.start()
        pids = [_wait_file(child_of_parent), _wait_file(child_of_stubborn)]
        groups = [r.proc.pid for r in sup.running]
        started = time.time()
        sup.stop_all()
        took = time.time() - started
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert all(not pid_alive(p) for p in pids + groups)
    assert all(not group_alive(g) for g in groups)
    assert 4.9 < took < 20  # it waited for the stubborn one, then killed it
    killed = " ".join(line for line in lines if "killed" in line)
    assert "killed: stubborn [" in killed and "polite" not in killed
    # The processes that had to be killed are named: the stubborn service and its child.
    assert str(pids[1]) in killed and str(groups[1]) in killed


def test_a_killed_service_is_restarted_and_its_leftovers_stopped_at_the_end(tmp_path):
    child = tmp_path / "child.pid"
    svc = Service("daemon", [PY, "-c", PARENT, str(child)])
    sup, lines = _supervisor(tmp_path, [svc], min_backoff=0.1)
    sup.start()
    orphan = _wait_file(child)
    first = sup.running[0].proc.pid
    os.kill(first, signal.SIGKILL)  # the process only, as the OOM killer would
    child.unlink()
    _run_until(sup, lambda: sup.running[0].proc is not None and sup.running[0].restarts == 1)
    second_child = _wait_file(child)
    assert pid_alive(orphan)  # its child lives on (it may be finishing a run)
    sup.stop_all()
    assert any("daemon exited with signal 9" in line for line in lines)
    assert not pid_alive(orphan) and not pid_alive(second_child)
    assert any("leftovers of an earlier exit" in line for line in lines)


def test_serve_runs_until_sigterm_and_exits_cleanly(tmp_path):
    """The loop in a thread stops on request_stop() (what SIGTERM calls)."""
    svc = Service("sleeper", [PY, "-c", "import time; time.sleep(600)"])
    sup, lines = _supervisor(tmp_path, [svc])
    thread = threading.Thread(target=sup.run)
    thread.start()
    deadline = time.time() + 20
    while sup.running[0].proc is None and time.time() < deadline:
        time.sleep(0.05)
    pid = sup.running[0].proc.pid
    sup.request_stop()
    thread.join(timeout=30)
    assert not thread.is_alive() and not pid_alive(pid)
    assert lines[-1].endswith("stopped")


def _ea(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "orchestration.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_ea_serve_refuses_a_production_profile_without_postgres(tmp_path):
    env_file = tmp_path / "ea.env"
    env_file.write_text(
        "# production, but the Postgres URLs are missing\n"
        "EA_PROFILE=production\n"
        f"EA_DATA_DIR={tmp_path}/data\n"
        f"DAGSTER_HOME={tmp_path}/home\n"
        "MLFLOW_TRACKING_URI=http://127.0.0.1:5000\n"
        "EA_SECRET_KEY=x\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EA_", "DAGSTER", "MLFLOW"))}
    repo = Path(__file__).resolve().parents[2]
    done = _ea(["--env-file", str(env_file), "serve"], env, repo)
    assert done.returncode == 2
    assert "EA_DAGSTER_POSTGRES_URL is not set" in done.stderr
    assert "fix: set EA_DAGSTER_POSTGRES_URL=postgresql+psycopg2://" in done.stderr
    assert "EA_MLFLOW_BACKEND_URI" in done.stderr
    assert not (tmp_path / "home").exists()  # nothing was started or installed
