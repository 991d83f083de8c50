"""Critical messages: one fallback chain, no silent drop, 24-hour retries, failover, escalation.

The sample world has two open critical alerts (Acme Logistics a_001, Hooli Media a_005). Each
regression test reproduces a way a critical alert went unseen before.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from alerts.escalation import EscalationPolicy, EscalationStep, apply_policy
from alerts.lifecycle import transition
from alerts.recipients import People
from notifications.capture import free_port
from notifications.content import ContentConfig
from notifications.critical import critical_coverage, retry_critical, run_critical
from notifications.mail import SmtpConfig, SmtpSender
from tests.notifications.chat_servers import SlackWebhookServer, TeamsWebhookServer
from tests.notifications.conftest import DAY, NOW, TEMPLATES

ROUTING = {
    "admins": ["cs-director@example.com"],
    "data_team": "data-team@example.com",
    "unassigned_owner": "cs-ops@example.com",
    "default_escalation": "cs-director@example.com",
    "second_channel": {"critical": ["slack", "teams"], "data_team": ["slack"]},
}
SECOND = ROUTING["second_channel"]


@pytest.fixture()
def chat():
    with SlackWebhookServer() as slack, TeamsWebhookServer() as teams:
        yield slack, teams


def _senders(smtp, chat):
    from notifications.chat import ChatConfig, WebhookSender

    slack, teams = chat
    sender = WebhookSender(
        ChatConfig(urls={"slack": {"critical": slack.url}, "teams": {"critical": teams.url}})
    )
    return {"email": smtp, "slack": sender, "teams": sender}


def _critical(con, content, smtp, chat, now=NOW):
    return run_critical(con, TEMPLATES, content, SECOND, _senders(smtp, chat), now)


def _to(capture) -> dict[str, list[str]]:
    return {m.message["Subject"]: m.envelope_to for m in capture.messages()}


def test_route_owner_and_accounts_without_csm_still_get_the_mail(con, smtp, capture, chat):
    # Before: a routes: owner outside the CSM scope was ignored, and an account with no CSM
    # was dropped without a trace (`if not to: continue`).
    con.execute(
        "update alerts.alerts set owner_email = 'renewals-desk@example.com' "
        "where account_id = 'a_001' and severity = 'critical'"
    )
    con.execute(
        "update alerts.alerts set owner_email = null where account_id = 'a_005' "
        "and severity = 'critical'"
    )
    con.execute("update marts.dim_accounts set csm_email = null where account_id = 'a_005'")
    run = _critical(con, ContentConfig(routing=ROUTING), smtp, chat)
    to = _to(capture)
    assert to["Critical: Acme Logistics - churn risk"][0] == "renewals-desk@example.com"
    # No owner, no CSM: the chain goes on to the team manager.
    assert to["Critical: Hooli Media - churn risk"][0] == "south.lead@example.com"
    assert run.as_metadata()["new_emails"] == 2
    slack, teams = chat
    assert len(slack.received) == 2 and len(teams.received) == 2


def test_an_alert_acknowledged_before_the_send_step_is_still_mailed(con, smtp, capture, chat):
    # Before: only `open` critical alerts were mailed.
    (alert_id,) = con.execute(
        "select alert_id from alerts.alerts where account_id = 'a_001' and severity = 'critical'"
    ).fetchall()[0]
    transition(con, alert_id, "acknowledged", "cs-director@example.com", "seen", NOW)
    _critical(con, ContentConfig(routing=ROUTING), smtp, chat)
    assert "Critical: Acme Logistics - churn risk" in _to(capture)
    assert critical_coverage(con, DAY).holds


def test_smtp_outage_retries_for_a_day_and_fails_over_at_once(con, smtp, capture, chat):
    # Before: dead after 5 attempts (~7-15 minutes) and never retried; only a WARN check.
    content = ContentConfig(routing=ROUTING)
    down = SmtpSender(SmtpConfig(host="127.0.0.1", port=free_port(), timeout_seconds=1))
    run = _critical(con, content, down, chat)
    slack, teams = chat
    # At once: the critical alerts on both chat channels, plus a notice per failed email on the
    # critical chats (Slack, Teams) and the data team's (Slack here, the same webhook); the
    # data team's email waits for the relay like the rest.
    assert run.as_metadata()["failed"] == 2 + 2  # two critical emails, two data team emails
    assert len(slack.received) == 2 + 2 * 2 and len(teams.received) == 2 + 2
    notices = [m for m in teams.received if "Delayed critical email" in json.dumps(m)]
    assert len(notices) == 2
    assert critical_coverage(con, DAY).holds  # in flight and on chat: nobody is left unaware
    # 23 hours of outage: still retried, never dead.
    now = NOW
    for _ in range(30):
        now += dt.timedelta(hours=23 / 30)
        retry_critical(con, content, SECOND, {**_senders(down, chat), "email": down}, now)
    dead, failed = con.execute(
        "select count(*) filter (where status = 'dead'), count(*) filter (where status = 'failed')"
        " from ops.outbox where channel = 'email' and idempotency_key like 'critical:%'"
    ).fetchall()[0]
    assert dead == 0 and failed == 2
    attempts = con.execute(
        "select min(attempts) from ops.outbox where idempotency_key like 'critical:al%'"
        " and channel = 'email'"
    ).fetchall()[0][0]
    assert attempts > 5
    # The relay is back within the day: each critical email goes out once.
    retry_critical(con, content, SECOND, _senders(smtp, chat), now + dt.timedelta(hours=2))
    critical = [s for s in _to(capture) if s.startswith("Critical:")]
    assert sorted(critical) == [
        "Critical: Acme Logistics - churn risk",
        "Critical: Hooli Media - churn risk",
    ]


def test_undeliverable_after_24_hours_is_dead_and_the_data_team_knows(con, smtp, capture, chat):
    content = ContentConfig(routing=ROUTING)
    down = SmtpSender(SmtpConfig(host="127.0.0.1", port=free_port(), timeout_seconds=1))
    _critical(con, content, down, chat)
    later = NOW + dt.timedelta(hours=25)
    retry_critical(con, content, SECOND, {**_senders(down, chat), "email": down}, later)
    dead = con.execute(
        "select count(*) from ops.outbox where status = 'dead' and channel = 'email' "
        "and idempotency_key like 'critical:%'"
    ).fetchall()[0][0]
    assert dead == 2
    slack, teams = chat
    # Once more, now that they are given up: on the critical chats and the data team's.
    assert sum(m["text"].startswith("Undeliverable critical email") for m in slack.received) == 4
    assert sum("Undeliverable critical email" in json.dumps(m) for m in teams.received) == 2


def test_escalation_policy_steps_and_reminders_until_acknowledged(con, smtp, capture, chat):
    people = People.from_routing(ROUTING)
    policy = EscalationPolicy(
        steps=(EscalationStep(4, "manager"), EscalationStep(12, "default_escalation")),
        remind_every_hours=24,
    )
    raised = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time())  # sample raised on DAY
    con.execute("update alerts.alerts set first_raised_on = ? where severity = 'critical'", [DAY])
    assert apply_policy(con, policy, people, raised + dt.timedelta(hours=3)) == []
    steps = apply_policy(con, policy, people, raised + dt.timedelta(hours=5))
    assert {(s["step"], s["escalated_to"]) for s in steps} == {
        ("step:1", "north.lead@example.com"),
        ("step:1", "south.lead@example.com"),
    }
    (acme,) = con.execute(
        "select alert_id from alerts.alerts where account_id = 'a_001' and severity = 'critical'"
    ).fetchall()[0]
    transition(con, acme, "acknowledged", "ana@example.com", "calling them", raised)
    steps = apply_policy(con, policy, people, raised + dt.timedelta(hours=13 + 24))
    # Only Hooli is still unacknowledged: the director, then one reminder (not a backlog).
    assert [(s["step"], s["escalated_to"]) for s in steps] == [
        ("step:2", "cs-director@example.com"),
        ("reminder:1", "cara@example.com"),
    ]
    events = con.execute(
        "select event, details_json from alerts.audit_log "
        "where actor = 'system:escalation-policy' order by event_at, event"
    ).fetchall()
    assert [e for e, _ in events].count("escalated") == 3 and events[-1][0] == "reminded"
    # The deliveries stage sends each step by email and on the second channel, once.
    content = ContentConfig(routing=ROUTING)
    _critical(con, content, smtp, chat, raised + dt.timedelta(hours=38))
    subjects = list(_to(capture))
    assert any(s.startswith("Escalation: Hooli Media") for s in subjects)
    assert any(s.startswith("Reminder: Hooli Media") for s in subjects)
    assert not any(s.startswith("Reminder: Acme") for s in subjects)
    slack, _ = chat
    assert any(m["text"].startswith("Reminder: Hooli Media") for m in slack.received)


def test_the_delivery_check_finds_a_critical_alert_nobody_was_told_about(con):
    con.execute("update alerts.alerts set last_seen_on = ? where severity = 'critical'", [DAY])
    cov = critical_coverage(con, DAY)
    assert not cov.holds and cov.checked == 2 and len(cov.violations) == 2
    assert {v["account_id"] for v in cov.violations} == {"a_001", "a_005"}
