"""Outbox operations from the shell: `ea outbox status|requeue-dead [--db PATH]`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import duckdb

from notifications.outbox import dead_letters, outbox_counts, requeue_dead
from warehouse.ops_state import ops_state_path, publish_ops_state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ea outbox",
        description=__doc__,
        epilog="examples:\n"
        "  ea outbox status                        # counts by status and the last dead letters\n"
        "  ea outbox requeue-dead --channel email  # after fixing the relay: new attempts",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=("status", "requeue-dead"))
    parser.add_argument(
        "--db",
        default=os.environ.get("DUCKDB_DATABASE", ""),
        help="warehouse file (default: $DUCKDB_DATABASE)",
    )
    parser.add_argument("--channel", choices=("email", "crm_task"), default=None)
    args = parser.parse_args(argv)
    if not args.db:
        parser.error("no warehouse: pass --db or set DUCKDB_DATABASE")
    con = duckdb.connect(args.db)
    try:
        if args.command == "requeue-dead":
            n = requeue_dead(con, args.channel)
            # The sensors read the published work list, never the warehouse: publish it.
            data_dir = os.environ.get("EA_DATA_DIR") or Path(args.db).resolve().parent
            publish_ops_state(con, ops_state_path(data_dir), "ea outbox requeue-dead")
            print(f"{n} dead deliveries queued again; the outbox retry sensor sends them.")
        counts = outbox_counts(con)
        print(", ".join(f"{v} {k}" for k, v in counts.items()))
        for d in dead_letters(con, 10):
            print(
                f"dead: {d['channel']} {d['idempotency_key']} after {d['attempts']} "
                f"attempts: {d['last_error']}"
            )
    finally:
        con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
