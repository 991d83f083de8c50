"""Signed one-click action links in alert emails, and reading them back.

A link carries a token bound to one alert, one action, one recipient and an expiry, signed with
the team's secret (itsdangerous, HMAC-SHA256). The alert inbox (inbox/) verifies it: a GET only
shows a confirmation page (mail scanners open links before people do), the POST acts, once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeSerializer

# What a link may ask for. `resolve` lets the person pick saved / useful / not useful.
ACTIONS = ("acknowledge", "snooze", "resolve")
ACTION_LABELS = {"acknowledge": "Acknowledge", "snooze": "Snooze 7 days", "resolve": "Resolve"}
SNOOZE_DAYS = 7
DEFAULT_LINK_DAYS = 14
_SALT = "ea-action-link-v1"


class LinkError(ValueError):
    """A token that must not act: `reason` is forged | expired | malformed (shown to the person)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ActionClaim:
    """What a verified token says: who may do what to which alert, until when, and its id."""

    alert_id: str
    action: str
    recipient: str
    expires_at: dt.datetime
    token_id: str


@dataclass(frozen=True)
class ActionLinks:
    """How emails link back: the inbox's public URL, the signing secret, link lifetime."""

    public_url: str
    secret: str
    days: int = DEFAULT_LINK_DAYS

    @property
    def enabled(self) -> bool:
        return bool(self.public_url and self.secret)

    def url(self, path: str) -> str:
        return self.public_url.rstrip("/") + "/" + path.lstrip("/")

    def action_url(
        self, alert_id: str, action: str, recipient: str, now: dt.datetime | None = None
    ) -> str:
        token = sign_action(self.secret, alert_id, action, recipient, self.days, now)
        return self.url(f"a/{token}")

    def inbox_url(self, alert_id: str | None = None) -> str:
        return self.url(f"alerts/{urllib.parse.quote(alert_id, safe='')}" if alert_id else "")


def _serializer(secret: str) -> URLSafeSerializer:
    if not secret:
        raise ValueError("no signing secret: set EA_SECRET_KEY (see README, configuration)")
    return URLSafeSerializer(secret, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256})


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def sign_action(
    secret: str,
    alert_id: str,
    action: str,
    recipient: str,
    days: int = DEFAULT_LINK_DAYS,
    now: dt.datetime | None = None,
) -> str:
    """A URL-safe token for `action` on `alert_id` by `recipient`, valid for `days`."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: one of {ACTIONS}")
    expires = (now or _utcnow()) + dt.timedelta(days=days)
    payload = {
        "a": alert_id,
        "x": action,
        "r": recipient.lower(),
        "e": int(expires.replace(tzinfo=dt.UTC).timestamp()),
    }
    return _serializer(secret).dumps(payload)


def token_id(token: str) -> str:
    """A stable id for a token (what the used-token list stores; never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def verify_action(secret: str, token: str, now: dt.datetime | None = None) -> ActionClaim:
    """The claim of a genuine, unexpired token; LinkError (forged / expired / malformed) else."""
    try:
        payload = _serializer(secret).loads(token)
    except BadSignature as exc:
        raise LinkError(
            "forged", "This link was not issued by Engagement Alerts or was altered."
        ) from exc
    if not isinstance(payload, dict) or payload.get("x") not in ACTIONS:
        raise LinkError("malformed", "This link is incomplete.")
    try:
        expires = dt.datetime.fromtimestamp(int(payload["e"]), dt.UTC).replace(tzinfo=None)
        claim = ActionClaim(
            alert_id=str(payload["a"]),
            action=str(payload["x"]),
            recipient=str(payload["r"]).lower(),
            expires_at=expires,
            token_id=token_id(token),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LinkError("malformed", "This link is incomplete.") from exc
    if (now or _utcnow()) >= claim.expires_at:
        raise LinkError("expired", f"This link expired on {claim.expires_at:%Y-%m-%d %H:%M} UTC.")
    return claim


def load_or_create_secret(explicit: str, data_dir: str | Path) -> str:
    """The signing secret: `explicit` (EA_SECRET_KEY) when set, else one generated once and kept
    in `<data_dir>/.secret_key` (mode 0600) so the pipeline and the inbox agree on one machine.
    """
    if explicit:
        return explicit
    path = Path(data_dir) / ".secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value
