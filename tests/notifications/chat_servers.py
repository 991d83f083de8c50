"""Slack and Microsoft Teams incoming-webhook servers on 127.0.0.1 that enforce the documented
contracts (sources in docs/deliveries.md), for tests of the second channel.

Slack: POST application/json; `text` or `blocks` required (400 no_text); blocks at most 50,
header text at most 150 and section text at most 3000 characters, section fields at most 10
(400 invalid_blocks); a body that is not JSON is 400 invalid_payload; an unknown hook path is
404 no_service; success is 200 with the body "ok"; more than one message per second is 429 with
Retry-After.

Teams: POST application/json, a `message` with one attachment of content type
application/vnd.microsoft.card.adaptive whose content is an AdaptiveCard (type, version, body);
more than 28 KB is 413; a malformed card is 400; more than 4 requests per second is 429 with
Retry-After; success is 200 with the body "1".
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLACK_HOOK = "/services/T000/B000/XXXXSECRET"
TEAMS_HOOK = "/webhookb2/abc@def/IncomingWebhook/123/456"


class _Server:
    path = ""

    def __init__(self) -> None:
        self.received: list[dict] = []  # accepted messages
        self.rejected: list[tuple[int, str]] = []
        self.down = False  # answer 503 (an outage)
        self.force: list[tuple[int, dict[str, str], str]] = []  # queued answers to give first
        self._times: list[float] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server hook name)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status, headers, body = outer.answer(self.path, self.headers, raw)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                data = body.encode()
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}{self.path}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _rate_limited(self, per_second: int) -> bool:
        now = time.monotonic()
        with self._lock:
            self._times = [t for t in self._times if now - t < 1.0]
            if len(self._times) >= per_second:
                return True
            self._times.append(now)
        return False

    def answer(self, path: str, headers, raw: bytes) -> tuple[int, dict[str, str], str]:
        if self.force:
            status, extra, body = self.force.pop(0)
            self.rejected.append((status, body))
            return status, extra, body
        if self.down:
            return 503, {}, "service unavailable"
        status, extra, body = self.check(path, headers, raw)
        if status >= 300:
            self.rejected.append((status, body))
        return status, extra, body

    def check(self, path, headers, raw) -> tuple[int, dict[str, str], str]:
        raise NotImplementedError


class SlackWebhookServer(_Server):
    path = SLACK_HOOK
    per_second = 1
    burst = 5  # short bursts are allowed before 429

    def check(self, path, headers, raw):
        if path != SLACK_HOOK:
            return 404, {}, "no_service"
        if not (headers.get("Content-Type") or "").startswith("application/json"):
            return 400, {}, "invalid_payload"
        try:
            msg = json.loads(raw)
        except ValueError:
            return 400, {}, "invalid_payload"
        if not isinstance(msg, dict):
            return 400, {}, "invalid_payload"
        if not msg.get("text") and not msg.get("blocks"):
            return 400, {}, "no_text"
        problem = _slack_blocks_problem(msg.get("blocks") or [])
        if problem:
            return 400, {}, f"invalid_blocks: {problem}"
        if self._rate_limited(self.burst):
            return 429, {"Retry-After": "1"}, "rate_limited"
        self.received.append(msg)
        return 200, {}, "ok"


def _slack_blocks_problem(blocks) -> str | None:
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "at most 50 blocks"
    for b in blocks:
        kind = b.get("type") if isinstance(b, dict) else None
        if kind not in ("header", "section", "divider", "context", "actions", "image"):
            return f"unknown block type {kind!r}"
        if kind == "header":
            text = b.get("text") or {}
            if text.get("type") != "plain_text" or not 0 < len(text.get("text", "")) <= 150:
                return "header text must be plain_text of 1-150 characters"
        if kind == "section":
            text, fields = b.get("text"), b.get("fields")
            if not text and not fields:
                return "a section needs text or fields"
            if text and (text.get("type") not in ("mrkdwn", "plain_text")
                         or len(text.get("text", "")) > 3000):  # fmt: skip
                return "section text must be at most 3000 characters"
            if fields and (len(fields) > 10 or any(len(f.get("text", "")) > 2000 for f in fields)):
                return "at most 10 fields of at most 2000 characters"
        if kind == "context" and len(b.get("elements") or []) > 10:
            return "at most 10 context elements"
        if kind == "actions":
            for e in b.get("elements") or []:
                if e.get("type") == "button" and len((e.get("text") or {}).get("text", "")) > 75:
                    return "button text at most 75 characters"
    return None


class TeamsWebhookServer(_Server):
    path = TEAMS_HOOK
    per_second = 4
    max_bytes = 28 * 1024

    def check(self, path, headers, raw):
        if path != TEAMS_HOOK:
            return 404, {}, "Webhook not found"
        if len(raw) > self.max_bytes:
            return 413, {}, "Request Entity too large"
        try:
            msg = json.loads(raw)
        except ValueError:
            return 400, {}, "Bad payload received by generic incoming webhook."
        problem = _teams_problem(msg)
        if problem:
            return 400, {}, f"Bad payload received by generic incoming webhook: {problem}"
        if self._rate_limited(self.per_second):
            return 429, {"Retry-After": "1"}, "Too many requests"
        self.received.append(msg)
        return 200, {}, "1"


def _teams_problem(msg) -> str | None:
    if not isinstance(msg, dict) or msg.get("type") != "message":
        return "type must be 'message'"
    atts = msg.get("attachments")
    if not isinstance(atts, list) or len(atts) != 1:
        return "exactly one attachment"
    att = atts[0]
    if att.get("contentType") != "application/vnd.microsoft.card.adaptive":
        return "contentType must be application/vnd.microsoft.card.adaptive"
    card = att.get("content") or {}
    if card.get("type") != "AdaptiveCard" or not card.get("version"):
        return "content must be an AdaptiveCard with a version"
    body = card.get("body")
    if not isinstance(body, list) or not body:
        return "the card needs a body"
    for el in body:
        if el.get("type") == "TextBlock" and not isinstance(el.get("text"), str):
            return "TextBlock needs text"
        if el.get("type") == "FactSet" and not all(
            isinstance(f.get("title"), str) and isinstance(f.get("value"), str)
            for f in el.get("facts", [])
        ):
            return "facts need title and value text"
    for action in card.get("actions") or []:
        if action.get("type") == "Action.OpenUrl" and not action.get("url"):
            return "Action.OpenUrl needs a url"
    return None
