"""DDL for the `alerts` schema: alerts, audit log, snoozes, escalations, runs, backtest results."""

from __future__ import annotations

import datetime as dt
import hashlib

STATUSES = ("open", "acknowledged", "resolved", "expired")
# What a person says when resolving: used as labels and for precision / fatigue KPIs.
FEEDBACK = ("useful", "not_useful", "saved", "lost")
SEVERITIES = ("critical", "high", "medium", "low")
ALERT_TYPES = (
    "churn_risk",
    "engagement_drop",
    "champion_quiet",
    "adoption_gap",
    "renewal_risk",
    "expansion_opportunity",
    "data_freshness",
    "account_dormant",
)
ACTIONS = (
    "email",
    "call",
    "meeting",
    "executive_escalation",
    "training_session",
    "expansion_conversation",
)

_DDL = [
    "create schema if not exists alerts",
    """
    create table if not exists alerts.alerts (
        alert_id string primary key,
        rule_id string not null,
        alert_type string not null,
        title string,
        account_id string not null,
        account_name string,
        episode_start_date date not null,
        first_raised_on date not null,
        last_seen_on date not null,
        status string not null,
        severity string not null,
        priority double,
        probability double,
        arr double,
        owner_email string,
        escalation_email string,
        sla_due_at timestamp,
        explanation string,
        explanation_json string,
        drivers_json string,
        recommended_action string,
        recommendation_text string,
        in_digest_summary boolean not null default false,
        snoozed_until date,
        acknowledged_at timestamp,
        escalated_at timestamp,
        resolved_at timestamp,
        resolution_reason string,
        updated_at timestamp not null
    )
    """,
    # Added for the control group (issue 9); older warehouses get the column on the next run.
    "alter table alerts.alerts add column if not exists is_holdout boolean default false",
    "alter table alerts.alerts add column if not exists feedback string",
    # When the escalation policy next acts on this alert (a step or a reminder); NULL when no
    # policy step is left to wait for (acknowledged, closed, or not a policy severity).
    "alter table alerts.alerts add column if not exists next_escalation_at timestamp",
    """
    create table if not exists alerts.audit_log (
        event_id string primary key,
        alert_id string not null,
        event string not null,
        from_status string,
        to_status string,
        actor string not null,
        reason string,
        event_at timestamp not null,
        details_json string,
        recorded_at timestamp not null
    )
    """,
    """
    create table if not exists alerts.snoozes (
        snooze_id string primary key,
        alert_id string not null,
        rule_id string not null,
        account_id string not null,
        snoozed_until date not null,
        actor string not null,
        reason string,
        created_at timestamp not null
    )
    """,
    """
    create table if not exists alerts.escalations (
        escalation_id string primary key,
        alert_id string not null,
        rule_id string not null,
        account_id string not null,
        severity string not null,
        escalated_to string,
        sla_due_at timestamp,
        escalated_at timestamp not null,
        reason string
    )
    """,
    # Escalation policy steps ('step:1', 'reminder:2'); NULL for an SLA breach escalation.
    "alter table alerts.escalations add column if not exists step string",
    """
    create table if not exists alerts.evaluation_runs (
        as_of_date date primary key,
        evaluated_at timestamp not null,
        accounts_evaluated integer,
        accounts_gated integer,
        new_alerts integer,
        continued_alerts integer,
        resolved_alerts integer,
        expired_alerts integer,
        suppressed_cooldown integer,
        suppressed_snooze integer,
        escalations integer,
        budget_overflow integer,
        seconds double
    )
    """,
    """
    create table if not exists alerts.backtest_results (
        start_date date not null,
        end_date date not null,
        horizon_days integer not null,
        rule_id string not null,
        alert_type string,
        alerts_raised integer,
        accounts_alerted integer,
        csm_count integer,
        weeks double,
        alerts_per_csm_per_week double,
        true_positives integer,
        "precision" double,
        churned_accounts integer,
        churners_caught integer,
        recall double,
        median_lead_days double,
        computed_at timestamp not null
    )
    """,
]


def ensure_schema(con) -> None:
    """Create the `alerts` schema and its tables if they do not exist yet (safe to call often)."""
    for statement in _DDL:
        con.execute(statement)


def alert_id_for(rule_id: str, account_id: str, episode_start: dt.date) -> str:
    """The deterministic alert id (see docs/contracts.md): rule + account + episode start."""
    key = f"{rule_id}|{account_id}|{episode_start.isoformat()}"
    return "al_" + hashlib.md5(key.encode()).hexdigest()[:20]
