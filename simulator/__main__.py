"""Command line: `ea simulate --accounts N --start D --end D --seed S --out DIR`."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import sys
from pathlib import Path

from simulator.config import DirtConfig, SimConfig
from simulator.engine import simulate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ea simulate",
        description="Write simulated customer-portal landing files.",
        epilog="examples:\n"
        "  ea simulate --accounts 300 --start 2024-10-01 --end 2025-10-31\n"
        "  ea simulate --accounts 20 --start 2025-01-01 --end 2025-03-31 --out /tmp/landing "
        "--truth /tmp/truth --dirt-scale 0",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--accounts", type=int, required=True, help="accounts at the start")
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True, help="YYYY-MM-DD")
    parser.add_argument("--end", type=dt.date.fromisoformat, required=True, help="YYYY-MM-DD")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(os.environ.get("EA_LANDING_DIR", "data/landing")),
        help="landing folder to write (default: $EA_LANDING_DIR, else data/landing)",
    )
    parser.add_argument("--truth", type=Path, default=None, help="ground-truth folder (optional)")
    parser.add_argument("--dirt-scale", type=float, default=1.0, help="0 = clean files")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    try:
        cfg = SimConfig(
            accounts=args.accounts,
            start=args.start,
            end=args.end,
            seed=args.seed,
            dirt=DirtConfig(scale=args.dirt_scale),
        )
    except ValueError as exc:
        parser.error(str(exc))

    def report(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    summary = simulate(cfg, args.out, args.truth, None if args.quiet else report)
    print(json.dumps(dataclasses.asdict(summary), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
