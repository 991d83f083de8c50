"""A small process supervisor: start services, restart a crashed one with backoff, stop cleanly.

Each service runs in its own process group (its children, such as the Dagster code server and
run workers, join it), with its output appended to `<log dir>/<name>.log`. A service that exits
while the supervisor is not stopping is started again after a delay that doubles with each quick
failure (1 s, 2 s, 4 s ... at most `max_backoff`) and returns to the minimum once the service has
stayed up `stable_after` seconds; every exit and restart is logged. Stopping sends SIGTERM to
every group (also the leftovers of crashed services, whose children may still be finishing a
run), waits up to `grace` seconds, then sends SIGKILL to whatever is left.

The supervisor's state (its pid, each service's pid, restarts, readiness) is written to a JSON
file that `ea status` and the tests read.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Service:
    """One supervised program. `ready(started_at)` answers whether it is serving since its
    latest start (polled in a thread until it says yes).
    """

    name: str
    argv: list[str]
    ready: Callable[[float], bool] | None = None
    description: str = ""
    env: dict[str, str] = field(default_factory=dict)  # added to the supervisor's environment


@dataclass
class _Running:
    service: Service
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = 0.0
    next_start: float = 0.0
    ready_at: float | None = None
    last_exit: str = ""
    log: object = None
    checking: bool = False
    orphans: list[int] = field(default_factory=list)


def _now_iso(at: float | None = None) -> str:
    stamp = dt.datetime.fromtimestamp(time.time() if at is None else at, dt.UTC)
    return stamp.isoformat(timespec="seconds")


def group_members(pgid: int) -> list[str]:
    """The running members of a process group, as "pid (command)"; zombies (exited children
    whose new parent has not reaped them yet) still count for killpg but run nothing, so they
    are left out.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        return [f"group {pgid} (not ours to inspect)"]
    proc = Path("/proc")
    if not proc.is_dir():
        return [f"group {pgid}"]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command, _, rest = (entry / "stat").read_text().rpartition(")")
            fields = rest.split()
        except (OSError, IndexError):
            continue
        # After the command: state, ppid, pgrp.
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            members.append(f"{entry.name} ({command.partition('(')[2]})")
    return members


def group_alive(pgid: int) -> bool:
    """Whether a process group has a member that is not a zombie."""
    return bool(group_members(pgid))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) still answers signal 0; /proc says so.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


class Supervisor:
    """Start `services`, keep them running, stop them all on `stop()` (or SIGTERM/SIGINT)."""

    def __init__(
        self,
        services: list[Service],
        env: dict[str, str],
        cwd: Path,
        log_dir: Path,
        state_path: Path | None = None,
        min_backoff: float = 1.0,
        max_backoff: float = 60.0,
        stable_after: float = 60.0,
        grace: float = 20.0,
        tick: float = 0.25,
        say: Callable[[str], None] | None = None,
    ):
        self.running = [_Running(s, backoff=min_backoff) for s in services]
        self.env = env
        self.cwd = cwd
        self.log_dir = log_dir
        self.state_path = state_path
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.grace = grace
        self.tick = tick
        self.began = time.time()
        self.all_ready_at: float | None = None
        self._stop = threading.Event()
        self._say = say or (lambda line: print(line, flush=True))
        self._lock = threading.Lock()
        self._written = 0.0
        log_dir.mkdir(parents=True, exist_ok=True)
        self._logfile = (log_dir / "serve.log").open("a", encoding="utf-8")

    # --- logging and state ----------------------------------------------------------------

    def say(self, message: str) -> None:
        line = f"[serve {_now_iso()}] {message}"
        self._say(line)
        self._logfile.write(line + "\n")
        self._logfile.flush()

    def state(self) -> dict:
        return {
            "supervisor_pid": os.getpid(),
            "started_at": _now_iso(self.began),
            "all_ready_seconds": (
                round(self.all_ready_at - self.began, 1) if self.all_ready_at else None
            ),
            "services": {
                r.service.name: {
                    "pid": r.proc.pid if r.proc and r.proc.poll() is None else None,
                    "started_at": _now_iso(r.started_at) if r.started_at else None,
                    "ready": r.ready_at is not None,
                    "restarts": r.restarts,
                    "last_exit": r.last_exit,
                    "log": str(self.log_dir / f"{r.service.name}.log"),
                    "command": r.service.argv,
                }
                for r in self.running
            },
        }

    def _write_state(self) -> None:
        self._written = time.time()
        if self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state(), indent=1))
        os.replace(tmp, self.state_path)

    # --- one service ------------------------------------------------------------------------

    def _start(self, r: _Running) -> None:
        log = (self.log_dir / f"{r.service.name}.log").open("ab")
        log.write(f"\n--- {_now_iso()} starting: {' '.join(r.service.argv)}\n".encode())
        log.flush()
        r.proc = subprocess.Popen(
            r.service.argv,
            cwd=self.cwd,
            env={**self.env, **r.service.env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: its children go with it
        )
        r.log = log
        r.started_at = time.time()
        r.ready_at = None
        what = "restarted" if r.restarts else "started"
        self.say(f"{r.service.name} {what} (pid {r.proc.pid})")

    def _check_ready(self, r: _Running) -> None:
        """Poll the readiness probe in a thread (a probe may take a second)."""
        if r.ready_at is not None or r.checking or r.proc is None:
            return
        if r.service.ready is None:
            r.ready_at = time.time()
            return
        r.checking = True
        proc, started = r.proc, r.started_at

        def probe() -> None:
            try:
                ok = bool(r.service.ready(started))
            except Exception:  # noqa: BLE001 - a probe failing means "not yet"
                ok = False
            with self._lock:
                r.checking = False
                if ok and r.proc is proc and proc.poll() is None and r.ready_at is None:
                    r.ready_at = time.time()
                    self.say(
                        f"{r.service.name} ready after {r.ready_at - r.started_at:.1f}s"
                    )

        threading.Thread(target=probe, daemon=True).start()

    def _exited(self, r: _Running, code: int) -> None:
        ran = time.time() - r.started_at
        if r.log is not None:
            r.log.close()
        # Its children (a code server finishing a run) may outlive it: stopped with the rest.
        r.orphans.append(r.proc.pid)
        r.proc = None
        r.restarts += 1
        if ran >= self.stable_after:
            r.backoff = self.min_backoff
        delay = r.backoff
        r.backoff = min(r.backoff * 2, self.max_backoff)
        r.next_start = time.time() + delay
        how = f"signal {-code}" if code < 0 else f"code {code}"
        r.last_exit = f"{how} at {_now_iso()} after {ran:.0f}s"
        self.say(
            f"{r.service.name} exited with {how} after {ran:.1f}s; restarting in {delay:.0f}s "
            f"(restart {r.restarts})"
        )

    # --- the loop -----------------------------------------------------------------------------

    def start(self) -> None:
        for r in self.running:
            self._start(r)
        self._write_state()

    def step(self) -> None:
        """One pass: notice exits, restart what is due, poll readiness."""
        changed = False
        now = time.time()
        with self._lock:
            for r in self.running:
                if r.proc is not None:
                    code = r.proc.poll()
                    if code is not None:
                        self._exited(r, code)
                        changed = True
                    elif now - r.started_at >= self.stable_after:
                        r.backoff = self.min_backoff
                if r.proc is None and now >= r.next_start and not self._stop.is_set():
                    self._start(r)
                    changed = True
            for r in self.running:
                before = r.ready_at
                self._check_ready(r)
                changed |= before != r.ready_at
            if self.all_ready_at is None and all(r.ready_at for r in self.running):
                self.all_ready_at = time.time()
                self.say(f"all services ready after {self.all_ready_at - self.began:.1f}s")
                changed = True
        if changed or time.time() - self._written >= 5:
            self._write_state()

    def run(self) -> None:
        """Start everything and supervise until stop() or SIGTERM/SIGINT; then stop all."""
        self.start()
        try:
            while not self._stop.wait(self.tick):
                self.step()
        finally:
            self.stop_all()

    def request_stop(self, *_args) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def stop_all(self) -> None:
        """SIGTERM every process group, wait up to `grace` seconds, SIGKILL what is left."""
        self._stop.set()
        groups: dict[int, str] = {}
        for r in self.running:
            if r.proc is not None:
                groups[r.proc.pid] = r.service.name
            for pgid in r.orphans:
                if group_alive(pgid):
                    groups[pgid] = f"{r.service.name} (leftovers of an earlier exit)"
        if not groups:
            self.say("stopped (nothing was running)")
            return
        self.say(f"stopping {', '.join(sorted(set(groups.values())))}")
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + self.grace
        while time.time() < deadline:
            for r in self.running:
                if r.proc is not None:
                    r.proc.poll()
            if not any(group_alive(pgid) for pgid in groups):
                break
            time.sleep(0.1)
        killed = [
            f"{name} [{', '.join(members)}]"
            for pgid, name in groups.items()
            if (members := group_members(pgid))
        ]
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for r in self.running:
            if r.proc is not None:
                try:
                    r.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
                r.proc = None
            if r.log is not None:
                r.log.close()
        if killed:
            self.say(f"still running after {self.grace:.0f}s, killed: {', '.join(killed)}")
        self.say("stopped")
        self._write_state()
        self._logfile.close()
