"""HTTP servers on 127.0.0.1 that enforce the HubSpot, Salesforce and webhook task contracts.

Each can be told to answer 429 (with Retry-After), 500, or to hang after doing the work (the
response is lost, as in a timeout), so retries and duplicate protection can be tested for real.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Response = tuple[int, dict[str, str], Any]


class ContractServer:
    """Base: a threaded HTTP server, a request log, injectable faults, Bearer auth."""

    def __init__(self, token: str = "test-token"):
        self.token = token
        self.requests: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self._faults: deque[tuple[str, float, float | None]] = deque()
        self._lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None

    # -- control -------------------------------------------------------------------------------
    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        """Answer the next `times` requests with `status` (429 adds Retry-After) without work."""
        with self._lock:
            self._faults.extend([("status", status, retry_after)] * times)

    def hang_next(self, seconds: float, times: int = 1) -> None:
        """Do the work for the next `times` requests, then stall `seconds` before answering."""
        with self._lock:
            self._faults.extend([("hang", seconds, None)] * times)

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ContractServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, headers, body = server._dispatch(
                    self.command,
                    self.path,
                    self.headers,
                    raw,  # case-insensitive lookups
                )
                if status < 0:  # hang: the client gave up, nothing to write
                    return
                data = b"" if body is None else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PATCH = do_DELETE = _serve  # noqa: N815

            def log_message(self, *args):  # keep test output quiet
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- plumbing ------------------------------------------------------------------------------
    def _dispatch(self, method: str, path: str, headers: Any, raw: bytes) -> Response:
        with self._lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "body": raw})
            fault = self._faults.popleft() if self._faults else None
        if fault and fault[0] == "status":
            extra = {"Retry-After": str(fault[2])} if fault[2] is not None else {}
            return int(fault[1]), extra, {"message": "injected fault"}
        denied = self.authorize(headers, raw)
        if denied:
            return 401, {}, {"message": denied}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self.reject("body is not valid JSON")
        with self._lock:
            response = self.handle(method, path.split("?")[0], body, headers)
        if fault and fault[0] == "hang":
            time.sleep(fault[1])
            return -1, {}, None
        return response

    def authorize(self, headers: dict[str, str], raw: bytes) -> str | None:
        auth = headers.get("Authorization") or ""
        if auth != f"Bearer {self.token}":
            return "missing or wrong 'Authorization: Bearer <token>' header"
        return None

    def reject(self, message: str, status: int = 400) -> Response:
        self.violations.append(message)
        return status, {}, {"status": "error", "message": message}

    def handle(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Response:
        raise NotImplementedError


class HubSpotServer(ContractServer):
    """CRM v3 tasks: create (string properties, hs_timestamp, task->company association 192),
    search by property, read by id.
    """

    KNOWN = {
        "hs_timestamp",
        "hs_task_subject",
        "hs_task_body",
        "hs_task_status",
        "hs_task_priority",
        "hs_task_type",
        "hubspot_owner_id",
        "hs_task_reminders",
    }
    STATUSES = {"NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"}
    PRIORITIES = {"LOW", "MEDIUM", "HIGH", "NONE"}

    def __init__(self, token: str = "test-token", custom_properties=("ea_alert_id",)):
        super().__init__(token)
        self.custom = set(custom_properties)
        self.tasks: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(90001)

    def complete(self, task_id: str, notes: str = "") -> None:
        """What a CSM does in HubSpot: mark the task done, maybe add notes to its body."""
        with self._lock:
            props = self.tasks[task_id]["properties"]
            props["hs_task_status"] = "COMPLETED"
            if notes:
                props["hs_task_body"] = props.get("hs_task_body", "") + "\n\n" + notes

    def handle(self, method, path, body, headers):
        if method == "POST" and path == "/crm/v3/objects/tasks":
            return self._create(body)
        if method == "POST" and path == "/crm/v3/objects/tasks/search":
            return self._search(body)
        m = re.fullmatch(r"/crm/v3/objects/tasks/(\w+)", path)
        if method == "GET" and m:
            task = self.tasks.get(m.group(1))
            return (200, {}, task) if task else (404, {}, {"message": "task not found"})
        return 404, {}, {"message": f"no route {method} {path}"}

    def _create(self, body):
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            return self.reject("body must be an object with a 'properties' object")
        props = body["properties"]
        for key, value in props.items():
            if key not in self.KNOWN | self.custom:
                return self.reject(f"Property {key!r} does not exist")
            if not isinstance(value, str):
                return self.reject(f"Property values must be strings: {key}={value!r}")
        if not props.get("hs_timestamp"):
            return self.reject("hs_timestamp is required")
        ts = props["hs_timestamp"]
        if not (ts.isdigit() or re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", ts)):
            return self.reject(f"hs_timestamp {ts!r} is neither epoch millis nor UTC ISO-8601")
        if "hubspot_owner_id" in props and not props["hubspot_owner_id"].isdigit():
            return self.reject(f"hubspot_owner_id {props['hubspot_owner_id']!r} is not an owner id")
        if props.get("hs_task_status", "NOT_STARTED") not in self.STATUSES:
            return self.reject(f"bad hs_task_status {props.get('hs_task_status')!r}")
        if props.get("hs_task_priority", "NONE") not in self.PRIORITIES:
            return self.reject(f"bad hs_task_priority {props.get('hs_task_priority')!r}")
        for assoc in body.get("associations", []):
            to, types = assoc.get("to"), assoc.get("types")
            if (
                not isinstance(to, dict)
                or "id" not in to
                or not isinstance(types, list)
                or not types
            ):
                return self.reject("association needs {'to': {'id'}, 'types': [...]}")
            for t in types:
                if t.get("associationCategory") != "HUBSPOT_DEFINED" or not isinstance(
                    t.get("associationTypeId"), int
                ):
                    return self.reject(f"bad association type {t!r}")
        task_id = str(next(self._ids))
        now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
        self.tasks[task_id] = {
            "id": task_id,
            "properties": dict(props),
            "associations": body.get("associations", []),
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
        }
        return 201, {}, self.tasks[task_id]

    def _search(self, body):
        try:
            filters = [f for g in body["filterGroups"] for f in g["filters"]]
        except (KeyError, TypeError):
            return self.reject("search body needs filterGroups[].filters[]")
        hits = []
        for task in self.tasks.values():
            props = task["properties"]
            if all(
                f.get("operator") == "EQ" and props.get(f["propertyName"]) == str(f["value"])
                for f in filters
            ):
                hits.append({"id": task["id"], "properties": props})
        return 200, {}, {"total": len(hits), "results": hits[: int(body.get("limit", 10))]}


class SalesforceServer(ContractServer):
    """REST sobjects Task: upsert by Alert_Id__c external id (PATCH), read by external id."""

    FIELDS = {
        "Subject",
        "Description",
        "WhatId",
        "WhoId",
        "OwnerId",
        "Priority",
        "Status",
        "ActivityDate",
        "Type",
    }
    STATUSES = {"Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"}
    PRIORITIES = {"High", "Normal", "Low"}

    def __init__(self, token: str = "test-token"):
        super().__init__(token)
        self.tasks: dict[str, dict[str, Any]] = {}  # by Alert_Id__c
        self._ids = itertools.count(1)

    def complete(self, alert_id: str, notes: str = "") -> None:
        with self._lock:
            rec = self.tasks[alert_id]
            rec["Status"], rec["IsClosed"] = "Completed", True
            if notes:
                rec["Description"] = (rec.get("Description") or "") + "\n\n" + notes

    def handle(self, method, path, body, headers):
        m = re.fullmatch(r"/services/data/v\d+\.\d/sobjects/Task/Alert_Id__c/([^/]+)", path)
        if not m:
            return 404, {}, [{"errorCode": "NOT_FOUND", "message": f"no route {path}"}]
        ext = m.group(1)
        if method == "GET":
            rec = self.tasks.get(ext)
            return (
                (200, {}, rec)
                if rec
                else (404, {}, [{"errorCode": "NOT_FOUND", "message": "not found"}])
            )
        if method != "PATCH":
            return 405, {}, [{"errorCode": "METHOD_NOT_ALLOWED", "message": method}]
        if not isinstance(body, dict):
            return self.reject("body must be a JSON object")
        for key, value in body.items():
            if key not in self.FIELDS:
                return self.reject(f"No such column '{key}' on sobject of type Task")
            if not isinstance(value, str):
                return self.reject(f"{key} must be a string")
        if "OwnerId" in body and not re.fullmatch(r"005\w{12}(\w{3})?", body["OwnerId"]):
            return self.reject(f"OwnerId {body['OwnerId']!r} is not a User id")
        for required in ("Subject", "WhatId", "Status", "Priority"):
            if not body.get(required):
                return self.reject(f"Required field missing: {required}")
        if body["Status"] not in self.STATUSES:
            return self.reject(f"bad picklist value for Status: {body['Status']}")
        if body["Priority"] not in self.PRIORITIES:
            return self.reject(f"bad picklist value for Priority: {body['Priority']}")
        if body.get("ActivityDate") and not re.fullmatch(r"\d{4}-\d\d-\d\d", body["ActivityDate"]):
            return self.reject("ActivityDate must be YYYY-MM-DD")
        if ext in self.tasks:
            self.tasks[ext].update(body)
            return (
                200,
                {},
                {"id": self.tasks[ext]["Id"], "success": True, "errors": [], "created": False},
            )
        rec_id = f"00T{next(self._ids):015d}"
        self.tasks[ext] = {"Id": rec_id, "Alert_Id__c": ext, "IsClosed": False, **body}
        return 201, {}, {"id": rec_id, "success": True, "errors": [], "created": True}


class WebhookServer(ContractServer):
    """A receiver that checks the HMAC-SHA256 signature and dedupes on Idempotency-Key."""

    def __init__(self, secret: str = "test-secret"):
        super().__init__(token="")
        self.secret = secret
        self.deliveries: dict[str, dict[str, Any]] = {}
        self.posts = 0

    def authorize(self, headers, raw):
        sent = headers.get("X-EA-Signature") or ""
        want = "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(sent, want):
            return "bad or missing X-EA-Signature"
        return None

    def handle(self, method, path, body, headers):
        if method != "POST":
            return 405, {}, {"message": "POST only"}
        key = headers.get("Idempotency-Key")
        if not key:
            return self.reject("Idempotency-Key header is required")
        self.posts += 1
        duplicate = key in self.deliveries
        self.deliveries.setdefault(key, body)
        return (
            200,
            {},
            {"id": hashlib.sha256(key.encode()).hexdigest()[:12], "duplicate": duplicate},
        )
