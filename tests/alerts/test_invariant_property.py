"""Property: over random day-by-day histories the zero-missed-criticals invariant holds every day.

Each example is three accounts over three to eight days: the critical condition (renewal risk) true
or false per account and day, days that do not land, acknowledgements, snoozes and resolutions
by people, CSM changes and a routes: owner override switched on and off, the holdout on or off,
SMTP and webhook outages. Every day runs the real engine, the real critical delivery (SMTP
capture, Slack and Teams contract servers) and the retry pass, then checks the invariant
(tests/alerts/invariant.py). EA_PROPERTY_EXAMPLES sets the number of examples (default 10).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.engine import evaluate, evaluation_time
from alerts.holdout import Holdout
from alerts.lifecycle import TransitionError, snooze, transition
from alerts.rules import columns_from_connection, load_routing, load_rules
from notifications.capture import CaptureServer, free_port
from notifications.chat import ChatConfig, WebhookSender
from notifications.content import ContentConfig
from notifications.critical import retry_critical, run_critical
from notifications.mail import SmtpConfig, SmtpSender
from tests.alerts import invariant
from tests.alerts.conftest import CONFIG, TEMPLATES, Warehouse, days
from tests.notifications.chat_servers import SlackWebhookServer, TeamsWebhookServer

EMAIL_TEMPLATES = CONFIG / "templates" / "email"
ACCOUNTS = ("a1", "a2", "a3")
EXAMPLES = int(os.environ.get("EA_PROPERTY_EXAMPLES", "10"))
SECOND = {"critical": ["slack", "teams"], "data_team": ["slack"]}
RAN = {"examples": 0, "days": 0}

day_plan = st.fixed_dictionaries(
    {
        "holds": st.tuples(*(st.booleans() for _ in ACCOUNTS)),
        "landed": st.sampled_from([True, True, True, False]),
        "action": st.sampled_from(["none", "none", "ack", "snooze", "resolve"]),
        "on": st.sampled_from(ACCOUNTS),
        "csm_change": st.sampled_from([None, None, "a1", "a2"]),
        "route_override": st.booleans(),
        "smtp_down": st.booleans(),
        "webhook_down": st.booleans(),
    }
)


@pytest.fixture(scope="module")
def services():
    mail = Path(tempfile.mkdtemp(prefix="ea-prop-mail-"))
    with CaptureServer(mail) as smtp, SlackWebhookServer() as slack, TeamsWebhookServer() as teams:
        slack.burst = teams.per_second = 10_000  # rate limits are tested elsewhere
        yield smtp, slack, teams
    if RAN["examples"]:
        print(f"\nproperty test: {RAN['examples']} examples, {RAN['days']} days checked")


def _senders(services, smtp_down: bool):
    smtp, slack, teams = services
    port = free_port() if smtp_down else smtp.port
    chat = WebhookSender(
        ChatConfig(urls={"slack": {"critical": slack.url}, "teams": {"critical": teams.url}})
    )
    email = SmtpSender(SmtpConfig(host="127.0.0.1", port=port, timeout_seconds=2))
    return {"email": email, "slack": chat, "teams": chat}


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=st.lists(day_plan, min_size=3, max_size=8),
    holdout_on=st.booleans(),
)
def test_invariant_holds_every_day(services, plan, holdout_on):
    RAN["examples"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        wh = Warehouse(Path(tmp) / "warehouse.duckdb")
        try:
            _replay(wh, services, plan, holdout_on)
        finally:
            wh.con.close()


def _replay(wh, services, plan, holdout_on) -> None:
    # The CRM view of the accounts the deliveries read (the CSM as it is now).
    wh.con.execute(
        "create or replace table marts.dim_accounts (account_id string, account_name string, "
        "csm_email string, csm_name string, manager_email string, tracking_consent boolean)"
    )
    for a in ACCOUNTS:
        wh.con.execute(
            "insert into marts.dim_accounts values (?, ?, ?, 'Csm', 'mona@example.com', true)",
            [a, f"Account {a.upper()}", f"csm-{a}@example.com"],
        )
    rules = load_rules(CONFIG / "rules.yml", columns_from_connection(wh.con), TEMPLATES)
    base = load_routing(CONFIG / "routing.yml")
    holdout = Holdout(enabled=holdout_on, share=0.45, salt="prop")
    policy = base.escalation_policy
    csm = {a: f"csm-{a}@example.com" for a in ACCOUNTS}
    _, slack, teams = services
    for day, p in zip(days(len(plan)), plan, strict=False):
        RAN["days"] += 1
        if p["csm_change"]:
            changed = p["csm_change"]
            csm[changed] = None if csm[changed] else "new-csm@example.com"
            wh.con.execute(
                "update marts.dim_accounts set csm_email = ? where account_id = ?",
                [csm[changed], changed],
            )
        routes = [{"match": {"severity": "critical"}, "owner": "renewals@example.com"}]
        routing = dataclasses.replace(
            base, holdout=holdout, routes=routes if p["route_override"] else []
        )
        rows = {
            a: {"health_tier": "at_risk", "days_to_renewal": 60, "csm_email": csm[a]}
            if h
            else {"csm_email": csm[a]}
            for a, h in zip(ACCOUNTS, p["holds"], strict=True)
        }
        wh.day(
            day,
            rows,
            landed=p["landed"],
            churn={a: (0.8 if h else 0.1) for a, h in zip(ACCOUNTS, p["holds"], strict=True)},
        )
        evaluate(wh.con, rules, routing, day, TEMPLATES)
        now = evaluation_time(day) + dt.timedelta(minutes=5)
        slack.down = teams.down = p["webhook_down"]
        content = ContentConfig(
            routing={
                "data_team": base.data_team,
                "unassigned_owner": base.unassigned_owner,
                "default_escalation": base.default_escalation,
                "admins": base.admins,
            }
        )
        senders = _senders(services, p["smtp_down"])
        run_critical(wh.con, EMAIL_TEMPLATES, content, SECOND, senders, now)
        retry_critical(wh.con, content, SECOND, senders, now + dt.timedelta(hours=1))
        held = (
            {(a, "renewal_at_risk") for a, h in zip(ACCOUNTS, p["holds"], strict=True) if h}
            if p["landed"]
            else set()
        )
        problems = invariant.violations(wh.con, day, held, now, policy)
        assert not problems, problems
        _act(wh.con, p, day, now)


def _act(con, p, day, now) -> None:
    """A person's action on the chosen account's open critical alert, after the day's run."""
    rows = con.execute(
        "select alert_id from alerts.alerts where account_id = ? and severity = 'critical' "
        "and status in ('open', 'acknowledged')",
        [p["on"]],
    ).fetchall()
    if not rows or p["action"] == "none":
        return
    alert_id, person = rows[0][0], "csm-person@example.com"
    try:
        if p["action"] == "ack":
            transition(con, alert_id, "acknowledged", person, "on it", now)
        elif p["action"] == "snooze":
            snooze(con, alert_id, day + dt.timedelta(days=3), person, "waiting for the exec", now)
        else:
            transition(con, alert_id, "resolved", person, "renewal signed", now)
    except TransitionError:
        pass
