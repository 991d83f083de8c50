"""CRM task connectors against contract servers: payloads, retries, no duplicates, status sync."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

import pytest

from alerts import transition
from notifications.crm import CrmConfig, connector
from notifications.outbox import RetryPolicy, deliver_due, enqueue, outbox_counts
from notifications.tasks import TaskPolicy, build_crm_tasks, sync_task_status
from tests.notifications.crm_servers import HubSpotServer, SalesforceServer, WebhookServer
from tests.notifications.sample import OPTED_OUT_EMAIL

from .conftest import NOW

# Open critical/high alerts in the sample: Acme (critical), Globex (high), Umbrella (high),
# Hooli (critical). Initech's high alert is acknowledged, so it gets no new task.
EXPECTED_TASKS = {"al_crit_acme", "al_high_globex", "al_exp_umbrella", "al_crit_hooli"}
FAST = RetryPolicy(max_attempts=5, base_seconds=1, jitter=0)


def _run(con, crm, now=NOW, policy=FAST):
    enqueue(con, build_crm_tasks(con, TaskPolicy(), now), now)
    return deliver_due(con, {"crm_task": crm}, now, policy)


@pytest.fixture()
def hubspot():
    with HubSpotServer(token="hs-token") as server:
        yield server


@pytest.fixture()
def salesforce():
    with SalesforceServer(token="sf-token") as server:
        yield server


OWNERS = {"ana@example.com": "101", "cara@example.com": "103"}


def _hs(server, timeout=5.0, owners=OWNERS):
    return connector(
        CrmConfig(
            mode="hubspot",
            base_url=server.url,
            token="hs-token",
            timeout_seconds=timeout,
            owner_ids=owners,
        )
    )


def _sf(server, timeout=5.0):
    return connector(
        CrmConfig(
            mode="salesforce",
            base_url=server.url,
            token="sf-token",
            timeout_seconds=timeout,
            owner_ids={"cara@example.com": "005000000000003AAA"},
        )
    )


def test_record_mode_keeps_tasks_in_outbox_without_sending(con):
    report = _run(con, connector(CrmConfig()))
    assert report.recorded == 4 and report.sent == 0
    rows = con.execute(
        "select alert_id, status, payload_json from ops.outbox where channel = 'crm_task'"
    ).fetchall()
    assert {r[0] for r in rows} == EXPECTED_TASKS
    assert {r[1] for r in rows} == {"recorded"}
    assert all(OPTED_OUT_EMAIL not in r[2] for r in rows)


def test_hubspot_payload_matches_contract(con, hubspot):
    report = _run(con, _hs(hubspot))
    assert report.sent == 4 and hubspot.violations == []
    assert len(hubspot.tasks) == 4
    task = next(
        t for t in hubspot.tasks.values() if t["properties"]["ea_alert_id"] == "al_crit_acme"
    )
    props = task["properties"]
    assert all(isinstance(v, str) for v in props.values())
    assert props["hs_timestamp"] == "2025-03-05T17:00:00.000Z"  # the alert's SLA
    assert props["hs_task_priority"] == "HIGH" and props["hs_task_status"] == "NOT_STARTED"
    assert props["hubspot_owner_id"] == "101"  # mapped from the owner's email
    hooli = next(
        t for t in hubspot.tasks.values() if t["properties"]["ea_alert_id"] == "al_crit_hooli"
    )
    assert hooli["properties"]["hubspot_owner_id"] == "103"
    assert "Why:" in props["hs_task_body"] and "Recommended:" in props["hs_task_body"]
    assert OPTED_OUT_EMAIL not in props["hs_task_body"]
    assert task["associations"] == [
        {
            "to": {"id": "a_001"},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 192}],
        }
    ]
    creates = [r for r in hubspot.requests if r["path"] == "/crm/v3/objects/tasks"]
    assert all(r["headers"]["Authorization"] == "Bearer hs-token" for r in creates)


def test_hubspot_rejects_wrong_token_as_permanent(con, hubspot):
    bad = connector(CrmConfig(mode="hubspot", base_url=hubspot.url, token="nope"))
    report = _run(con, bad)
    assert report.dead == 4 and not hubspot.tasks
    error = con.execute("select any_value(last_error) from ops.outbox").fetchall()[0][0]
    assert "401" in error and "nope" not in error  # the token never lands in the outbox


def test_hubspot_429_is_retried_after_retry_after(con, hubspot):
    hubspot.fail_next(429, retry_after=30)
    report = _run(con, _hs(hubspot))
    assert report.failed == 1 and report.sent == 3
    next_at = con.execute(
        "select next_attempt_at from ops.outbox where status = 'failed'"
    ).fetchall()[0][0]
    assert next_at >= NOW + dt.timedelta(seconds=30)
    assert (
        deliver_due(con, {"crm_task": _hs(hubspot)}, NOW + dt.timedelta(seconds=10), FAST).attempted
        == 0
    )
    assert (
        deliver_due(con, {"crm_task": _hs(hubspot)}, NOW + dt.timedelta(seconds=31), FAST).sent == 1
    )
    assert len(hubspot.tasks) == 4


def test_hubspot_500_and_timeout_are_retried_without_duplicates(con, hubspot):
    hubspot.fail_next(500)
    # The next create is processed but its answer never arrives (client timeout).
    hubspot.hang_next(1.5, times=2)
    report = _run(con, _hs(hubspot, timeout=0.5))
    assert report.failed >= 2
    later = NOW + dt.timedelta(minutes=5)
    report = deliver_due(con, {"crm_task": _hs(hubspot)}, later, FAST)
    assert outbox_counts(con)["sent"] == 4, report.errors
    ids = [t["properties"]["ea_alert_id"] for t in hubspot.tasks.values()]
    assert sorted(ids) == sorted(EXPECTED_TASKS)  # one task per alert despite the lost answers
    # A full re-run of the stage creates nothing new either.
    assert _run(con, _hs(hubspot), later).attempted == 0
    assert len(hubspot.tasks) == 4


def test_hubspot_completed_task_resolves_alert_with_notes(con, hubspot):
    _run(con, _hs(hubspot))
    task_id = next(
        k for k, t in hubspot.tasks.items() if t["properties"]["ea_alert_id"] == "al_crit_acme"
    )
    hubspot.complete(task_id, notes="Met the champion, renewal plan agreed.")
    report = sync_task_status(con, _hs(hubspot), transition, NOW + dt.timedelta(days=1))
    assert report.resolved == 1 and report.checked == 4
    status, reason = con.execute(
        "select status, resolution_reason from alerts.alerts where alert_id = 'al_crit_acme'"
    ).fetchall()[0]
    assert status == "resolved" and reason.startswith("task completed")
    actor, audit_reason = con.execute(
        "select actor, reason from alerts.audit_log where alert_id = 'al_crit_acme' "
        "and event = 'resolved'"
    ).fetchall()[0]
    assert actor == "crm:hubspot" and "renewal plan agreed" in audit_reason
    # The next sync does not touch it again.
    assert sync_task_status(con, _hs(hubspot), transition, NOW + dt.timedelta(days=2)).checked == 3


def test_salesforce_upsert_contract_retries_and_sync(con, salesforce):
    salesforce.fail_next(503)
    salesforce.hang_next(1.5)
    _run(con, _sf(salesforce, timeout=0.5))
    deliver_due(con, {"crm_task": _sf(salesforce)}, NOW + dt.timedelta(minutes=5), FAST)
    assert outbox_counts(con)["sent"] == 4 and salesforce.violations == []
    assert set(salesforce.tasks) == EXPECTED_TASKS
    rec = salesforce.tasks["al_exp_umbrella"]
    assert rec["WhatId"] == "a_004" and rec["OwnerId"] == "005000000000003AAA"
    acme = salesforce.tasks["al_crit_acme"]  # ana has no Salesforce user id configured
    assert "OwnerId" not in acme and "Owner: ana@example.com" in acme["Description"]
    assert rec["ActivityDate"] == "2025-03-05" and rec["Priority"] == "High"
    patches = [r for r in salesforce.requests if r["method"] == "PATCH"]
    assert all(
        r["path"].startswith("/services/data/v60.0/sobjects/Task/Alert_Id__c/") for r in patches
    )
    salesforce.complete("al_exp_umbrella")
    assert sync_task_status(con, _sf(salesforce), transition, NOW).resolved == 1
    status = con.execute(
        "select status from alerts.alerts where alert_id = 'al_exp_umbrella'"
    ).fetchall()[0][0]
    assert status == "resolved"


def test_webhook_is_signed_and_deduplicated(con):
    with WebhookServer(secret="s3cret") as hook:
        crm = connector(
            CrmConfig(
                mode="webhook",
                base_url=hook.url + "/hook",
                webhook_secret="s3cret",
                timeout_seconds=0.5,
            )
        )
        hook.hang_next(1.2)
        _run(con, crm)
        deliver_due(con, {"crm_task": crm}, NOW + dt.timedelta(minutes=5), FAST)
        assert outbox_counts(con)["sent"] == 4 and hook.violations == []
        assert hook.posts == 5 and len(hook.deliveries) == 4  # the lost answer was re-posted
        req = hook.requests[-1]
        want = "sha256=" + hmac.new(b"s3cret", req["body"], hashlib.sha256).hexdigest()
        assert req["headers"]["X-EA-Signature"] == want
        assert json.loads(req["body"])["event"] == "alert.task"
        wrong = connector(
            CrmConfig(mode="webhook", base_url=hook.url + "/hook", webhook_secret="other")
        )
        con.execute("delete from ops.outbox")
        assert _run(con, wrong).dead == 4
