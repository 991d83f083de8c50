"""Secrets come from the environment only and never reach logs, Dagster's event log or the file."""

from __future__ import annotations

import importlib.util
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from notifications.capture import CaptureServer
from orchestration.resources import PathsResource
from tests.notifications.sample import load_sample

from .conftest import DAY, REPO, all_text

SMTP_PASSWORD = "SMTP-pw-7f3a9c-planted"
CRM_TOKEN = "CRM-token-51be02-planted"
WEBHOOK_SECRET = "WEBHOOK-secret-c0ffee-planted"
SECRETS = (SMTP_PASSWORD, CRM_TOKEN, WEBHOOK_SECRET)


def _deliveries_module():
    path = REPO / "orchestration" / "defs" / "deliveries.py"
    spec = importlib.util.spec_from_file_location("ea_deliveries_defs_secrets_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Echo(BaseHTTPRequestHandler):
    """A careless CRM: refuses every request and echoes the credentials it got in the body."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = f"denied for {self.headers.get('Authorization')} {dict(self.headers)}".encode()
        self.send_response(401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PATCH = do_POST  # noqa: N815

    def log_message(self, *args):
        pass


@pytest.fixture()
def echo_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _grep_tree(root: Path) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path}: {s}" for s in SECRETS if s.encode() in data]
    return hits


# The hostile CRM echoes the request headers in its error body; `notifications.crm._http` keeps the
# first 300 bytes of an error body with header values redacted: the bearer token must not appear.
@pytest.mark.parametrize("mode", ["hubspot", "webhook"])
def test_planted_secrets_never_leak(mode, ea_env, echo_server, tmp_path, monkeypatch, capfd):
    db = ea_env["DUCKDB_DATABASE"]
    con = duckdb.connect(str(db))
    load_sample(con, DAY)
    con.close()
    capture = CaptureServer(tmp_path / "mail").start()
    try:
        monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("SMTP_PORT", str(capture.port))
        monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)
        monkeypatch.setenv("CRM_MODE", mode)
        monkeypatch.setenv("HUBSPOT_BASE_URL", echo_server)
        monkeypatch.setenv("HUBSPOT_TOKEN", CRM_TOKEN)
        monkeypatch.setenv("WEBHOOK_URL", echo_server)
        monkeypatch.setenv("WEBHOOK_SECRET", WEBHOOK_SECRET)
        deliveries = _deliveries_module()
        resources = {
            **deliveries.deliveries_resources(),
            "duckdb": DuckDBResource(database=str(db)),
            "paths": PathsResource(
                data_dir=str(ea_env["EA_DATA_DIR"]),
                landing_dir=str(ea_env["EA_LANDING_DIR"]),
                config_dir=str(ea_env["EA_CONFIG_DIR"]),
            ),
        }
        instance = dg.DagsterInstance.get()  # persistent, under the test's DAGSTER_HOME
        run_config = {"ops": {"ops__digests": {"config": {"as_of_date": DAY.isoformat()}}}}
        result = dg.materialize(
            [deliveries.crm_tasks, deliveries.digests, deliveries.outbox],
            resources=resources,
            run_config=run_config,
            instance=instance,
            raise_on_error=False,
        )
        # The refused CRM calls really happened (so the error path was exercised)...
        dead = (
            duckdb.connect(str(db), read_only=True)
            .execute(
                "select count(*), any_value(last_error) from ops.outbox where channel = 'crm_task' "
                "and status in ('dead', 'failed')"
            )
            .fetchone()
        )
        assert dead[0] >= 1 and "401" in dead[1]
        assert len(capture.messages()) >= 1  # and mail went out with the password configured
        events = instance.all_logs(result.run_id)
        instance.dispose()
    finally:
        capture.stop()
    out, err = capfd.readouterr()
    leaks = [s for s in SECRETS if s in out + err]
    leaks += [s for s in SECRETS if s in str([e.dagster_event for e in events])]
    leaks += [s for s in SECRETS if s in str([e.user_message for e in events])]
    leaks += [s for s in SECRETS if s in all_text(db)]
    leaks += [s for s in SECRETS if s.encode() in db.read_bytes()]
    leaks += _grep_tree(ea_env["DAGSTER_HOME"])  # event log, run storage, compute logs
    leaks += _grep_tree(tmp_path / "mail")
    assert not leaks, f"secret(s) leaked: {leaks}"
