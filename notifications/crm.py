"""CRM task connectors (record-only, HubSpot, Salesforce, signed webhook) for the outbox."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from notifications.outbox import DeliveryError, OutboxRow, PermanentDeliveryError, SendResult

CRM_MODES = ("record", "hubspot", "salesforce", "webhook")
# HubSpot's own association type id for task -> company.
HUBSPOT_TASK_TO_COMPANY = 192
HUBSPOT_PRIORITY = {"critical": "HIGH", "high": "HIGH", "medium": "MEDIUM", "low": "LOW"}
SALESFORCE_PRIORITY = {"critical": "High", "high": "High", "medium": "Normal", "low": "Low"}
SIGNATURE_HEADER = "X-EA-Signature"


@dataclass(frozen=True)
class CrmConfig:
    """Connector settings; `token` and `webhook_secret` are never logged or put in metadata."""

    mode: str = "record"
    base_url: str = ""
    token: str = ""
    webhook_secret: str = ""
    timeout_seconds: float = 10.0
    owner_ids: dict[str, str] = field(default_factory=dict)  # owner email -> CRM user id
    account_ids: dict[str, str] = field(default_factory=dict)  # account_id -> CRM record id
    alert_id_property: str = "ea_alert_id"  # HubSpot custom task property holding our id
    salesforce_api_version: str = "v60.0"
    task_url_template: str = ""  # e.g. "https://crm.example.com/tasks/{id}"

    def __post_init__(self):
        if self.mode not in CRM_MODES:
            raise ValueError(f"CRM_MODE {self.mode!r} is not one of {CRM_MODES}.")
        if self.mode != "record" and not self.base_url:
            raise ValueError(
                f"CRM_MODE={self.mode} needs a base URL (HUBSPOT_BASE_URL, SALESFORCE_BASE_URL "
                "or WEBHOOK_URL)."
            )

    def __repr__(self) -> str:
        return f"CrmConfig(mode={self.mode!r}, base_url={self.base_url!r}, token=***)"


@dataclass(frozen=True)
class TaskStatus:
    """What the CRM says about a task we created."""

    completed: bool
    notes: str = ""


def _redact(text: str, headers: dict[str, str]) -> str:
    """Hide credentials a server may echo back in an error body (e.g. the bearer token)."""
    for value in headers.values():
        parts = value.split()
        for secret in {value, parts[-1] if parts else value}:
            if len(secret) >= 8:
                text = text.replace(secret, "[redacted]")
    return text


def _http(method: str, url: str, body: Any, headers: dict[str, str], timeout: float) -> Any:
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        detail = _redact(exc.read()[:300].decode("utf-8", "replace"), headers)
        where = f"{method} {urllib.parse.urlsplit(url).path}"
        if exc.code == 429:
            retry_after = _retry_after(exc.headers.get("Retry-After"))
            raise DeliveryError(f"{where}: 429 rate limited", retry_after=retry_after) from None
        if exc.code >= 500 or exc.code == 408:
            raise DeliveryError(f"{where}: HTTP {exc.code} {detail}") from None
        raise PermanentDeliveryError(f"{where}: HTTP {exc.code} {detail}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"{method} {url}: {type(exc).__name__} {reason}") from None


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP-date; the backoff schedule is used instead


class RecordConnector:
    """Default mode: the task is kept in the outbox (and shown), nothing leaves the machine."""

    mode = "record"

    def __init__(self, config: CrmConfig):
        self.config = config

    def __call__(self, row: OutboxRow) -> SendResult:
        return SendResult(status="recorded")

    def fetch_status(self, row: OutboxRow, external_id: str) -> TaskStatus | None:
        return None


class _HttpConnector:
    mode = ""

    def __init__(self, config: CrmConfig):
        self.config = config

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.token}"}

    def _url(self, path: str) -> str:
        return self.config.base_url.rstrip("/") + path

    def _task_url(self, task_id: str) -> str | None:
        if self.config.task_url_template:
            return self.config.task_url_template.format(id=task_id)
        return self._default_task_url(task_id)

    def _default_task_url(self, task_id: str) -> str | None:
        return None

    def _owner(self, task: dict[str, Any]) -> str | None:
        """The CRM user id of the owner; None (CRM default owner) when config has no mapping."""
        owners = {k.lower(): v for k, v in self.config.owner_ids.items()}
        return owners.get((task.get("owner_email") or "").lower())

    def _body(self, task: dict[str, Any]) -> str:
        if self._owner(task) is None and task.get("owner_email"):
            # No CRM user id known: the task still says whose it is.
            return f"{task['body']}\nOwner: {task['owner_email']}"
        return task["body"]

    def _account(self, task: dict[str, Any]) -> str:
        return self.config.account_ids.get(task["account_id"], task["account_id"])


class HubSpotConnector(_HttpConnector):
    """CRM v3 objects API: search by our alert-id property first, create only when absent."""

    mode = "hubspot"

    def _find(self, alert_id: str) -> dict | None:
        found = _http(
            "POST",
            self._url("/crm/v3/objects/tasks/search"),
            {
                "filterGroups": [
                    {
                        "filters": [
                            {
                                "propertyName": self.config.alert_id_property,
                                "operator": "EQ",
                                "value": alert_id,
                            }
                        ]
                    }
                ],
                "properties": ["hs_task_status", "hs_task_body", self.config.alert_id_property],
                "limit": 1,
            },
            self._auth,
            self.config.timeout_seconds,
        )
        results = (found or {}).get("results") or []
        return results[0] if results else None

    def payload(self, task: dict[str, Any]) -> dict[str, Any]:
        properties = {
            "hs_timestamp": task["due_at"],
            "hs_task_subject": task["subject"],
            "hs_task_body": self._body(task),
            "hs_task_status": "NOT_STARTED",
            "hs_task_priority": HUBSPOT_PRIORITY.get(task.get("severity"), "MEDIUM"),
            "hs_task_type": "TODO",
            "hubspot_owner_id": self._owner(task),
            self.config.alert_id_property: task["alert_id"],
        }
        return {
            # HubSpot property values are strings on the wire.
            "properties": {k: str(v) for k, v in properties.items() if v not in (None, "")},
            "associations": [
                {
                    "to": {"id": self._account(task)},
                    "types": [
                        {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": HUBSPOT_TASK_TO_COMPANY,
                        }
                    ],
                }
            ],
        }

    def __call__(self, row: OutboxRow) -> SendResult:
        task = row.payload
        existing = self._find(task["alert_id"])
        if existing is None:
            existing = _http(
                "POST",
                self._url("/crm/v3/objects/tasks"),
                self.payload(task),
                self._auth,
                self.config.timeout_seconds,
            )
        task_id = str(existing["id"])
        return SendResult(external_id=task_id, external_url=self._task_url(task_id))

    def fetch_status(self, row: OutboxRow, external_id: str) -> TaskStatus | None:
        got = _http(
            "GET",
            self._url(
                f"/crm/v3/objects/tasks/{urllib.parse.quote(external_id)}"
                "?properties=hs_task_status,hs_task_body"
            ),
            None,
            self._auth,
            self.config.timeout_seconds,
        )
        props = (got or {}).get("properties", {})
        return TaskStatus(
            props.get("hs_task_status") == "COMPLETED",
            _notes(props.get("hs_task_body"), self._body(row.payload)),
        )


class SalesforceConnector(_HttpConnector):
    """REST sobjects API: upsert on the Alert_Id__c external id, so a retry updates, never adds."""

    mode = "salesforce"

    def _path(self, alert_id: str) -> str:
        return (
            f"/services/data/{self.config.salesforce_api_version}/sobjects/Task/Alert_Id__c/"
            f"{urllib.parse.quote(alert_id, safe='')}"
        )

    def payload(self, task: dict[str, Any]) -> dict[str, Any]:
        record = {
            "Subject": task["subject"][:255],
            "Description": self._body(task),
            "WhatId": self._account(task),
            "OwnerId": self._owner(task),
            "Priority": SALESFORCE_PRIORITY.get(task.get("severity"), "Normal"),
            "Status": "Not Started",
            "ActivityDate": task["due_at"][:10],
        }
        return {k: v for k, v in record.items() if v is not None}

    def __call__(self, row: OutboxRow) -> SendResult:
        task = row.payload
        got = _http(
            "PATCH",
            self._url(self._path(task["alert_id"])),
            self.payload(task),
            self._auth,
            self.config.timeout_seconds,
        )
        if not got or "id" not in got:  # older API versions answer 204 on update
            got = _http(
                "GET",
                self._url(self._path(task["alert_id"])),
                None,
                self._auth,
                self.config.timeout_seconds,
            )
            got = {"id": got["Id"]}
        return SendResult(external_id=got["id"], external_url=self._task_url(got["id"]))

    def _default_task_url(self, task_id: str) -> str | None:
        return self._url(f"/lightning/r/Task/{task_id}/view")

    def fetch_status(self, row: OutboxRow, external_id: str) -> TaskStatus | None:
        got = (
            _http(
                "GET",
                self._url(self._path(row.payload["alert_id"])),
                None,
                self._auth,
                self.config.timeout_seconds,
            )
            or {}
        )
        done = got.get("Status") == "Completed" or bool(got.get("IsClosed"))
        return TaskStatus(done, _notes(got.get("Description"), self._body(row.payload)))


def sign(secret: str, body: bytes) -> str:
    """The webhook signature header value: HMAC-SHA256 of the exact body bytes, hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookConnector(_HttpConnector):
    """JSON POST signed with HMAC-SHA256; the receiver dedupes on the Idempotency-Key header."""

    mode = "webhook"

    def payload(self, row: OutboxRow) -> dict[str, Any]:
        return {"event": "alert.task", "idempotency_key": row.idempotency_key, **row.payload}

    def __call__(self, row: OutboxRow) -> SendResult:
        body = json.dumps(self.payload(row), sort_keys=True).encode()
        headers = {
            SIGNATURE_HEADER: sign(self.config.webhook_secret, body),
            "Idempotency-Key": row.idempotency_key,
        }
        got = _http("POST", self.config.base_url, body, headers, self.config.timeout_seconds)
        task_id = str((got or {}).get("id") or row.idempotency_key)
        return SendResult(
            external_id=task_id,
            external_url=self._task_url(task_id) if self.config.task_url_template else None,
        )

    def fetch_status(self, row: OutboxRow, external_id: str) -> TaskStatus | None:
        return None  # a webhook is one-way


def _notes(current: str | None, original: str | None) -> str:
    """What the CSM added to the task text after we created it."""
    current = current or ""
    if original and current.startswith(original):
        return current[len(original) :].strip()
    return current.strip() if current != original else ""


def connector(config: CrmConfig):
    """The sender for the "crm_task" channel chosen by `config.mode`."""
    return {
        "record": RecordConnector,
        "hubspot": HubSpotConnector,
        "salesforce": SalesforceConnector,
        "webhook": WebhookConnector,
    }[config.mode](config)
