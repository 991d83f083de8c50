import datetime as dt
from pathlib import Path

from simulator import SimConfig, simulate


def _files(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def _run(tmp_path: Path, name: str, seed: int) -> dict[str, bytes]:
    cfg = SimConfig(accounts=12, start=dt.date(2025, 3, 1), end=dt.date(2025, 3, 28), seed=seed)
    simulate(cfg, tmp_path / name / "landing", tmp_path / name / "truth")
    return _files(tmp_path / name)


def test_same_seed_gives_identical_bytes(tmp_path):
    first = _run(tmp_path, "a", seed=5)
    second = _run(tmp_path, "b", seed=5)
    assert len(first) > 30
    assert first.keys() == second.keys()
    different = [name for name in first if first[name] != second[name]]
    assert different == []


def test_different_seed_gives_different_data(tmp_path):
    first = _run(tmp_path, "a", seed=5)
    other = _run(tmp_path, "c", seed=6)
    events = [n for n in first if n.endswith("events-000.jsonl.gz") and n in other]
    assert events
    assert all(first[n] != other[n] for n in events)


def test_rerun_into_same_folder_is_idempotent(tmp_path):
    cfg = SimConfig(accounts=12, start=dt.date(2025, 3, 1), end=dt.date(2025, 3, 28), seed=5)
    landing = tmp_path / "landing"
    simulate(cfg, landing)
    before = _files(landing)
    # A run with a different seed leaves different files; re-running the first must restore them.
    simulate(SimConfig(accounts=30, start=cfg.start, end=cfg.end, seed=9), landing)
    simulate(cfg, landing)
    assert _files(landing) == before
