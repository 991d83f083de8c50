"""Slack and Teams through the outbox, against servers that enforce each service's contract."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from notifications.chat import (
    ChatConfig,
    ChatMessage,
    WebhookSender,
    render,
    slack_payload,
    teams_payload,
)
from notifications.outbox import Delivery, deliver_due, enqueue, outbox_counts
from tests.notifications.chat_servers import SlackWebhookServer, TeamsWebhookServer

NOW = dt.datetime(2025, 3, 4, 7, 0)


@pytest.fixture()
def slack():
    with SlackWebhookServer() as server:
        yield server


@pytest.fixture()
def teams():
    with TeamsWebhookServer() as server:
        yield server


def _config(slack, teams, **over) -> ChatConfig:
    urls = {"slack": {"critical": slack.url}, "teams": {"critical": teams.url}}
    for key, url in over.items():
        channel, audience = key.split("_", 1)
        urls.setdefault(channel, {})[audience] = url
    return ChatConfig(urls=urls, timeout_seconds=5)


def _msg(lines=3, width=80) -> ChatMessage:
    return ChatMessage(
        title="Critical alert: Acme Logistics - renewal risk",
        lines=[f"Reason {i}: " + "x" * width for i in range(lines)],
        facts=[("Account", "Acme Logistics"), ("ARR", "$120,000")],
        link=("Open in inbox", "https://alerts.example.com/inbox/al_1"),
    )


def _delivery(channel: str, key: str, msg: ChatMessage, audience="critical") -> Delivery:
    return Delivery(
        idempotency_key=key,
        channel=channel,
        recipient=f"{channel}:{audience}",
        payload={"body": render(channel, msg), "kind": "critical", "retry": "critical"},
        subject=msg.title,
        alert_id="al_1",
    )


def _send(con, slack, teams, deliveries, now=NOW, **over):
    enqueue(con, deliveries, now)
    sender = WebhookSender(_config(slack, teams, **over))
    return deliver_due(con, {"slack": sender, "teams": sender}, now, channels=["slack", "teams"])


def test_both_services_accept_our_messages_and_nothing_is_sent_twice(con, slack, teams):
    deliveries = [_delivery("slack", "c:1:slack", _msg()), _delivery("teams", "c:1:teams", _msg())]
    report = _send(con, slack, teams, deliveries)
    assert report.sent == 2 and not slack.rejected and not teams.rejected
    (posted,) = slack.received
    assert posted["blocks"][0]["type"] == "header" and "Acme Logistics" in posted["text"]
    (card,) = teams.received
    content = card["attachments"][0]["content"]
    assert content["type"] == "AdaptiveCard" and content["actions"][0]["type"] == "Action.OpenUrl"
    # The same keys again: no new outbox row, no second post.
    report = _send(con, slack, teams, deliveries)
    assert report.attempted == 0 and len(slack.received) == 1 and len(teams.received) == 1


def test_long_messages_are_shaped_within_each_services_limits(con, slack, teams):
    huge = _msg(lines=400, width=300)  # ~120 KB of reasons
    slack_body = slack_payload(huge)
    assert len(slack_body["blocks"]) <= 50
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in slack_body["blocks"])
    assert len(json.dumps(teams_payload(huge)).encode()) <= 28 * 1024
    report = _send(con, slack, teams, [_delivery("slack", "big:s", huge),
                                       _delivery("teams", "big:t", huge)])  # fmt: skip
    assert report.sent == 2 and not slack.rejected and not teams.rejected


def test_contract_servers_refuse_what_the_services_refuse(slack, teams):
    import httpx

    too_big = {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive",
        "content": {"type": "AdaptiveCard", "version": "1.4",
                    "body": [{"type": "TextBlock", "text": "x" * 40_000}]}}]}  # fmt: skip
    assert httpx.post(teams.url, json=too_big).status_code == 413
    assert httpx.post(teams.url, json={"type": "message", "text": "hi"}).status_code == 400
    assert httpx.post(slack.url, json={}).text == "no_text"
    long_header = {"blocks": [{"type": "header", "text": {"type": "plain_text",
                                                          "text": "x" * 151}}]}  # fmt: skip
    assert httpx.post(slack.url, json=long_header).status_code == 400
    assert httpx.post(slack.url + "x", json={"text": "hi"}).text == "no_service"


def test_errors_map_to_retry_or_dead_letter(con, slack, teams):
    # Slack answers 429 with a short Retry-After: waited for inside the send, then sent.
    slack.force.append((429, {"Retry-After": "0.2"}, "rate_limited"))
    # Teams is down (503): retried later, honouring the backoff.
    teams.down = True
    report = _send(con, slack, teams, [_delivery("slack", "r:s", _msg()),
                                       _delivery("teams", "r:t", _msg())])  # fmt: skip
    assert report.sent == 1 and report.failed == 1
    assert len(slack.received) == 1
    # A long Retry-After is kept: the row is due again no sooner than it says.
    teams.down = False
    teams.force.append((429, {"Retry-After": "600"}, "Too many requests"))
    later = NOW + dt.timedelta(hours=2)
    report = deliver_due(con, {"teams": WebhookSender(_config(slack, teams))}, later,
                         channels=["teams"])  # fmt: skip
    assert report.failed == 1
    next_at = con.execute(
        "select next_attempt_at from ops.outbox where idempotency_key = 'r:t'"
    ).fetchall()[0][0]
    assert next_at >= later + dt.timedelta(seconds=600)
    report = deliver_due(con, {"teams": WebhookSender(_config(slack, teams))}, next_at,
                         channels=["teams"])  # fmt: skip
    assert report.sent == 1 and len(teams.received) == 1
    # A revoked webhook (404) or a missing URL: dead at once, visible with the reason.
    report = _send(con, slack, teams, [_delivery("slack", "d:s", _msg())],
                   slack_critical=slack.url + "-revoked")  # fmt: skip
    assert report.dead == 1
    enqueue(con, [_delivery("teams", "d:t", _msg(), "data_team")], NOW)
    unconfigured = WebhookSender(ChatConfig(urls={}))
    report = deliver_due(con, {"teams": unconfigured}, NOW, channels=["teams"])
    error = con.execute(
        "select last_error from ops.outbox where idempotency_key = 'd:t'"
    ).fetchall()[0][0]
    assert report.dead == 1 and "set TEAMS_DATA_TEAM_WEBHOOK_URL" in error
    assert outbox_counts(con)["dead"] == 2


def test_webhook_urls_never_show_in_reprs_or_errors(con, slack, teams):
    config = _config(slack, teams)
    assert "SECRET" not in repr(config)
    report = _send(con, slack, teams, [_delivery("slack", "e:s", _msg())],
                   slack_critical=slack.url + "-revoked")  # fmt: skip
    assert "SECRET" not in " ".join(report.errors)
