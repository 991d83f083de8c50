"""Command line for the alert engine: validate, evaluate, list/ack/snooze/resolve, backtest."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

import duckdb

from alerts.backtest import backtest, live_precision
from alerts.engine import EvaluationError, evaluate
from alerts.lifecycle import TransitionError, escalate_overdue, snooze, transition
from alerts.recipients import People, alert_filter, may_see, role_of
from alerts.rules import RulesFileError, columns_from_connection, load_routing, load_rules
from alerts.schema import FEEDBACK, ensure_schema
from warehouse.catalog import table_exists


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-03-04") from exc


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ea alerts",
        description=__doc__,
        epilog="examples:\n"
        "  ea alerts validate\n"
        "  ea alerts list --as alice@example.com\n"
        '  ea alerts ack al_123 --as alice@example.com --reason "calling Tuesday"\n'
        "  ea alerts snooze al_123 --as alice@example.com --until 2025-11-10\n"
        '  ea alerts resolve al_123 --as alice@example.com --reason "renewed" --feedback saved\n'
        "  ea alerts backtest --start 2025-03-01 --end 2025-09-30\n"
        "  ea alerts list --help   # one command's options",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--database",
        default=os.environ.get("DUCKDB_DATABASE"),
        help="DuckDB warehouse file (default: $DUCKDB_DATABASE)",
    )
    p.add_argument(
        "--config",
        default=os.environ.get("EA_CONFIG_DIR", "config"),
        help="folder with rules.yml, routing.yml, templates/ (default: $EA_CONFIG_DIR or ./config)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, helptext: str, *examples: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=helptext,
            epilog="examples:\n"
            + "\n".join(f"  ea alerts {name} {e}".rstrip() for e in examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    command(
        "validate",
        "check rules.yml, routing.yml and templates",
        "",
        "--database data/warehouse.duckdb   # also check the columns the rules use",
    )
    ev = command("evaluate", "evaluate the rules for one as-of date", "--as-of 2025-03-04")
    ev.add_argument("--as-of", type=_date, required=True)
    ls = command(
        "list",
        "alerts you may see (CSM: own, manager: team, admin: all)",
        "--as alice@example.com",
        "--as alice@example.com --status all --limit 200",
    )
    ls.add_argument("--as", dest="actor", required=True, help="your email")
    ls.add_argument("--status", default="active", help="active (default), all, or one status")
    ls.add_argument("--limit", type=int, default=50)
    for name, helptext, example in (
        ("ack", "acknowledge an alert", '--reason "calling Tuesday"'),
        ("resolve", "resolve an alert", '--reason "renewed" --feedback saved'),
    ):
        sp = command(name, helptext, f"al_123 --as alice@example.com {example}")
        sp.add_argument("alert_id")
        sp.add_argument("--as", dest="actor", required=True)
        sp.add_argument("--reason", required=name == "resolve", default=None)
        if name == "resolve":
            sp.add_argument(
                "--feedback",
                choices=FEEDBACK,
                default=None,
                help="was the alert worth it: useful, not_useful, saved (account kept), lost",
            )
    sn = command(
        "snooze",
        "hide an alert and its repeats until a date",
        'al_123 --as alice@example.com --until 2025-11-10 --reason "on leave"',
    )
    sn.add_argument("alert_id")
    sn.add_argument("--until", type=_date, required=True)
    sn.add_argument("--as", dest="actor", required=True)
    sn.add_argument("--reason", default=None)
    bt = command(
        "backtest",
        "replay the rules over past dates",
        "--start 2025-03-01 --end 2025-09-30 --horizon-days 90",
    )
    bt.add_argument("--start", type=_date, required=True)
    bt.add_argument("--end", type=_date, required=True)
    bt.add_argument("--horizon-days", type=int, default=90)
    es = command("escalate", "escalate open alerts past their SLA", "", "--now 2025-03-04T09:00:00")
    es.add_argument("--now", default=None, help="ISO timestamp (default: current UTC time)")
    return p


def _check_in_scope(con, routing, actor: str, alert_id: str) -> None:
    people = People.from_routing(routing)
    exists = con.execute(
        "select count(*) from alerts.alerts where alert_id = ?", [alert_id]
    ).fetchall()[0][0]
    if exists and not may_see(con, people, actor, alert_id):
        role = role_of(con, people, actor) or "no role"
        raise TransitionError(
            f"{actor} ({role}) may not act on alert {alert_id}: it is not in their book or team"
        )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = Path(args.config)
    try:
        if args.command == "validate" and not (args.database and Path(args.database).exists()):
            # Before the first run there is no warehouse: check against the column contract.
            rs = load_rules(config / "rules.yml")
            load_routing(config / "routing.yml")
            print(
                f"ok: {len(rs.rules)} rules ({len(rs.enabled)} enabled), routing valid; "
                "columns checked against the contract (no warehouse yet)"
            )
            return 0
        if not args.database:
            print("error: give --database PATH or set DUCKDB_DATABASE", file=sys.stderr)
            return 2
        if not Path(args.database).exists():
            print(
                f"error: no warehouse at {args.database}: run the pipeline first "
                "(or give the right --database)",
                file=sys.stderr,
            )
            return 2
        read_only = args.command in ("list", "validate")
        con = duckdb.connect(args.database, read_only=read_only)
        try:
            if not read_only:
                ensure_schema(con)
            return _run(con, args, config)
        finally:
            con.close()
    except (RulesFileError, EvaluationError, TransitionError, duckdb.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(con, args, config: Path) -> int:
    routing = load_routing(config / "routing.yml")
    templates = config / "templates" / "recommendations"
    cmd = args.command
    if cmd in ("validate", "evaluate", "backtest"):
        rules = load_rules(config / "rules.yml", columns_from_connection(con), templates)
        if cmd == "validate":
            print(
                f"ok: {len(rules.rules)} rules ({len(rules.enabled)} enabled) match the warehouse"
            )
        elif cmd == "evaluate":
            result = evaluate(con, rules, routing, args.as_of, templates)
            for key, value in result.summary().items():
                print(f"{key:>20}: {value}")
        else:
            frame = backtest(con, rules, args.start, args.end, args.horizon_days)
            cols = ["rule_id", "alerts_raised", "alerts_per_csm_per_week", "precision", "recall"]
            print(frame[[*cols, "median_lead_days"]].to_string(index=False))
            live = live_precision(con, args.start, args.end)
            if live is not None and not live.empty:
                print("\nlive alerts in the range, judged on real outcomes and CSM feedback:")
                print(live.to_string(index=False))
        return 0
    if cmd == "list":
        if not table_exists(con, "alerts", "alerts"):
            print("no alerts yet (run `python -m alerts evaluate --as-of D` first)")
            return 0
        role, where, params = alert_filter(con, People.from_routing(routing), args.actor)
        if args.status == "active":
            where += " and a.status in ('open', 'acknowledged')"
        elif args.status != "all":
            where += " and a.status = $status"
            params["status"] = args.status
        rows = con.execute(
            f"""
            select alert_id, severity, status, account_name, rule_id, owner_email,
                   strftime(sla_due_at, '%Y-%m-%d %H:%M') as sla_due, round(priority) as priority
            from alerts.alerts a where {where}
            order by case severity when 'critical' then 0 when 'high' then 1
                     when 'medium' then 2 else 3 end, priority desc nulls last
            limit $limit
            """,
            {**params, "limit": args.limit},
        ).fetchall()
        role = role or "no role"
        print(f"{len(rows)} alert(s) visible to {args.actor} as {role}")
        for r in rows:
            print("  ".join(str(v) for v in r))
        return 0
    if cmd == "escalate":
        now = dt.datetime.fromisoformat(args.now) if args.now else dt.datetime.now(dt.UTC)
        for esc in escalate_overdue(con, now):
            print(f"escalated {esc['alert_id']} to {esc['escalated_to']}")
        return 0
    _check_in_scope(con, routing, args.actor, args.alert_id)
    if cmd == "ack":
        out = transition(con, args.alert_id, "acknowledged", args.actor, args.reason)
    elif cmd == "resolve":
        out = transition(
            con, args.alert_id, "resolved", args.actor, args.reason, feedback=args.feedback
        )
    else:
        snooze(con, args.alert_id, args.until, args.actor, args.reason)
        out = {"alert_id": args.alert_id, "to_status": f"snoozed until {args.until}"}
    print(f"{out['alert_id']}: {out['to_status']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
