"""Time the alert engine on 10,000 synthetic accounts: all shipped rules, two consecutive days.

Run: .venv/bin/python -m bench.rules_10k [--accounts N]
Day 1 raises many new alerts; day 2 continues, resolves and raises (the steady-state path).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import duckdb

from alerts.engine import evaluate
from alerts.rules import columns_from_connection, load_routing, load_rules

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"
TEMPLATES = CONFIG / "templates" / "recommendations"


def build(con, n: int, day: dt.date, seed: int) -> None:
    """Day 1: n accounts, mostly healthy (a few percent at risk), set-based and seeded."""
    con.execute(f"select setseed({seed / 100})")
    con.execute(
        """
        insert into marts.account_health
        select
            account_id, $day, arr, seats, plan, segment, csm_email, manager_email,
            random() > 0.01 as is_data_complete,
            health_score,
            case when health_score >= 70 then 'healthy' when health_score >= 50 then 'watch'
                 when health_score >= 30 then 'at_risk' else 'critical' end as health_tier,
            case when random() < 0.04 then floor(prev_users * 0.4)::int
                 else floor(prev_users * (0.85 + random() * 0.3))::int end as active_users_28d,
            prev_users as active_users_prev_28d,
            floor(random() * 300)::int as logins_28d,
            floor(100 + random() * 200)::int as logins_prev_28d,
            random() * 0.6 - 0.3 as logins_trend_28d,
            least(1.0, prev_users / seats) as seat_utilisation,
            floor(2 + random() * 10)::int as feature_breadth_28d,
            case when random() < 0.03 then 30 else floor(random() * 10)::int end
                as days_since_admin_activity,
            floor(random() * 5)::int as days_since_last_activity,
            floor(random() * 365)::int as days_to_renewal
        from (
            select
                'a_' || lpad(i::varchar, 5, '0') as account_id,
                (5000 + (i % 40) * 2500)::decimal(18, 2) as arr,
                5 + (i % 60) as seats,
                ['starter', 'growth', 'enterprise'][1 + i % 3] as plan,
                ['smb', 'mid_market', 'enterprise'][1 + i % 3] as segment,
                'csm' || (i % 40) || '@example.com' as csm_email,
                'mgr' || (i % 5) || '@example.com' as manager_email,
                round(100 - 100 * random() ^ 3, 1) as health_score,
                floor((5 + i % 60) * (0.3 + random() * 0.7))::int as prev_users
            from range($n) t(i)
        )
        """,
        {"day": day, "n": n},
    )
    _scores(con, day)


def next_day(con, day: dt.date) -> None:
    """Day 2 = day 1 with a few accounts dropping and a few recovering (steady state)."""
    con.execute(
        """
        insert into marts.account_health
        select * replace (
            $day as as_of_date,
            case when hash(account_id) % 50 = 0 then floor(active_users_prev_28d * 0.3)::int
                 when hash(account_id) % 50 = 1 then active_users_prev_28d
                 else active_users_28d end as active_users_28d,
            random() > 0.01 as is_data_complete
        )
        from marts.account_health where as_of_date = $day - 1
        """,
        {"day": day},
    )
    _scores(con, day)


def _scores(con, day: dt.date) -> None:
    con.execute(
        """
        insert into ml.account_scores
        select account_id, as_of_date, m, '1', 'run', p, p * 100,
               case when p > 0.6 then 'very_high' else 'low' end,
               'logins_trend_28d', 'seat_utilisation', 'days_since_admin_activity',
               0.5, 0.2, -0.1, '[]', now()
        from (select account_id, as_of_date, unnest(['churn', 'expansion']) as m,
                     random() ^ 8 as p
              from marts.account_health where as_of_date = $day)
        """,
        {"day": day},
    )
    con.execute(
        """
        insert into ml.anomalies
        select account_id, as_of_date, 'logins', 10, 2, -4.2, 'high'
        from marts.account_health where as_of_date = $day and random() < 0.02
        """,
        {"day": day},
    )
    con.execute(
        "insert into marts.data_freshness values ($day, true, 1000, 0, now())", {"day": day}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "bench.duckdb"))
        con.execute("create schema marts; create schema ml")
        con.execute(
            (REPO / "tests" / "alerts" / "conftest.py")
            .read_text()
            .split('HEALTH_DDL = """')[1]
            .split('"""')[0]
        )
        con.execute(
            "create table marts.data_freshness (activity_date date, is_landed boolean, "
            "events_loaded bigint, late_events_after bigint, landed_at timestamp)"
        )
        con.execute(
            "create table ml.account_scores (account_id string, as_of_date date, "
            "model_name string, model_version string, mlflow_run_id string, probability double, "
            "percentile double, band string, driver_1 string, driver_2 string, driver_3 string, "
            "driver_1_contribution double, driver_2_contribution double, "
            "driver_3_contribution double, drivers_json string, scored_at timestamp)"
        )
        con.execute(
            "create table ml.anomalies (account_id string, activity_date date, metric string, "
            "expected double, observed double, robust_z double, severity string)"
        )
        rules = load_rules(CONFIG / "rules.yml", columns_from_connection(con), TEMPLATES)
        routing = load_routing(CONFIG / "routing.yml")
        d1 = dt.date(2025, 6, 2)
        for i, day in enumerate((d1, d1 + dt.timedelta(days=1))):
            if i == 0:
                build(con, args.accounts, day, seed=1)
            else:
                next_day(con, day)
            started = time.perf_counter()
            r = evaluate(con, rules, routing, day, TEMPLATES)
            wall = time.perf_counter() - started
            print(
                f"{day} accounts={r.accounts_evaluated} gated={r.accounts_gated} "
                f"new={r.new_alerts} continued={r.continued_alerts} resolved={r.resolved_alerts} "
                f"cooldown={r.suppressed_cooldown} rolled_up={sum(r.budget_overflow.values())} "
                f"seconds={wall:.2f}"
            )
        con.close()


if __name__ == "__main__":
    main()
