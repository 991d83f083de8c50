"""Helpers for the fault-injection suite: run a stage in a subprocess, kill it, compare tables."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "tests" / "reliability" / "crash_runner.py"
# Columns stamped with the wall clock or a duration: they differ between any two runs.
VOLATILE = {
    "loaded_at", "quarantined_at", "recorded_at", "evaluated_at", "seconds", "duration_ms",
    "computed_at", "bytes_read",
}  # fmt: skip


def run_stage(stage: str, db: Path, *extra: str, kill_at: int | None = None) -> dict | None:
    """Run the stage; returns its statement count, or None when it was killed as asked."""
    cmd = [sys.executable, str(RUNNER), stage, str(db), *extra]
    if kill_at is not None:
        cmd += ["--kill-at", str(kill_at)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, cwd=REPO, timeout=180,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    if kill_at is not None and done.returncode == -9:
        return None
    assert done.returncode == 0, f"{stage} failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def fingerprint(db: Path, skip: set[str] = frozenset()) -> dict[str, tuple[int, int]]:
    """Row count and an order-free hash of every table (wall-clock columns left out)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' order by all"
        ).fetchall()
        out = {}
        for schema, table in tables:
            cols = [
                r[0]
                for r in con.execute(
                    "select column_name from information_schema.columns where table_schema = ? "
                    "and table_name = ? order by ordinal_position",
                    [schema, table],
                ).fetchall()
                if r[0] not in VOLATILE | set(skip)
            ]
            expr = ", ".join(f'"{c}"' for c in cols)
            total = f"coalesce(sum(hash({expr})::hugeint), 0)"
            sql = f'select count(*), {total} from "{schema}"."{table}"'
            out[f"{schema}.{table}"] = con.execute(sql).fetchone()
        return out
    finally:
        con.close()


def fresh_copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    Path(f"{dst}.wal").unlink(missing_ok=True)
    return dst


def kill_points(total: int, n: int = 5) -> list[int]:
    """N statement numbers spread over the run (first, middle, last included)."""
    points = {1, total}
    for i in range(1, n - 1):
        points.add(max(1, round(total * i / (n - 1))))
    return sorted(points)


class CountingSmtp:
    """A real aiosmtpd server that records every DATA it accepts (no dedupe, unlike the capture
    server the demo uses), so a message sent twice is seen twice."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        from notifications.capture import free_port

        self.message_ids: list[str] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                from email import message_from_bytes

                msg = message_from_bytes(envelope.original_content or envelope.content)
                outer.message_ids.append(msg.get("Message-ID"))
                return "250 OK"

        self.port = free_port()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self._controller.start()
        return self

    def __exit__(self, *exc):
        self._controller.stop()
