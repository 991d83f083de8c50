"""A run launched by the daemon runs in a spawned child of the code server: it must survive
the imports the steps make there (Great Expectations with the Spark extra installed)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

WORKER = """
import os


def child(queue):
    try:
        if os.environ.get("EA_TEST_LOAD_DEFINITIONS"):
            import orchestration.definitions  # noqa: F401
        import great_expectations  # noqa: F401

        queue.put("imported")
    except SystemExit as exc:
        queue.put(f"SystemExit {exc.code}")
"""

# Started with `python -m probe`, like the code server (`python -m dagster api grpc`): the
# spawned child's __main__ then has neither __spec__ nor __file__, as in a real run worker.
MAIN = """
import multiprocessing

from probe.worker import child

context = multiprocessing.get_context("spawn")
queue = context.Queue()
process = context.Process(target=child, args=(queue,))
process.start()
print(queue.get(timeout=300))
process.join()
"""


def _spawned_import(tmp_path: Path, load_definitions: bool) -> str:
    package = tmp_path / "probe"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "worker.py").write_text(WORKER)
    (package / "__main__.py").write_text(MAIN)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    env.pop("EA_TEST_LOAD_DEFINITIONS", None)
    if load_definitions:
        env["EA_TEST_LOAD_DEFINITIONS"] = "1"
    out = subprocess.run(
        [sys.executable, "-m", "probe"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return (out.stdout.strip().splitlines() or [out.stderr[-2000:]])[-1]


@pytest.mark.skipif(
    importlib.util.find_spec("pyspark") is None, reason="only the Spark extra triggers the exit"
)
def test_great_expectations_imports_in_a_run_worker_once_definitions_are_loaded(ea_env, tmp_path):
    # Without the definitions' guard, pyspark's doctest check ends the process (the bug the
    # daemon-launched ingest run hit); a run worker always loads the definitions first.
    assert _spawned_import(tmp_path, load_definitions=True) == "imported"
