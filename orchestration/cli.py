"""`ea`: the one command-line tool. Each subcommand is a library's own command line, loaded lazily.

`ea <command> --help` shows the command's options and examples. The subcommands import only
what they need, so `ea alerts list` or `ea sql` never imports Dagster.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import itertools
import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Command:
    target: str  # "module:function"; the function takes argv (list[str]) and returns an exit code
    summary: str
    example: str


# One row per subcommand; the order is the order `ea --help` shows them in.
COMMANDS: dict[str, Command] = {
    "demo": Command(
        "orchestration.demo:main",
        "simulate a portal and run every stage on embedded defaults",
        "ea demo",
    ),
    "simulate": Command(
        "simulator.__main__:main",
        "write simulated landing folders",
        "ea simulate --accounts 300 --start 2024-10-01 --end 2025-10-31 --out data/landing",
    ),
    "load-history": Command(
        "ingest.history:main",
        "load a whole event history (CSV, Parquet, JSON Lines, text) by event date via a mapping",
        "ea load-history --mapping my_mapping.yml exports/2019.csv exports/2020.csv",
    ),
    "job": Command(
        "orchestration.jobs_cli:main",
        "run one Dagster job here (recorded in $DAGSTER_HOME), e.g. the marts after a history load",
        "ea job marts_job",
    ),
    "alerts": Command(
        "alerts.cli:main",
        "validate rules, list / ack / snooze / resolve alerts, backtest",
        "ea alerts list --as alice@example.com",
    ),
    "inbox": Command(
        "inbox.cli:main",
        "the alert inbox web app (serve), or publish its snapshot / apply its actions",
        "ea inbox serve --port 3001",
    ),
    "sql": Command(
        "warehouse.sql:main",
        "SQL on the analyst database (masked, bounded); --full: the whole warehouse",
        'ea sql "select * from analytics.alerts limit 10"',
    ),
    "erase": Command(
        "warehouse.erase:main",
        "erase a user or an account (needs EA_ERASURE_SALT)",
        "ea erase --user u_123 --rebuild-marts",
    ),
    "outbox": Command(
        "notifications.__main__:main",
        "outbox status and dead letters; queue dead deliveries again",
        "ea outbox status",
    ),
    "mail-capture": Command(
        "notifications.capture:main",
        "a local SMTP server that keeps every message (.eml + index.html): the demo's mail sink",
        "ea mail-capture --port 8025 --dir data/mail",
    ),
    "serve": Command(
        "service.serve:main",
        "run the Dagster UI, the daemon, the inbox and MLflow together; restart what crashes",
        "ea serve   (ea --env-file /etc/engagement-alerts/ea.env serve)",
    ),
    "doctor": Command(
        "service.doctor:main",
        "check the configuration, folders, Postgres, SMTP, CRM, Slack/Teams and the models",
        "ea doctor",
    ),
    "status": Command(
        "service.status:main",
        "one view: landed days, last runs, alerts today, outbox, models, disk, services",
        "ea status",
    ),
    "backup": Command(
        "service.backup:main",
        "back up or restore the warehouse, Dagster and MLflow state; rebuild the marts from raw",
        "ea backup create --to /var/backups/engagement-alerts",
    ),
    "evaluate": Command(
        "orchestration.evaluate:main",
        "churn model vs every baseline on CDNOW and the simulator (tables for docs/ml.md)",
        "ea evaluate --docs docs/ml.md",
    ),
    "bench": Command(
        "bench.run:main",
        "the benchmark: stages against the DuckDB and pandas references",
        "ea bench --tiers small",
    ),
}

# The same embedded defaults the Makefile exports, relative to the current folder.
_DEFAULTS = (
    ("EA_DATA_DIR", "{cwd}/data"),
    ("EA_LANDING_DIR", "{EA_DATA_DIR}/landing"),
    ("EA_CONFIG_DIR", "{cwd}/config"),
    ("DUCKDB_DATABASE", "{EA_DATA_DIR}/warehouse.duckdb"),
    ("EA_ANALYST_DATABASE", "{EA_DATA_DIR}/analyst.duckdb"),
    ("MLFLOW_TRACKING_URI", "sqlite:///{EA_DATA_DIR}/mlflow.db"),
    ("DAGSTER_HOME", "{cwd}/.dagster_home"),
    ("DBT_SEND_ANONYMOUS_USAGE_STATS", "false"),
    ("DO_NOT_TRACK", "1"),
    ("GX_ANALYTICS_ENABLED", "false"),
    ("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true"),
)


def apply_defaults(environ: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    """Fill in every unset variable with the embedded default (as the Makefile does)."""
    env = os.environ if environ is None else environ
    values = {"cwd": str((cwd or Path.cwd()).resolve())}
    for name, template in _DEFAULTS:
        if not env.get(name):
            env[name] = template.format(**values)
        values[name] = env[name]
    # The venv's dbt must be found by dagster-dbt.
    bindir = str(Path(sys.executable).parent)
    if bindir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: ea [--env-file FILE] <command> [options]   (ea <command> --help for options)",
        "",
        "--env-file FILE (or EA_ENV_FILE): read NAME=value lines into the environment first",
        "",
        "commands:",
    ]
    for name, cmd in COMMANDS.items():
        lines.append(f"  {name.ljust(width)}  {cmd.summary}")
    lines += ["", "examples:"] + [f"  {cmd.example}" for cmd in COMMANDS.values()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env_file = os.environ.get("EA_ENV_FILE", "")
    if args and args[0] == "--env-file":
        if len(args) < 2:
            print("ea: --env-file needs a file", file=sys.stderr)
            return 2
        env_file, args = args[1], args[2:]
    if env_file:
        from service.profile import EnvFileError, load_env_file

        try:
            load_env_file(env_file, os.environ)
        except (OSError, EnvFileError) as exc:
            print(f"ea: cannot read the environment file: {exc}", file=sys.stderr)
            return 2
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    cmd = COMMANDS.get(name)
    if cmd is None:
        print(f"ea: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    apply_defaults()
    module_name, func_name = cmd.target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    # Subcommands name themselves in their own --help.
    sys.argv = [f"ea {name}", *rest]
    if "-h" in rest or "--help" in rest:
        return _help(name, cmd, func, rest)
    result = func(rest)
    return int(result or 0)


def _help(name: str, cmd: Command, func, rest: list[str]) -> int:
    """The subcommand's own help, plus the table's example when the help shows none and the
    example is for what was asked about (`ea inbox publish --help` gets no `ea inbox serve`).
    """
    out = io.StringIO()
    code: object = 0
    with contextlib.redirect_stdout(out):
        try:
            code = func(rest)
        except SystemExit as exc:
            code = exc.code
    text = out.getvalue()
    print(text, end="")
    words = " ".join(["ea", name, *itertools.takewhile(lambda w: not w.startswith("-"), rest)])
    if "example" not in text.lower() and cmd.example.startswith(words):
        print(f"\nexample:\n  {cmd.example}")
    return int(code or 0) if isinstance(code, int | None) else 1


if __name__ == "__main__":
    raise SystemExit(main())
