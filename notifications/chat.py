"""The second channel: Slack (incoming webhook, Block Kit) and Microsoft Teams (incoming webhook,
Adaptive Card) messages for critical alerts, escalations and delivery failures.

One neutral message (title, lines, facts, link) is rendered here into both formats, within each
service's documented limits (docs/deliveries.md names the sources); `WebhookSender` posts them
for the outbox and maps each documented error answer to retry or dead letter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from notifications.outbox import DeliveryError, OutboxRow, PermanentDeliveryError, SendResult

CHANNELS = ("slack", "teams")
AUDIENCES = ("critical", "data_team")
# Slack Block Kit limits (blocks per message, header and section text, fields per section).
SLACK_MAX_BLOCKS = 50
SLACK_HEADER_CHARS = 150
SLACK_SECTION_CHARS = 3000
SLACK_FIELDS = 10
SLACK_FIELD_CHARS = 2000
# Teams: an incoming webhook message is at most 28 KB.
TEAMS_MAX_BYTES = 28 * 1024
ADAPTIVE_CARD_VERSION = "1.4"
# A 429 whose Retry-After is at most this is waited for in the send itself (a few times).
INLINE_WAIT_SECONDS = 2.0
INLINE_RETRIES = 3


@dataclass(frozen=True)
class ChatMessage:
    """What a chat message says, before it is shaped for one service."""

    title: str
    lines: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    link: tuple[str, str] | None = None  # (label, url)
    severity: str = "critical"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str) -> str:
    """Escape the three characters Slack's mrkdwn gives a meaning (&, <, >)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(msg: ChatMessage) -> dict[str, Any]:
    """Block Kit message (`text` is the notification fallback) within Slack's limits."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(msg.title, SLACK_HEADER_CHARS)},
        }
    ]
    body = "\n".join(f"• {_mrkdwn(line)}" for line in msg.lines)
    while body:  # long text goes into as many sections as it needs, each under the limit
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": body[:SLACK_SECTION_CHARS]}}
        )
        body = body[SLACK_SECTION_CHARS:]
    if msg.facts:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {
                        "type": "mrkdwn",
                        "text": _cut(f"*{_mrkdwn(k)}*\n{_mrkdwn(v)}", SLACK_FIELD_CHARS),
                    }
                    for k, v in msg.facts[:SLACK_FIELDS]
                ],
            }
        )
    if msg.link:
        label, url = msg.link
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": label[:75]},
                        "url": url[:3000],
                    }  # fmt: skip
                ],
            }
        )
    if len(blocks) > SLACK_MAX_BLOCKS:
        blocks = blocks[: SLACK_MAX_BLOCKS - 1] + [
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "(message shortened)"}]}
        ]
    fallback = msg.title + (": " + msg.lines[0] if msg.lines else "")
    return {"text": _cut(fallback, SLACK_SECTION_CHARS), "blocks": blocks}


def teams_payload(msg: ChatMessage) -> dict[str, Any]:
    """Incoming-webhook message carrying one Adaptive Card, under the 28 KB limit."""
    lines = list(msg.lines)
    while True:
        body: list[dict[str, Any]] = [
            {
                "type": "TextBlock",
                "text": msg.title,
                "size": "Large",
                "weight": "Bolder",
                "wrap": True,
                "color": "Attention" if msg.severity == "critical" else "Default",
            },
            *({"type": "TextBlock", "text": line, "wrap": True} for line in lines),
        ]
        if msg.facts:
            body.append(
                {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in msg.facts]}
            )
        card: dict[str, Any] = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": ADAPTIVE_CARD_VERSION,
            "body": body,
        }
        if msg.link:
            card["actions"] = [{"type": "Action.OpenUrl", "title": msg.link[0], "url": msg.link[1]}]
        payload = {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": card,
                }
            ],
        }
        if len(json.dumps(payload).encode()) <= TEAMS_MAX_BYTES - 512 or not lines:
            return payload
        lines = lines[:-1] if len(lines) > 1 else [_cut(lines[0], len(lines[0]) // 2)]


def render(channel: str, msg: ChatMessage) -> dict[str, Any]:
    """The request body for `channel` ("slack" or "teams")."""
    if channel == "slack":
        return slack_payload(msg)
    if channel == "teams":
        return teams_payload(msg)
    raise ValueError(f"unknown chat channel {channel!r}; use one of {CHANNELS}")


@dataclass(frozen=True)
class ChatConfig:
    """Webhook URLs by channel and audience: {"slack": {"critical": url, "data_team": url}}.
    URLs are secrets (they carry the token): they come from the environment, never a file.
    """

    urls: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    timeout_seconds: float = 10.0

    def url(self, channel: str, audience: str) -> str:
        by_audience = self.urls.get(channel) or {}
        return by_audience.get(audience) or by_audience.get("critical") or ""

    def __repr__(self) -> str:  # never print the URLs
        configured = {c: sorted(a for a, u in v.items() if u) for c, v in self.urls.items()}
        return f"ChatConfig(configured={configured})"


ENV_NAMES = {
    ("slack", "critical"): "SLACK_WEBHOOK_URL",
    ("slack", "data_team"): "SLACK_DATA_TEAM_WEBHOOK_URL",
    ("teams", "critical"): "TEAMS_WEBHOOK_URL",
    ("teams", "data_team"): "TEAMS_DATA_TEAM_WEBHOOK_URL",
}


class WebhookSender:
    """Outbox sender for the "slack" and "teams" channels: one POST per message.

    The recipient is "<channel>:<audience>". Answers, as the services document them: 2xx sent;
    429 and 5xx retried (honouring Retry-After); 400/403/404/410/413 dead (the message or the
    webhook must be fixed); a timeout or refused connection retried.
    """

    def __init__(self, config: ChatConfig, client: httpx.Client | None = None):
        self.config = config
        self.client = client
        self._own: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        # One client per sender: its TLS setup and connections are reused for every post.
        if self.client is not None:
            return self.client
        if self._own is None:
            self._own = httpx.Client(timeout=self.config.timeout_seconds)
        return self._own

    def __call__(self, row: OutboxRow) -> SendResult:
        channel, _, audience = row.recipient.partition(":")
        url = self.config.url(channel, audience or "critical")
        if not url:
            env = ENV_NAMES.get((channel, audience or "critical"), "the webhook variable")
            raise PermanentDeliveryError(
                f"no {channel} webhook URL for {audience or 'critical'}: set {env} "
                "(config/routing.yml second_channel names this channel)"
            )
        body = row.payload["body"]
        client = self._http()
        try:
            for _ in range(INLINE_RETRIES + 1):
                response = client.post(url, json=body)
                wait = _retry_after(response.headers.get("Retry-After"))
                # A short Retry-After on 429 (a burst of critical alerts): wait it out here,
                # rather than put the message back in the queue for a minute.
                if response.status_code != 429 or wait is None or wait > INLINE_WAIT_SECONDS:
                    break
                time.sleep(wait)
        except httpx.TransportError as exc:
            raise DeliveryError(f"{channel} webhook unreachable ({type(exc).__name__})") from None
        text = response.text[:200]
        if 200 <= response.status_code < 300:
            return SendResult(external_id=f"{channel}:{response.status_code}")
        if response.status_code == 429 or response.status_code >= 500:
            raise DeliveryError(
                f"{channel} webhook answered {response.status_code} {text!r}",
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        raise PermanentDeliveryError(f"{channel} webhook refused: {response.status_code} {text!r}")


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
