"""`ea doctor` against each failure it names, with real servers on 127.0.0.1: an SMTP relay
with a login, HubSpot / Salesforce / webhook servers that enforce their contracts, Slack and
Teams webhook servers, an MLflow registry on sqlite, and (slow) a real Postgres server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from notifications.capture import CaptureServer
from service.doctor import run_checks
from tests.notifications.chat_servers import (
    SLACK_HOOK,
    TEAMS_HOOK,
    SlackWebhookServer,
    TeamsWebhookServer,
)
from tests.notifications.crm_servers import HubSpotServer, SalesforceServer, WebhookServer
from tests.service.postgres import PASSWORD, free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def env(tmp_path) -> dict[str, str]:
    """A healthy embedded world: folders, the repository's config, an empty MLflow store."""
    data = tmp_path / "data"
    (data / "landing").mkdir(parents=True)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    return {
        "EA_DATA_DIR": str(data),
        "EA_LANDING_DIR": str(data / "landing"),
        "EA_CONFIG_DIR": str(REPO / "config"),
        "DUCKDB_DATABASE": str(data / "warehouse.duckdb"),
        "DAGSTER_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{data / 'mlflow.db'}",
        "PATH": os.environ.get("PATH", ""),
    }


def one(env, name: str):
    results = run_checks(env, only=(name,))
    assert results, name
    return results


def failed(results) -> list:
    return [c for c in results if c.status == "fail"]


# --- config ---------------------------------------------------------------------------------


def test_config_ok_and_each_configuration_failure(env, tmp_path):
    (ok,) = one(env, "config")
    assert ok.status == "ok" and "embedded profile" in ok.detail

    (bad,) = one({**env, "EA_PROFILE": "staging"}, "config")
    assert bad.status == "fail" and "'staging' is not a profile" in bad.detail
    assert bad.fix == "set EA_PROFILE to embedded or production"

    prod = failed(one({**env, "EA_PROFILE": "production"}, "config"))
    details = " ".join(c.detail for c in prod)
    assert "EA_DAGSTER_POSTGRES_URL is not set" in details
    assert "MLFLOW_TRACKING_URI" in details and "EA_SECRET_KEY is not set" in details
    assert all(c.fix for c in prod)

    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    (config / "rules.yml").write_text("rules: [{id: broken}]\n")
    (bad,) = one({**env, "EA_CONFIG_DIR": str(config)}, "config")
    assert bad.status == "fail" and "rules.yml" in bad.detail and "broken" in bad.detail
    assert "ea alerts validate" in bad.fix

    (home_pg,) = failed(one({**env, "DAGSTER_HOME": str(_postgres_home(tmp_path))}, "config"))
    assert "keeps the Dagster instance on postgres, but the profile is embedded" in home_pg.detail


def _postgres_home(tmp_path: Path) -> Path:
    home = tmp_path / "pg_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy" / "dagster.production.yaml").read_text())
    return home


def test_config_fails_when_routing_sends_to_a_channel_without_a_webhook(env, tmp_path):
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    routing = (REPO / "config" / "routing.yml").read_text()
    (config / "routing.yml").write_text(routing + "\nsecond_channel:\n  critical: [slack]\n")
    (bad,) = one({**env, "EA_CONFIG_DIR": str(config)}, "config")
    assert bad.status == "fail"
    assert "sends critical messages to slack, but SLACK_WEBHOOK_URL is empty" in bad.detail
    (ok,) = one({**env, "EA_CONFIG_DIR": str(config), "SLACK_WEBHOOK_URL": "http://x"}, "config")
    assert ok.status == "ok"


# --- folders --------------------------------------------------------------------------------


def test_warehouse_and_landing_folders(env, tmp_path):
    assert [c.status for c in one(env, "warehouse")] == ["ok"]
    assert [c.status for c in one(env, "landing")] == ["ok"]

    a_file = tmp_path / "not_a_folder"
    a_file.write_text("")
    (bad,) = one({**env, "DUCKDB_DATABASE": str(a_file / "warehouse.duckdb")}, "warehouse")
    assert bad.status == "fail" and "is a file" in bad.detail and "DUCKDB_DATABASE" in bad.fix
    (bad,) = one({**env, "DUCKDB_DATABASE": str(tmp_path / "nowhere" / "w.duckdb")}, "warehouse")
    assert bad.status == "fail" and "does not exist" in bad.detail and "mkdir -p" in bad.fix

    (bad,) = one({**env, "EA_LANDING_DIR": str(tmp_path / "no_landing")}, "landing")
    assert bad.status == "fail" and "does not exist" in bad.detail
    assert "EA_LANDING_DIR" in bad.fix


def test_a_folder_nobody_may_write_fails(env):
    # /sys/kernel refuses new files even to root (the tests may run as root).
    (bad,) = one({**env, "EA_LANDING_DIR": "/sys/kernel"}, "landing")
    assert bad.status == "fail" and "cannot write in /sys/kernel (Permission denied)" in bad.detail
    (bad,) = one({**env, "DUCKDB_DATABASE": "/sys/kernel/warehouse.duckdb"}, "warehouse")
    assert bad.status == "fail" and "cannot write in /sys/kernel" in bad.detail


# --- SMTP -----------------------------------------------------------------------------------


def test_smtp_answers_refuses_a_login_or_is_not_there(env, tmp_path):
    relay = CaptureServer(tmp_path / "mail", credentials=("alerts", "right")).start()
    try:
        base = {**env, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(relay.port),
                "SMTP_USER": "alerts", "SMTP_SECURITY": "plain"}  # fmt: skip
        (ok,) = one({**base, "SMTP_PASSWORD": "right"}, "smtp")
        assert ok.status == "ok" and "logged in as alerts" in ok.detail
        (bad,) = one({**base, "SMTP_PASSWORD": "wrong"}, "smtp")
        assert bad.status == "fail" and "refused the login" in bad.detail
        assert bad.fix == "correct SMTP_USER / SMTP_PASSWORD"
        assert relay.messages() == []  # the checks sent nothing
    finally:
        relay.stop()
    (bad,) = one({**env, "SMTP_PORT": str(free_port())}, "smtp")
    assert bad.status == "fail" and "nothing answers SMTP" in bad.detail
    assert "SMTP_HOST / SMTP_PORT" in bad.fix
    (bad,) = one({**env, "SMTP_SECURITY": "tls-please"}, "smtp")
    assert bad.status == "fail" and "SMTP_SECURITY" in bad.detail


def test_smtp_tls_the_relay_does_not_offer_fails(env, tmp_path):
    relay = CaptureServer(tmp_path / "mail").start()  # a plain relay: no STARTTLS, no TLS port
    try:
        base = {**env, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(relay.port)}
        (bad,) = one({**base, "SMTP_SECURITY": "starttls"}, "smtp")
        assert bad.status == "fail" and "STARTTLS" in bad.detail, bad.detail
        assert "SMTP_SECURITY" in bad.fix
        (bad,) = one({**base, "SMTP_SECURITY": "ssl"}, "smtp")
        assert bad.status == "fail" and "TLS failed" in bad.detail, bad.detail
        assert "SMTP_SECURITY" in bad.fix and "SMTP_CA_FILE" in bad.fix
        assert relay.messages() == []
    finally:
        relay.stop()


# --- CRM ------------------------------------------------------------------------------------


def test_crm_record_mode_is_off(env):
    (off,) = one(env, "crm")
    assert off.status == "off"


@pytest.mark.parametrize("mode", ["hubspot", "salesforce"])
def test_crm_token_accepted_or_rejected(env, mode):
    server = {"hubspot": HubSpotServer, "salesforce": SalesforceServer}[mode](token="good")
    server.start()
    prefix = mode.upper()
    try:
        base = {**env, "CRM_MODE": mode, f"{prefix}_BASE_URL": server.url}
        (ok,) = one({**base, f"{prefix}_TOKEN": "good"}, "crm")
        assert ok.status == "ok" and "token was accepted" in ok.detail
        (bad,) = one({**base, f"{prefix}_TOKEN": "expired"}, "crm")
        assert bad.status == "fail" and "rejected the token (401)" in bad.detail
        assert bad.fix == f"replace {prefix}_TOKEN with a valid one"
        assert "expired" not in bad.detail + bad.fix  # the secret is never printed
        (bad,) = one({**base, f"{prefix}_TOKEN": ""}, "crm")
        assert bad.status == "fail" and f"{prefix}_TOKEN is empty" in bad.detail
    finally:
        server.stop()
    (bad,) = one({**base, f"{prefix}_TOKEN": "good"}, "crm")
    assert bad.status == "fail" and "nothing answers" in bad.detail
    if mode == "hubspot":
        assert server.tasks == {}  # the check created nothing


def test_crm_webhook_signature_accepted_or_rejected(env):
    server = WebhookServer(secret="shared").start()
    try:
        base = {**env, "CRM_MODE": "webhook", "WEBHOOK_URL": server.url}
        (ok,) = one({**base, "WEBHOOK_SECRET": "shared"}, "crm")
        assert ok.status == "ok" and "signed ping was accepted" in ok.detail
        (bad,) = one({**base, "WEBHOOK_SECRET": "other"}, "crm")
        assert bad.status == "fail" and "rejected the signature" in bad.detail
        assert bad.fix == "replace WEBHOOK_SECRET with a valid one"
    finally:
        server.stop()


# --- Slack and Teams ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "server_class", "hook"),
    [("slack", SlackWebhookServer, SLACK_HOOK), ("teams", TeamsWebhookServer, TEAMS_HOOK)],
)
def test_chat_webhook_exists_or_was_revoked(env, channel, server_class, hook):
    (off,) = one(env, channel)
    assert off.status == "off"
    variable = f"{channel.upper()}_WEBHOOK_URL"
    with server_class() as server:
        good = server.url
        assert good.endswith(hook)
        (ok,) = one({**env, variable: good}, channel)
        assert ok.status == "ok" and "nothing posted" in ok.detail
        revoked = good.replace(hook, hook[:-3] + "old")
        (bad,) = one({**env, variable: revoked}, channel)
        assert bad.status == "fail" and "was rejected (404" in bad.detail
        assert variable in bad.fix and "XXXXSECRET" not in bad.detail + bad.fix
        assert server.received == []  # nothing reached the channel


# --- models ---------------------------------------------------------------------------------


def test_models_without_a_champion_or_without_the_server(env):
    # (With champions, through the MLflow server: tests/service/test_production.py.)
    results = one(env, "models")
    assert [c.status for c in results] == ["fail", "fail"]
    assert "churn_model has no champion" in results[0].detail
    assert "ea job" in results[0].fix

    (down,) = one({**env, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}, "models")
    assert down.status == "fail" and "does not answer" in down.detail
    assert "ea serve" in down.fix


def test_models_when_the_registry_cannot_be_read(env, tmp_path):
    damaged = tmp_path / "mlflow.db"
    damaged.write_bytes(b"this is not an MLflow store\n" * 200)
    (bad,) = one({**env, "MLFLOW_TRACKING_URI": f"sqlite:///{damaged}"}, "models")
    assert bad.status == "fail" and "cannot read the MLflow registry" in bad.detail, bad.detail
    assert "MLFLOW_TRACKING_URI" in bad.fix


# --- the command ----------------------------------------------------------------------------


def test_ea_doctor_exits_1_on_a_failure_and_prints_the_fix(env, tmp_path):
    env = {**env, "EA_LANDING_DIR": str(tmp_path / "missing"), "SMTP_PORT": str(free_port())}
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "doctor", "--only", "landing,smtp,crm"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "FAIL  landing" in done.stdout and "fix: create it (mkdir -p" in done.stdout
    assert "FAIL  smtp" in done.stdout and "off   crm" in done.stdout
    assert "2 problem(s)" in done.stdout


# --- Postgres (a real server) ---------------------------------------------------------------


@pytest.mark.slow
def test_postgres_answers_refuses_the_login_lacks_the_database_or_is_down(env, postgres):
    dagster_url = postgres.create_database("doctor_dagster")
    mlflow_url = postgres.create_database("doctor_mlflow")
    prod = {
        **env,
        "EA_PROFILE": "production",
        "EA_DAGSTER_POSTGRES_URL": dagster_url,
        "EA_MLFLOW_BACKEND_URI": mlflow_url,
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "EA_SECRET_KEY": "x" * 40,
    }
    assert [c.status for c in one(prod, "postgres")] == ["ok", "ok"]
    assert PASSWORD not in " ".join(c.detail for c in one(prod, "postgres"))

    wrong = {**prod, "EA_DAGSTER_POSTGRES_URL": postgres.url("doctor_dagster", password="no")}
    bad = failed(one(wrong, "postgres"))
    assert len(bad) == 1 and "refused the login of 'ea'" in bad[0].detail
    assert "EA_DAGSTER_POSTGRES_URL" in bad[0].fix

    missing = {**prod, "EA_MLFLOW_BACKEND_URI": postgres.url("no_such_db")}
    bad = failed(one(missing, "postgres"))
    assert len(bad) == 1 and "no database 'no_such_db'" in bad[0].detail
    assert bad[0].fix.startswith("create it: createdb")

    down = {**prod, "EA_DAGSTER_POSTGRES_URL": dagster_url.replace(str(postgres.port),
                                                                   str(free_port()))}  # fmt: skip
    bad = failed(one(down, "postgres"))
    assert len(bad) == 1 and "nothing answers" in bad[0].detail
    assert bad[0].fix == "start Postgres, or correct the host and port in EA_DAGSTER_POSTGRES_URL"

    (off,) = one(env, "postgres")
    assert off.status == "off"
