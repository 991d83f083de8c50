import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _cli(tmp_path: Path, name: str, *extra: str, hashseed: str = "0"):
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    args = [
        sys.executable,
        "-m",
        "simulator",
        "--accounts",
        "8",
        "--start",
        "2025-02-01",
        "--end",
        "2025-02-20",
        "--seed",
        "4",
        "--out",
        str(tmp_path / name),
        *extra,
    ]
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_cli_writes_files_prints_a_summary_and_reports_progress(tmp_path):
    done = _cli(tmp_path, "a", "--truth", str(tmp_path / "truth"))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["days"] == 20 and summary["events_written"] > 0
    assert "events written" in done.stderr and "events/s" in done.stderr
    assert (tmp_path / "a" / "2025-02-01" / "_manifest.json").exists()
    assert (tmp_path / "truth" / "health_daily.csv.gz").exists()


def test_cli_output_does_not_depend_on_the_process(tmp_path):
    _cli(tmp_path, "a", "--quiet", hashseed="1")
    _cli(tmp_path, "b", "--quiet", hashseed="2")
    a = {p.relative_to(tmp_path / "a"): p.read_bytes() for p in (tmp_path / "a").rglob("*.*")}
    b = {p.relative_to(tmp_path / "b"): p.read_bytes() for p in (tmp_path / "b").rglob("*.*")}
    assert a and a == b


def test_cli_explains_bad_arguments(tmp_path):
    done = _cli(tmp_path, "a", "--dirt-scale", "-1")
    assert done.returncode == 2
    assert "must be >= 0" in done.stderr
    args = ["--accounts", "5", "--start", "2025-03-01", "--end", "2025-02-01"]
    done = subprocess.run(
        [sys.executable, "-m", "simulator", *args, "--out", str(tmp_path / "x")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "is before start" in done.stderr
