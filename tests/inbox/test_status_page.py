"""The data team's status page in the inbox: admins only, the same view as `ea status`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb
import pytest

from inbox.app import create_app
from service.profile import Settings
from service.status import collect
from warehouse.analytics import publish_analyst_database

from .conftest import PUBLIC, sign_in

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def status_client(settings, warehouse, tmp_path):
    from starlette.testclient import TestClient

    data = tmp_path / "status_data"
    (data / "landing").mkdir(parents=True)
    con = duckdb.connect(str(warehouse))
    publish_analyst_database(con, data / "analyst.duckdb", "test")
    con.close()
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    env = {
        "EA_DATA_DIR": str(data),
        "DAGSTER_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{data / 'mlflow.db'}",
        "EA_DAGSTER_URL": "https://dagster.example.com",
    }
    calls = []

    def status():
        calls.append(1)
        return collect(Settings.from_env(env))

    app = create_app(dataclasses.replace(settings, status=status))
    with TestClient(app, base_url=PUBLIC, follow_redirects=False) as client:
        yield client, calls


def test_signed_out_people_are_sent_to_sign_in(status_client):
    client, calls = status_client
    got = client.get("/status")
    assert got.status_code == 303 and got.headers["location"] == "/login?next=/status"
    assert calls == []


def test_a_csm_may_not_see_it(status_client, capture):
    client, calls = status_client
    sign_in(client, capture, "ana@example.com")
    inbox = client.get("/")
    assert inbox.status_code == 200 and 'href="/status"' not in inbox.text
    got = client.get("/status")
    assert got.status_code == 403 and "admins listed in routing.yml" in got.text
    assert calls == []  # nothing was collected for someone who may not see it


def test_an_admin_sees_every_section_with_links_into_dagster(status_client, capture):
    client, calls = status_client
    sign_in(client, capture, "cs-director@example.com")
    assert 'href="/status"' in client.get("/").text
    page = client.get("/status")
    assert page.status_code == 200, page.text
    html = page.text
    for section in ("landing", "runs", "alerts", "outbox", "models", "disk", "services"):
        assert f'id="{section}"' in html, section
    assert "Needs attention" in html and "No landing folder has arrived yet." in html
    assert "churn_model has no champion" in html
    assert 'href="https://dagster.example.com/runs"' in html
    assert "raised on the latest data day (2025-03-04)" in html
    assert page.headers["Cache-Control"] == "no-store"
    client.get("/status")
    assert calls == [1]  # collected once, then served from the short cache
