"""A small hand-made world of accounts, users and alerts (two teams) for tests and samples."""

from __future__ import annotations

import datetime as dt
import json

from alerts.schema import ensure_schema as ensure_alerts_schema

ADMINS = ["cs-director@example.com", "data-team@example.com"]
ROUTING = {"admins": ADMINS}
# account_id -> (name, csm, manager, arr)
ACCOUNTS = {
    "a_001": ("Acme Logistics", "ana@example.com", "north.lead@example.com", 120000),
    "a_002": ("Globex Health", "ana@example.com", "north.lead@example.com", 48000),
    "a_003": ("Initech Finance", "ben@example.com", "north.lead@example.com", 30000),
    "a_004": ("Umbrella Retail", "cara@example.com", "south.lead@example.com", 90000),
    "a_005": ("Hooli Media", "cara@example.com", "south.lead@example.com", 250000),
}
OPTED_OUT_EMAIL = "bob.hidden@acme.example"
CHAMPION_EMAIL = "jane.doe@acme.example"


def _alert(
    alert_id,
    rule,
    typ,
    account,
    severity,
    raised,
    action,
    text,
    expl,
    values,
    drivers,
    status="open",
    summary=False,
    snoozed=None,
    probability=0.7,
):
    name, csm, mgr, arr = ACCOUNTS.get(account, ("", "data-team@example.com", None, None))
    return {
        "alert_id": alert_id,
        "rule_id": rule,
        "alert_type": typ,
        "title": f"{typ} {name}",
        "account_id": account,
        "account_name": name or None,
        "episode_start_date": raised,
        "first_raised_on": raised,
        "last_seen_on": raised,
        "status": status,
        "severity": severity,
        "priority": {"critical": 4, "high": 3, "medium": 2, "low": 1}[severity] * (arr or 1000),
        "probability": probability if arr else None,
        "arr": arr,
        "owner_email": csm,
        "escalation_email": mgr,
        "sla_due_at": dt.datetime.combine(raised, dt.time(17)) + dt.timedelta(days=1),
        "explanation": expl,
        "explanation_json": json.dumps({"clauses": [{"clause": rule, "values": values}]}),
        "drivers_json": json.dumps(drivers),
        "recommended_action": action,
        "recommendation_text": text,
        "in_digest_summary": summary,
        "snoozed_until": snoozed,
        "updated_at": dt.datetime.combine(raised, dt.time(6)),
    }


def sample_alerts(day: dt.date) -> list[dict]:
    """Alerts of every kind the digest must handle, raised on or before `day`."""
    d3 = day - dt.timedelta(days=3)
    churn_drivers = [
        {"feature": "logins_trend_28d", "contribution": 0.82},
        {"feature": "days_since_admin_activity", "contribution": 0.41},
        {"feature": "seat_utilisation", "contribution": -0.12},
    ]
    return [
        _alert(
            "al_crit_acme",
            "churn_high_prob",
            "churn_risk",
            "a_001",
            "critical",
            day,
            "meeting",
            "Book a health review with the champion this week and agree a plan.",
            f"Churn probability 82%; logins down 46% over 28 days; admin {OPTED_OUT_EMAIL} "
            "inactive for 31 days.",
            {"churn_probability": 0.82, "logins_trend_28d": -0.46, "days_since_admin_activity": 31},
            churn_drivers,
            probability=0.82,
        ),
        _alert(
            "al_high_globex",
            "engagement_drop",
            "engagement_drop",
            "a_002",
            "high",
            day,
            "call",
            "Call the account admin to find out what changed.",
            "Weekly logins fell 38% week over week.",
            {"wow_logins_change": -0.38},
            [],
        ),
        _alert(
            "al_med_globex",
            "adoption_gap",
            "adoption_gap",
            "a_002",
            "medium",
            d3,
            "training_session",
            "Offer a 30 minute training on reporting.",
            "Only 2 of 9 features used in 28 days.",
            {"feature_breadth_28d": 2},
            [],
        ),
        _alert(
            "al_high_initech",
            "renewal_risk",
            "renewal_risk",
            "a_003",
            "high",
            d3,
            "email",
            "Send the renewal check-in email.",
            "Renewal in 45 days and health score 38.",
            {"days_to_renewal": 45, "health_score": 38},
            [],
            status="acknowledged",
        ),
        _alert(
            "al_low_initech",
            "champion_quiet",
            "champion_quiet",
            "a_003",
            "low",
            day,
            "email",
            "Send a short check-in to the champion.",
            "Champion quiet for 14 days.",
            {"days_since_admin_activity": 14},
            [],
        ),
        _alert(
            "al_exp_umbrella",
            "expansion_ready",
            "expansion_opportunity",
            "a_004",
            "high",
            day,
            "expansion_conversation",
            "Propose the enterprise plan: seats are 97% used.",
            "Seat utilisation 97% and active users up 22% over 28 days.",
            {"seat_utilisation": 0.97, "active_users_trend_28d": 0.22},
            [{"feature": "seat_utilisation", "contribution": 0.9}],
            probability=0.64,
        ),
        _alert(
            "al_crit_hooli",
            "churn_high_prob",
            "churn_risk",
            "a_005",
            "critical",
            day,
            "executive_escalation",
            "Escalate to the account executive sponsor.",
            "Churn probability 77%; no admin activity for 40 days.",
            {"churn_probability": 0.77, "days_since_admin_activity": 40},
            churn_drivers,
            probability=0.77,
        ),
        _alert(
            "al_sum_hooli",
            "adoption_gap",
            "adoption_gap",
            "a_005",
            "low",
            day,
            "email",
            "Share the feature guide.",
            "Few features used.",
            {"feature_breadth_28d": 3},
            [],
            summary=True,
        ),
        _alert(
            "al_snoozed_umbrella",
            "renewal_risk",
            "renewal_risk",
            "a_004",
            "medium",
            d3,
            "email",
            "Check renewal.",
            "Renewal soon.",
            {"days_to_renewal": 60},
            [],
            snoozed=day + dt.timedelta(days=7),
        ),
        _alert(
            "al_resolved_acme",
            "engagement_drop",
            "engagement_drop",
            "a_001",
            "high",
            d3,
            "call",
            "Call.",
            "Old drop.",
            {},
            [],
            status="resolved",
        ),
        _alert(
            "al_fresh",
            "data_freshness",
            "data_freshness",
            "*",
            "medium",
            day,
            "email",
            "Check the ingestion runs.",
            "No events landed for 2 days.",
            {},
            [],
        ),
    ]


def load_sample(con, day: dt.date) -> None:
    """Create marts.dim_accounts, raw.users and alerts.alerts with the sample world (replacing
    any previous sample rows).
    """
    con.execute("create schema if not exists marts; create schema if not exists raw")
    con.execute(
        """
        create or replace table marts.dim_accounts (
            account_id varchar, account_name varchar, plan varchar, seats integer, arr double,
            renewal_date date, csm_email varchar, csm_name varchar, manager_email varchar,
            manager_name varchar, industry varchar, region varchar, tracking_consent boolean,
            segment varchar)
        """
    )
    for acc, (name, csm, mgr, arr) in ACCOUNTS.items():
        con.execute(
            "insert into marts.dim_accounts values (?, ?, 'growth', 50, ?, ?, ?, ?, ?, ?, "
            "'software', 'emea', true, 'mid_market')",
            [
                acc,
                name,
                arr,
                day + dt.timedelta(days=90),
                csm,
                csm.split("@")[0].title(),
                mgr,
                mgr.split("@")[0].title(),
            ],
        )
    con.execute(
        """
        create or replace table raw.users (
            user_id varchar, account_id varchar, email varchar, role varchar,
            created_at timestamp, deactivated_at timestamp, opted_out boolean,
            snapshot_date date, landing_date date, source_file varchar, source_line bigint,
            loaded_at timestamp)
        """
    )
    users = [
        ("u_001_1", "a_001", OPTED_OUT_EMAIL, "admin", True),
        ("u_001_2", "a_001", CHAMPION_EMAIL, "admin", False),
        ("u_004_1", "a_004", "max.power@umbrella.example", "admin", False),
        ("u_005_1", "a_005", "gavin@hooli.example", "admin", False),
    ]
    for uid, acc, email, role, opted in users:
        con.execute(
            "insert into raw.users values (?, ?, ?, ?, ?, null, ?, ?, ?, 'users.csv', 1, ?)",
            [
                uid,
                acc,
                email,
                role,
                dt.datetime(2024, 1, 1),
                opted,
                day,
                day,
                dt.datetime.combine(day, dt.time(1)),
            ],
        )
    ensure_alerts_schema(con)
    rows = sample_alerts(day)
    con.execute(
        "delete from alerts.alerts where list_contains($ids, alert_id)",
        {"ids": [r["alert_id"] for r in rows]},
    )
    cols = list(rows[0])
    con.executemany(
        f"insert into alerts.alerts ({', '.join(cols)}) values ({', '.join('?' for _ in cols)})",
        [[r[c] for c in cols] for r in rows],
    )


def load_sample_health(con, day: dt.date) -> None:
    """A small marts.account_health for the sample accounts on `day` and 28 days before (the
    metrics the inbox shows beside an alert). Initech's earlier documents figure is unknown.
    """
    con.execute("create schema if not exists marts")
    con.execute(
        """
        create or replace table marts.account_health (
            account_id varchar, as_of_date date, logins_28d integer, logins_prev_28d integer,
            logins_trend_28d double, active_users_28d integer, active_users_prev_28d integer,
            session_minutes_28d double, session_minutes_prev_28d double,
            docs_viewed_28d integer, docs_viewed_prev_28d integer,
            feature_breadth_28d integer, feature_breadth_prev_28d integer,
            health_score double, health_tier varchar, seat_utilisation double,
            days_to_renewal integer, days_since_admin_activity integer)
        """
    )
    # account, logins (28d, before, trend), users, minutes, docs, breadth, health, tier, seats,
    # days to renewal, days since admin activity
    rows = [
        (
            "a_001",
            54,
            100,
            -0.46,
            9,
            14,
            610.0,
            1240.0,
            40,
            75,
            3,
            5,
            41.0,
            "at_risk",
            0.18,
            120,
            31,
        ),
        ("a_002", 80, 96, -0.17, 12, 13, 900.0, 980.0, 66, 70, 2, 4, 58.0, "watch", 0.24, 200, 4),
        ("a_003", 40, 38, 0.05, 6, 6, 300.0, 310.0, 20, None, 4, 4, 38.0, "at_risk", 0.12, 45, 14),
        (
            "a_004",
            300,
            246,
            0.22,
            48,
            39,
            4000.0,
            3500.0,
            200,
            160,
            8,
            7,
            88.0,
            "healthy",
            0.97,
            300,
            1,
        ),
        ("a_005", 30, 90, -0.67, 4, 11, 200.0, 800.0, 10, 60, 1, 3, 22.0, "critical", 0.08, 80, 40),
    ]
    for r in rows:
        earlier = (
            r[0],
            day - dt.timedelta(days=28),
            *r[2:3],
            None,
            None,
            *r[5:6],
            None,
            *r[7:8],
            None,
            *r[9:10],
            None,
            *r[11:12],
            None,
            r[12] + 9,
            r[13],
            r[14],
            r[15] + 28,
            max(0, r[16] - 28),
        )
        con.execute(
            "insert into marts.account_health values (" + ", ".join("?" * 18) + ")",
            [r[0], day, *r[1:]],
        )
        con.execute(
            "insert into marts.account_health values (" + ", ".join("?" * 18) + ")", list(earlier)
        )
