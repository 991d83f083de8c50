"""A sample warehouse, its published inbox snapshot, the inbox app and a real SMTP capture."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import pytest

from alerts.recipients import People
from inbox.app import InboxSettings, create_app
from inbox.snapshot import publish_app_snapshot
from notifications.capture import CaptureServer
from notifications.links import ActionLinks
from notifications.mail import SmtpConfig
from tests.notifications.sample import ROUTING, load_sample, load_sample_health

REPO = Path(__file__).resolve().parents[2]
DAY = dt.date(2025, 3, 4)
SECRET = "test-secret-" + "x" * 32
PUBLIC = "http://testserver"


@pytest.fixture()
def warehouse(tmp_path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    load_sample(con, DAY)
    load_sample_health(con, DAY)
    con.close()
    return path


def publish(warehouse: Path, snapshot: Path) -> dict:
    con = duckdb.connect(str(warehouse))
    try:
        return publish_app_snapshot(con, snapshot, People.from_routing(ROUTING))
    finally:
        con.close()


@pytest.fixture()
def capture(tmp_path):
    server = CaptureServer(tmp_path / "mail").start()
    yield server
    server.stop()


@pytest.fixture()
def settings(tmp_path, warehouse, capture) -> InboxSettings:
    snapshot = tmp_path / "app_snapshot.duckdb"
    publish(warehouse, snapshot)
    return InboxSettings(
        public_url=PUBLIC,
        secret=SECRET,
        store_path=tmp_path / "inbox.sqlite",
        snapshot_path=snapshot,
        config_dir=REPO / "config",
        smtp=SmtpConfig(host="127.0.0.1", port=capture.port, timeout_seconds=5),
    )


@pytest.fixture()
def links() -> ActionLinks:
    return ActionLinks(PUBLIC, SECRET)


@pytest.fixture()
def client(settings):
    from starlette.testclient import TestClient

    with TestClient(create_app(settings), base_url=PUBLIC, follow_redirects=False) as c:
        yield c


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(client, capture, email: str) -> None:
    """Sign in the way a person does: ask for a link, open the emailed link, confirm."""
    page = client.get("/login")
    client.post("/login", data={"email": email, "csrf": csrf_of(page.text), "next": "/"})
    link = last_link(capture, email, "/login/")
    confirm = client.get(link)
    assert confirm.status_code == 200, confirm.text
    done = client.post(link, data={"csrf": csrf_of(confirm.text)})
    assert done.status_code == 303


def last_link(capture, email: str, marker: str) -> str:
    mails = [m for m in capture.messages() if email in m.envelope_to]
    assert mails, f"no email to {email}"
    text = mails[-1].message.get_body(preferencelist=("plain",)).get_content()
    found = re.findall(r"https?://\S+", text)
    path = next(u for u in reversed(found) if marker in u)
    return path.replace(PUBLIC, "")
