"""Import what a run's later steps need while its earlier steps wait on DuckDB or dbt.

A run process spends seconds importing Great Expectations (the raw checks) and the ML stack
(scoring) on the path from a landed file to its critical email. Those imports are pure Python,
while the steps before them mostly wait: the loader inside DuckDB, the marts in a dbt child
process, neither holding the interpreter. A daemon thread started by the first step does the
imports in that idle time.

Two threads must never import the same package at once (a package with internal import cycles
can then be seen half initialised), so a step that needs a warmed group calls `wait(group)`
before importing it: the group is then either fully imported or not started.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable

# What scoring imports (ml.registry, ml.model, ml.score): the slow part of its first call.
ML_MODULES = ("numpy", "pandas", "lightgbm", "mlflow", "mlflow.pyfunc", "mlflow.tracking")

_done: dict[str, threading.Event] = {}
_lock = threading.Lock()


def warm_up(groups: dict[str, tuple[str | Callable[[], object], ...]]) -> None:
    """Warm each group in order in one daemon thread: a module name is imported, a callable
    called. A group already warmed or warming in this process is skipped. A step that fails is
    skipped too (the step that needs it imports it again and reports the error).
    """
    with _lock:
        todo = {name: steps for name, steps in groups.items() if name not in _done}
        for name in todo:
            _done[name] = threading.Event()
    if not todo:
        return

    def run() -> None:
        for name, steps in todo.items():
            try:
                for step in steps:
                    try:
                        importlib.import_module(step) if isinstance(step, str) else step()
                    except Exception:  # noqa: BLE001 - the step that needs it reports it
                        continue
            finally:
                _done[name].set()

    threading.Thread(target=run, name="ea-warm-up", daemon=True).start()


def wait(group: str, timeout: float = 120.0) -> None:
    """Block until `group` is warmed, if a warm-up of it was started in this process."""
    event = _done.get(group)
    if event is not None:
        event.wait(timeout)
