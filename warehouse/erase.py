"""`python -m warehouse.erase --user ID | --account ID`: erase a person or account everywhere.

Needs EA_ERASURE_SALT (the salt for the audit hash) and DUCKDB_DATABASE (or --database). Run it
while no pipeline run is writing. Afterwards the file is rewritten so that deleted rows do not
linger in free pages; --rebuild-marts then rebuilds the marts from the remaining rows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb

from warehouse.erasure import ErasureError, erase_account, erase_user

REPO = Path(__file__).resolve().parents[1]


def compact(path: Path) -> None:
    """Rewrite the database into a fresh file, so erased rows leave no bytes behind."""
    fresh = path.with_name(path.name + ".compact")
    fresh.unlink(missing_ok=True)
    con = duckdb.connect(str(fresh))
    try:
        con.execute("set enable_progress_bar = false")
        con.execute(f"attach '{path}' as src (read_only)")
        name = con.execute("select current_database()").fetchone()[0]
        con.execute(f'copy from database src to "{name}"')
        con.execute("detach src")
        con.execute("checkpoint")
    finally:
        con.close()
    os.replace(fresh, path)
    Path(f"{path}.wal").unlink(missing_ok=True)


def rebuild_marts(path: Path) -> None:
    """Rebuild every dbt model from the remaining raw rows (the marts asset, full refresh).

    Through Dagster, not bare dbt, so the rebuild uses the same vars (as-of date, history start,
    the team's health-score weights) as the daily runs and is recorded like any other run.
    """
    env = {**os.environ, "DUCKDB_DATABASE": str(path)}
    dagster = Path(sys.executable).with_name("dagster")
    config = {"ops": {"marts_dbt": {"config": {"full_refresh": True}}}}
    cmd = [str(dagster), "asset", "materialize", "-m", "orchestration.definitions"]
    cmd += ["--select", "key:marts/*", "--config-json", json.dumps(config)]
    done = subprocess.run(cmd, env=env, cwd=REPO, check=False)
    if done.returncode:
        raise SystemExit(
            f"rebuilding the marts failed (exit {done.returncode}); the erasure itself is "
            "committed. Fix the error above, then materialize the marts with full_refresh: true "
            "before the next daily run."
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ea erase",
        description=__doc__.splitlines()[0],
        epilog="examples (EA_ERASURE_SALT must be set):\n"
        "  ea erase --user u_00042_003 --requested-by TICKET-123\n"
        "  ea erase --account a_00042 --rebuild-marts",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="user id to erase")
    who.add_argument("--account", help="account id to erase (with all of its users)")
    parser.add_argument("--database", default=os.environ.get("DUCKDB_DATABASE"))
    parser.add_argument("--requested-by", help="ticket reference (not a person's email)")
    parser.add_argument(
        "--no-compact", action="store_true", help="skip rewriting the file (faster, less thorough)"
    )
    parser.add_argument(
        "--rebuild-marts",
        action="store_true",
        help="afterwards rebuild the marts (full refresh) so aggregates drop the erased rows; "
        "needs the Dagster environment (DAGSTER_HOME, EA_* variables)",
    )
    args = parser.parse_args(argv)
    salt = os.environ.get("EA_ERASURE_SALT", "")
    if not salt:
        parser.error("set EA_ERASURE_SALT (a secret salt kept for audits) before erasing")
    if not args.database or not Path(args.database).is_file():
        parser.error(f"no warehouse file at {args.database!r}: set DUCKDB_DATABASE or --database")
    path = Path(args.database)
    try:
        con = duckdb.connect(str(path))
        con.execute("set enable_progress_bar = false")  # it writes to stdout
    except duckdb.IOException as exc:
        print(f"error: warehouse busy ({exc}); retry when the running job ends", file=sys.stderr)
        return 2
    try:
        if args.user:
            result = erase_user(con, args.user, salt, args.requested_by)
        else:
            result = erase_account(con, args.account, salt, args.requested_by)
    except ErasureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        con.close()
    if not args.no_compact:
        compact(path)
    if args.rebuild_marts:
        rebuild_marts(path)
    print(
        f"erasure {result.erasure_id}: {result.rows_deleted} rows deleted, "
        f"{result.rows_redacted} redacted, {result.outbox_purged} unsent messages purged"
    )
    for table, n in sorted(result.deleted.items()):
        print(f"  deleted  {n:>8}  {table}")
    for table, n in sorted(result.redacted.items()):
        print(f"  redacted {n:>8}  {table}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
