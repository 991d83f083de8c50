"""The short summary the demo prints at the end: what happened and where to look."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from warehouse.analyst import analyst_database_path


def _rows(con, sql: str) -> list[tuple]:
    """The query's rows; none when its table does not exist yet (a stage that has not run).

    Any other error is a bug in the query and is raised, not hidden behind an empty section.
    """
    try:
        return con.execute(sql).fetchall()
    except duckdb.CatalogException:
        return []


def _one(con, sql: str, default=0):
    rows = _rows(con, sql)
    return rows[0][0] if rows and rows[0][0] is not None else default


def print_summary(data: Path, mail: Path, seconds: float) -> None:
    database = os.environ["DUCKDB_DATABASE"]
    con = duckdb.connect(database, read_only=True)
    as_of = _one(con, "select max(as_of_date) from marts.account_health", None)
    accounts = _one(con, "select count(*) from marts.dim_accounts")
    events = _one(con, "select count(*) from raw.events")
    quarantined = _rows(
        con, "select reason, count(*) from raw.quarantine group by all order by 2 desc"
    )
    tiers = (
        _rows(
            con,
            f"""select health_tier, count(*) from marts.account_health
            where as_of_date = date '{as_of}' group by all order by 2 desc""",
        )
        if as_of
        else []
    )
    by_severity = _rows(
        con,
        """select severity,
                  count(*) filter (where status in ('open', 'acknowledged')) as still_open,
                  count(*) as raised
           from alerts.alerts group by severity
           order by min(case severity when 'critical' then 0 when 'high' then 1
                        when 'medium' then 2 else 3 end)""",
    )
    at_risk = (
        _rows(
            con,
            f"""select model_name, count(*) from ml.account_scores
            where as_of_date = date '{as_of}' and band in ('high', 'very_high')
            group by all order by 1""",
        )
        if as_of
        else []
    )
    by_status = _rows(con, "select status, count(*) from alerts.alerts group by all order by 1")
    outbox = _rows(
        con, "select channel, status, count(*) from ops.outbox group by all order by 1, 2"
    )
    con.close()
    emails = len(list(mail.glob("*.eml"))) if mail.exists() else 0

    print()
    print("=" * 78)
    print(f"Engagement Alerts demo finished in {seconds / 60:.1f} min (as of {as_of})")
    print("=" * 78)
    print(f"accounts: {accounts:,}   events stored: {events:,}")
    if quarantined:
        print("quarantined rows: " + ", ".join(f"{r} {n:,}" for r, n in quarantined))
    if tiers:
        print("health tiers today: " + ", ".join(f"{t} {n}" for t, n in tiers))
    if at_risk:
        print(
            "accounts in the high/very high band today: "
            + ", ".join(f"{m} {n}" for m, n in at_risk)
        )
    if by_severity:
        print(
            "alerts by severity (open / all time): "
            + ", ".join(f"{s} {o}/{n}" for s, o, n in by_severity)
        )
    if by_status:
        print("alerts by status: " + ", ".join(f"{s} {n}" for s, n in by_status))
    if outbox:
        print("outbox: " + ", ".join(f"{c} {s} {n}" for c, s, n in outbox))
    print(f"emails captured: {emails}")
    print()
    print("Where to look:")
    print(f"  captured emails   open {mail / 'index.html'} in a browser (.eml files beside it)")
    print("  Dagster UI        make ui            then http://127.0.0.1:3000")
    print("  MLflow UI         make mlflow-ui     then http://127.0.0.1:5000")
    print(f"  SQL for analysts  .venv/bin/ea sql   (on {analyst_database_path()}, each run's copy)")
    print('                    e.g. "select severity, count(*) from analytics.alerts group by 1"')
    print(f"  whole warehouse   .venv/bin/ea sql --full   (on {database})")
    print("  alerts CLI        .venv/bin/python -m alerts list --as <csm email>")
    print(f"  ground truth      {data / 'ground_truth'} (the simulator's hidden truth)")


def critical_delivery_figures(con, holdout=None) -> dict:
    """Critical alerts raised vs delivered (email, Slack, Teams), those of holdout accounts,
    the reconciliation's missed conditions, and seconds from an alert's evaluation to its
    Slack/Teams post (median, max).
    """
    from alerts.holdout import in_holdout

    alerts = _rows(
        con,
        """
        select a.alert_id, a.account_id,
               max(case when o.channel = 'email' and o.status = 'sent' then 1 else 0 end),
               max(case when o.channel = 'slack' and o.status = 'sent' then 1 else 0 end),
               max(case when o.channel = 'teams' and o.status = 'sent' then 1 else 0 end),
               min(case when o.channel in ('slack', 'teams') and o.status = 'sent'
                   then date_diff('millisecond', r.evaluated_at, o.sent_at) end) / 1000.0
        from alerts.alerts a
        left join ops.outbox o
          on o.alert_id = a.alert_id and o.idempotency_key like 'critical:%'
        left join alerts.evaluation_runs r on r.as_of_date = a.first_raised_on
        where a.severity = 'critical' and a.account_id != '*'
        group by a.alert_id, a.account_id
        """,
    )
    latencies = sorted(x[5] for x in alerts if x[5] is not None)
    return {
        "raised": len(alerts),
        "in_holdout_group": sum(bool(holdout and in_holdout(a[1], holdout)) for a in alerts),
        "emailed": sum(a[2] for a in alerts),
        "on_slack": sum(a[3] for a in alerts),
        "on_teams": sum(a[4] for a in alerts),
        "delivered": sum(1 for a in alerts if a[2] or a[3] or a[4]),
        "missed_condition_days": _one(
            con, "select count(*) from kpis.critical_reconciliation where is_missed"
        ),
        "condition_days": _one(con, "select count(*) from kpis.critical_reconciliation"),
        "chat_seconds_median": latencies[len(latencies) // 2] if latencies else None,
        "chat_seconds_max": latencies[-1] if latencies else None,
    }


def print_critical_summary(data: Path) -> None:
    """The zero-missed-criticals figures of the demo (README, "Critical alerts")."""
    from alerts.rules import load_routing

    routing = load_routing(Path(os.environ["EA_CONFIG_DIR"]) / "routing.yml")
    con = duckdb.connect(os.environ["DUCKDB_DATABASE"], read_only=True)
    try:
        f = critical_delivery_figures(con, routing.holdout)
    finally:
        con.close()
    share = f"{routing.holdout.share:.0%}" if routing.holdout.enabled else "off"
    print(
        f"\nCritical alerts (holdout {share}): {f['raised']} raised, {f['delivered']} delivered "
        f"({f['emailed']} by email, {f['on_slack']} on Slack, {f['on_teams']} on Teams); "
        f"{f['in_holdout_group']} of them for accounts in the holdout group"
    )
    print(
        f"  reconciliation: {f['condition_days']} (account, critical rule, day) conditions on "
        f"landed days, {f['missed_condition_days']} missed"
    )
    if f["chat_seconds_median"] is not None:
        print(
            f"  evaluation to Slack/Teams post: median {f['chat_seconds_median']:.1f} s, "
            f"max {f['chat_seconds_max']:.1f} s; posts stored in {data / 'chat'}"
        )
