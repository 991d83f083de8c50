"""Small simulated landing sets shared by the simulator tests (generated once per session)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from simulator import DirtConfig, SimConfig, SimSummary, simulate


@dataclass
class Landed:
    """A generated landing set plus everything the tests read back from its files."""

    cfg: SimConfig
    summary: SimSummary
    landing: Path
    truth: Path
    # (folder date, file name, line number, raw line) for every event line.
    lines: list[tuple[dt.date, str, int, str]] = field(default_factory=list)

    def folders(self) -> list[Path]:
        return sorted(p for p in self.landing.iterdir() if p.is_dir())


def read_lines(landing: Path) -> list[tuple[dt.date, str, int, str]]:
    out = []
    for folder in sorted(p for p in landing.iterdir() if p.is_dir()):
        day = dt.date.fromisoformat(folder.name)
        for path in sorted(folder.glob("events-*.jsonl.gz")):
            data = path.read_bytes()
            text = gzip.decompress(data).decode() if data else ""
            for n, line in enumerate(text.splitlines(), start=1):
                out.append((day, path.name, n, line))
    return out


def parse(line: str) -> dict | None:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def make(tmp: Path, cfg: SimConfig) -> Landed:
    landing, truth = tmp / "landing", tmp / "truth"
    summary = simulate(cfg, landing, truth)
    return Landed(cfg, summary, landing, truth, read_lines(landing))


@pytest.fixture(scope="session")
def dirty(tmp_path_factory) -> Landed:
    """40 accounts x 90 days with 5x the default dirt, so every kind shows up often enough."""
    cfg = SimConfig(
        accounts=40,
        start=dt.date(2025, 1, 6),
        end=dt.date(2025, 4, 5),
        seed=11,
        dirt=DirtConfig(scale=5.0, delayed_day_rate=0.02),
    )
    return make(tmp_path_factory.mktemp("dirty"), cfg)


@pytest.fixture(scope="session")
def clean(tmp_path_factory) -> Landed:
    """120 accounts x 240 days, no dirt: enough renewals and churn for realism checks."""
    cfg = SimConfig(
        accounts=120,
        start=dt.date(2024, 8, 5),
        end=dt.date(2025, 3, 31),
        seed=4,
        dirt=DirtConfig.clean(),
    )
    return make(tmp_path_factory.mktemp("clean"), cfg)
