"""Render a sample digest (and a critical alert) to HTML files for screenshots and review.

Run: python -m tests.notifications.render_sample --out data/sample_digest.html [--recipient EMAIL]
(the test suite's small world; the demo's real emails are in data/mail/ after `ea demo`)
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import duckdb

from notifications.content import ContentConfig
from notifications.digest import build_critical_alerts, build_digests
from tests.notifications.sample import ROUTING, load_sample

REPO = Path(__file__).resolve().parents[2]


def render(out: Path, recipient: str, templates_dir: Path, day: dt.date) -> list[Path]:
    """Write the recipient's digest to `out` and the first critical email next to it."""
    con = duckdb.connect()  # in memory: the sample never touches the warehouse
    try:
        load_sample(con, day)
        config = ContentConfig(routing=ROUTING, dashboard_url="http://localhost:3000")
        digests = build_digests(con, day, templates_dir, config, recipients=[recipient])
        if not digests:
            raise SystemExit(f"{recipient} has no accounts in the sample; try ana@example.com")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(digests[0].payload["html"], "utf-8")
        out.with_suffix(".txt").write_text(digests[0].payload["text"], "utf-8")
        written = [out, out.with_suffix(".txt")]
        critical = build_critical_alerts(
            con, templates_dir, config, dt.datetime.combine(day, dt.time(9))
        )
        if critical:
            path = out.with_name(out.stem + "_critical.html")
            path.write_text(critical[0].payload["html"], "utf-8")
            written.append(path)
        return written
    finally:
        con.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/sample_digest.html")
    parser.add_argument("--recipient", default="ana@example.com")
    parser.add_argument("--templates", default=str(REPO / "config" / "templates" / "email"))
    parser.add_argument("--date", default="2025-03-04")
    args = parser.parse_args(argv)
    for path in render(
        Path(args.out), args.recipient, Path(args.templates), dt.date.fromisoformat(args.date)
    ):
        print(path)


if __name__ == "__main__":
    main()
