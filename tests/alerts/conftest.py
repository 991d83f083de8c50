"""Hand-made input tables (contract columns) in a temp DuckDB for the alert engine tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from alerts.rules import columns_from_connection, load_routing, load_rules

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
TEMPLATES = CONFIG / "templates" / "recommendations"

HEALTH_DDL = """
create table marts.account_health (
    account_id string, as_of_date date, arr decimal(18, 2), seats integer, plan string,
    segment string, csm_email string, manager_email string, is_data_complete boolean,
    health_score double, health_tier string, active_users_28d integer,
    active_users_prev_28d integer, logins_28d integer, logins_prev_28d integer,
    logins_trend_28d double, seat_utilisation double, feature_breadth_28d integer,
    days_since_admin_activity integer, days_since_last_activity integer, days_to_renewal integer
)
"""

HEALTHY = {
    "arr": 24000,
    "seats": 20,
    "plan": "growth",
    "segment": "mid_market",
    "csm_email": "alice@example.com",
    "manager_email": "mona@example.com",
    "is_data_complete": True,
    "health_score": 80.0,
    "health_tier": "healthy",
    "active_users_28d": 12,
    "active_users_prev_28d": 12,
    "logins_28d": 120,
    "logins_prev_28d": 118,
    "logins_trend_28d": 0.02,
    "seat_utilisation": 0.6,
    "feature_breadth_28d": 7,
    "days_since_admin_activity": 2,
    "days_since_last_activity": 0,
    "days_to_renewal": 200,
}
COLUMNS = ["account_id", "as_of_date", *HEALTHY]


class Warehouse:
    """A temp DuckDB with the four input tables; add days of hand-made rows."""

    def __init__(self, path: Path):
        self.path = path
        self.con = duckdb.connect(str(path))
        for schema in ("marts", "ml"):
            self.con.execute(f"create schema if not exists {schema}")
        self.con.execute(HEALTH_DDL)
        self.con.execute(
            "create table marts.data_freshness (activity_date date, is_landed boolean, "
            "events_loaded bigint, late_events_after bigint, landed_at timestamp)"
        )
        self.con.execute("create table marts.dim_accounts (account_id string, account_name string)")
        self.con.execute(
            "create table ml.account_scores (account_id string, as_of_date date, "
            "model_name string, model_version string, mlflow_run_id string, probability double, "
            "percentile double, band string, driver_1 string, driver_2 string, driver_3 string, "
            "driver_1_contribution double, driver_2_contribution double, "
            "driver_3_contribution double, drivers_json string, scored_at timestamp)"
        )
        self.con.execute(
            "create table ml.anomalies (account_id string, activity_date date, metric string, "
            "expected double, observed double, robust_z double, severity string)"
        )

    def add_accounts(self, ids: list[str]) -> None:
        self.con.executemany(
            "insert into marts.dim_accounts values (?, ?)",
            [[i, f"Account {i.upper()}"] for i in ids],
        )

    def day(
        self,
        day: dt.date,
        accounts: dict[str, dict],
        landed: bool = True,
        churn: dict[str, float] | None = None,
        percentile: dict[str, float] | None = None,
    ) -> None:
        """Rows for one as-of day: each account = HEALTHY overridden by its dict; `churn` gives
        accounts a churn probability, `percentile` a middling score at that churn percentile
        (the shipped usage rules fire only where the model's percentile is 75 or more)."""
        rows = []
        for account_id, overrides in accounts.items():
            values = {**HEALTHY, **overrides}
            rows.append([account_id, day, *(values[c] for c in HEALTHY)])
        # A DataFrame insert: executemany is slow in DuckDB and tests add many days.
        frame = pd.DataFrame(rows, columns=COLUMNS)
        self.con.register("_day_df", frame)
        self.con.execute(
            f"insert into marts.account_health select {', '.join(COLUMNS)} from _day_df"
        )
        self.con.unregister("_day_df")
        self.con.execute(
            "insert into marts.data_freshness values (?, ?, 100, 0, ?)",
            [day, landed, dt.datetime.combine(day, dt.time(23))],
        )
        for account_id, p in (churn or {}).items():
            self.con.execute(
                "insert into ml.account_scores values (?, ?, 'churn', '3', 'run1', ?, ?, ?, "
                "'logins_trend_28d', 'days_since_admin_activity', 'seat_utilisation', 0.8, 0.3, "
                "-0.1, '[]', now())",
                [account_id, day, p, p * 100, "very_high" if p > 0.6 else "low"],
            )
        for account_id, pct in (percentile or {}).items():
            self.score(day, account_id, pct)

    def score(self, day: dt.date, account_id: str, percentile: float) -> None:
        """A churn score of probability 0.5, band medium, at this percentile."""
        self.con.execute(
            "insert into ml.account_scores values (?, ?, 'churn', '3', 'run1', 0.5, ?, 'medium', "
            "'logins_trend_28d', 'days_since_admin_activity', 'seat_utilisation', 0.8, 0.3, "
            "-0.1, '[]', now())",
            [account_id, day, percentile],
        )


@pytest.fixture()
def wh(tmp_path) -> Warehouse:
    w = Warehouse(tmp_path / "warehouse.duckdb")
    yield w
    w.con.close()


@pytest.fixture()
def rules(wh):
    return load_rules(CONFIG / "rules.yml", columns_from_connection(wh.con), TEMPLATES)


@pytest.fixture()
def routing():
    return load_routing(CONFIG / "routing.yml")


D0 = dt.date(2025, 3, 3)


def days(n: int) -> list[dt.date]:
    return [D0 + dt.timedelta(days=i) for i in range(n)]
