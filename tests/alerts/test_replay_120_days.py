"""A 120-day replay of the simulated portal: the invariant is checked every day, and the
reconciliation mart (dbt) agrees with the daily checks at the end.

Cost is kept small: the simulator writes five months for 14 accounts, the marts are built
once (dbt, as of the last day: point in time per day, so each day's rows are what that day's
run saw), and then the engine, the critical delivery (SMTP capture, Slack and Teams contract
servers, an SMTP outage and a webhook outage on some days), the simulated CSMs and the check
run day by day. Churn scores come from a transparent baseline on the health mart (one minus
the health score, ranked per day) instead of the trained models: the replay tests the
invariant, not the model.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from alerts.engine import evaluate, evaluation_time
from alerts.reconcile import critical_rule_vars
from alerts.rules import columns_from_connection, load_routing, load_rules
from ingest.loader import load_landing_days
from notifications.capture import CaptureServer, free_port
from notifications.chat import ChatConfig, WebhookSender
from notifications.content import ContentConfig
from notifications.critical import retry_critical, run_critical
from notifications.mail import SmtpConfig, SmtpSender
from orchestration.resources import PathsResource
from simulator import SimConfig, simulate
from simulator.csm import CsmBehaviour, act_on_alerts
from tests.alerts import invariant
from tests.alerts.conftest import CONFIG, TEMPLATES
from tests.notifications.chat_servers import SlackWebhookServer, TeamsWebhookServer

START, END = dt.date(2025, 1, 1), dt.date(2025, 5, 31)
REPLAY = 120
SECOND = {"critical": ["slack", "teams"], "data_team": ["slack"]}


def _baseline_scores(con) -> None:
    """ml.account_scores from the health mart: churn probability = 1 - health score / 100,
    percentile and band by rank within the day (the shape the models' scores have).
    """
    con.execute("create schema if not exists ml")
    con.execute(
        """
        create or replace table ml.account_scores as
        select account_id, as_of_date, 'churn' as model_name, 'baseline' as model_version,
               'none' as mlflow_run_id, 1 - health_score / 100 as probability,
               100 * percent_rank() over (partition by as_of_date order by health_score desc)
                   as percentile,
               case when percent_rank() over (partition by as_of_date
                                              order by health_score desc) >= 0.9 then 'very_high'
                    when percent_rank() over (partition by as_of_date
                                              order by health_score desc) >= 0.7 then 'high'
                    else 'low' end as band,
               null as driver_1, null as driver_2, null as driver_3,
               null::double as driver_1_contribution, null::double as driver_2_contribution,
               null::double as driver_3_contribution, '[]' as drivers_json,
               now()::timestamp as scored_at
        from marts.account_health where health_score is not null
        """
    )
    con.execute(
        "create table if not exists ml.anomalies (account_id string, activity_date date, "
        "metric string, expected double, observed double, robust_z double, severity string)"
    )


def _held(con, day: dt.date, rules) -> set[tuple[str, str]]:
    """(account, critical rule) pairs whose condition holds on `day` on landed, complete data
    of a live account, computed here straight from the marts."""
    out = set()
    for rule in critical_rule_vars(rules):
        rows = con.execute(
            f"""
            select h.account_id from marts.account_health h
            join (select activity_date, bool_and(is_landed) as landed
                  from marts.data_freshness group by 1) f on f.activity_date = h.as_of_date
            left join (select account_id, as_of_date, max(band) as churn_band,
                              max(percentile) as churn_percentile,
                              max(probability) as churn_probability
                       from ml.account_scores where model_name = 'churn' group by all) s
                   using (account_id, as_of_date)
            where h.as_of_date = ? and f.landed and coalesce(h.is_data_complete, false)
              and not coalesce(h.is_dormant, false) and coalesce({rule["condition"]}, false)
            """,
            [day],
        ).fetchall()
        out |= {(r[0], rule["rule_id"]) for r in rows}
    return out


@pytest.mark.slow
def test_120_days_every_critical_condition_is_alerted_told_and_reconciled(tmp_path):
    from orchestration.defs import marts

    t0 = time.perf_counter()
    data = tmp_path / "data"
    landing = data / "landing"
    db = data / "warehouse.duckdb"
    simulate(SimConfig(accounts=14, start=START, end=END, seed=11), landing)
    with duckdb.connect(str(db)) as con:
        load_landing_days(con, landing)
    paths = PathsResource(data_dir=str(data), landing_dir=str(landing), config_dir=str(CONFIG))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DUCKDB_DATABASE", str(db))
        built = dg.materialize(
            [marts.marts_dbt],
            resources={
                "dbt": marts.defs.resources["dbt"],
                "duckdb": DuckDBResource(database=str(db)),
                "paths": paths,
            },
            run_config={"ops": {"marts_dbt": {"config": {"as_of_date": END.isoformat()}}}},
        )
    assert built.success
    print(f"\nreplay: simulated, loaded and built the marts in {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    con = duckdb.connect(str(db))
    _baseline_scores(con)
    rules = load_rules(CONFIG / "rules.yml", columns_from_connection(con), TEMPLATES)
    routing = load_routing(CONFIG / "routing.yml")
    content = ContentConfig(
        routing={
            "data_team": routing.data_team,
            "unassigned_owner": routing.unassigned_owner,
            "default_escalation": routing.default_escalation,
            "admins": routing.admins,
        }
    )
    expected: set[tuple[dt.date, str, str]] = set()
    mail = Path(tempfile.mkdtemp(prefix="ea-replay-mail-"))
    with CaptureServer(mail) as smtp, SlackWebhookServer() as slack, TeamsWebhookServer() as teams:
        slack.burst = teams.per_second = 10_000
        chat = WebhookSender(
            ChatConfig(urls={"slack": {"critical": slack.url}, "teams": {"critical": teams.url}})
        )
        for i in range(REPLAY):
            day = END - dt.timedelta(days=REPLAY - 1 - i)
            smtp_down, webhook_down = i % 17 in (3, 4), i % 23 == 5
            port = free_port() if smtp_down else smtp.port
            email = SmtpSender(SmtpConfig(host="127.0.0.1", port=port, timeout_seconds=2))
            senders = {"email": email, "slack": chat, "teams": chat}
            slack.down = teams.down = webhook_down
            evaluate(con, rules, routing, day, TEMPLATES)
            now = evaluation_time(day) + dt.timedelta(minutes=5)
            run_critical(con, CONFIG / "templates" / "email", content, SECOND, senders, now)
            failing = con.execute(
                "select count(*) from ops.outbox where status = 'failed'"
            ).fetchall()[0][0]
            if failing:  # the retry pass an hour later (only ever finds work after an outage)
                retry_critical(con, content, SECOND, senders, now + dt.timedelta(hours=1))
            held = _held(con, day, rules)
            expected |= {(day, a, r) for a, r in held}
            problems = invariant.violations(con, day, held, now, routing.escalation_policy)
            assert not problems, problems
            act_on_alerts(con, day, CsmBehaviour(seed=11))
    seconds = time.perf_counter() - t0
    print(f"replay: {REPLAY} days evaluated, delivered and checked in {seconds:.0f} s")
    assert len(expected) >= 10, "the replay must exercise the critical rule"
    assert len(slack.received) > 0 and len(teams.received) > 0
    con.close()
    _reconcile(db, paths, rules, expected)


def _reconcile(db: Path, paths: PathsResource, rules, expected) -> None:
    from dagster_dbt import DbtCliResource

    from orchestration.defs.kpis import kpis_dbt
    from orchestration.defs.marts import DBT_DIR, DBT_EXECUTABLE

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DUCKDB_DATABASE", str(db))
        result = dg.materialize(
            [kpis_dbt],
            resources={
                "dbt": DbtCliResource(
                    project_dir=str(DBT_DIR),
                    profiles_dir=str(DBT_DIR),
                    dbt_executable=DBT_EXECUTABLE,
                ),  # fmt: skip
                "duckdb": DuckDBResource(database=str(db)),
                "paths": paths,
            },
            run_config={"ops": {"kpis_dbt": {"config": {"as_of_date": END.isoformat()}}}},
        )
    assert result.success
    with duckdb.connect(str(db), read_only=True) as con:
        first = END - dt.timedelta(days=REPLAY - 1)
        rows = con.execute(
            "select as_of_date, account_id, rule_id, is_missed, exemption "
            "from kpis.critical_reconciliation where as_of_date >= ?",
            [first],
        ).fetchall()
        # Weeks that start inside the replay (the days before it were never evaluated: the mart
        # rightly counts their conditions as missed).
        weekly_missed = con.execute(
            "select sum(critical_missed) from kpis.kpi_alerts_weekly "
            "where dimension = 'overall' and week_start >= ?",
            [first],
        ).fetchall()[0][0]
    assert {(d, a, r) for d, a, r, _, _ in rows} == expected
    assert [r for r in rows if r[3]] == []
    assert weekly_missed == 0
