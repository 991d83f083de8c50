"""The emails and the inbox in a real browser: Acknowledge from a captured email all the way to
the warehouse, sign-in by emailed link, one's own book only, and the phone layout."""

from __future__ import annotations

import datetime as dt
import importlib.util
import random
import re
import time

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from alerts.recipients import People
from inbox.app import InboxSettings, create_app
from inbox.snapshot import publish_app_snapshot
from notifications.capture import CaptureServer
from notifications.content import ContentConfig
from notifications.digest import build_digests
from notifications.links import ActionLinks
from notifications.mail import SmtpConfig, SmtpSender
from notifications.outbox import deliver_due, enqueue
from orchestration.resources import InboxResource, PathsResource
from tests.notifications.sample import ROUTING, load_sample, load_sample_health

from .conftest import REPO, LiveServer, screenshot_dir

pytestmark = pytest.mark.slow
DAY = dt.date(2025, 3, 4)
SECRET = "browser-test-secret-" + "y" * 24
BOOKS = {
    "ana@example.com": {"Acme Logistics", "Globex Health"},
}
ALL = {"Acme Logistics", "Globex Health", "Initech Finance", "Umbrella Retail", "Hooli Media"}


def _stage():
    path = REPO / "orchestration" / "defs" / "inbox.py"
    spec = importlib.util.spec_from_file_location("ea_inbox_defs_browser", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def world(tmp_path, port):
    """A warehouse, its inbox snapshot, a capture server, the inbox on a real port, and the
    digests sent with their signed links."""
    data = tmp_path / "data"
    data.mkdir()
    db = data / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    load_sample(con, DAY)
    load_sample_health(con, DAY)
    snapshot = data / "app_snapshot.duckdb"
    publish_app_snapshot(con, snapshot, People.from_routing(ROUTING))
    capture = CaptureServer(tmp_path / "mail").start()
    public = f"http://127.0.0.1:{port}"
    config = ContentConfig(routing=ROUTING, links=ActionLinks(public, SECRET))
    built = build_digests(con, DAY, REPO / "config" / "templates" / "email", config)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    enqueue(con, built, now)
    smtp = SmtpConfig(host="127.0.0.1", port=capture.port, timeout_seconds=5)
    deliver_due(con, {"email": SmtpSender(smtp)}, now, rng=random.Random(1))
    con.close()
    settings = InboxSettings(
        public_url=public,
        secret=SECRET,
        store_path=data / "inbox.sqlite",
        snapshot_path=snapshot,
        config_dir=REPO / "config",
        smtp=smtp,
        poll_seconds=1,
    )
    server = LiveServer(create_app(settings), port).start()
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "routing.yml").write_text("admins: [cs-director@example.com]\n")
    resources = {
        "duckdb": DuckDBResource(database=str(db)),
        "paths": PathsResource(
            data_dir=str(data), landing_dir=str(data / "landing"), config_dir=str(config_dir)
        ),
        "inbox": InboxResource(public_url=public, secret_key=SECRET),
    }
    yield {
        "db": db,
        "capture": capture,
        "url": public,
        "settings": settings,
        "resources": resources,
        "tmp": tmp_path,
    }
    server.stop()
    capture.stop()


def _shot(driver, name: str) -> None:
    driver.save_screenshot(str(screenshot_dir() / f"{name}.png"))


def _mail_to(capture, email: str):
    return [m for m in capture.messages() if m.envelope_to == [email]]


def test_acknowledge_from_the_email_reaches_the_warehouse(driver, world):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    digest = _mail_to(world["capture"], "ana@example.com")[0]
    html = digest.message.get_body(preferencelist=("html",)).get_content()
    email_file = world["tmp"] / "ana_digest.html"
    email_file.write_text(html, "utf-8")
    driver.get(email_file.as_uri())  # the email as the person's mail client shows it
    _shot(driver, "email_digest")
    first_ack = driver.find_elements(By.LINK_TEXT, "Acknowledge")[0]
    first_ack.click()
    WebDriverWait(driver, 15).until(lambda d: "Acknowledge this alert as" in d.page_source)
    assert "Acme Logistics" in driver.page_source
    _shot(driver, "email_acknowledge_confirm")
    clicked = time.monotonic()
    driver.find_element(By.ID, "confirm").click()
    WebDriverWait(driver, 15).until(
        lambda d: "Acknowledged" in d.find_element("tag name", "h1").text
    )
    _shot(driver, "email_acknowledge_done")

    # The pipeline's side: the inbox sensor sees the action and its small run applies it.
    stage = _stage()
    resources = world["resources"]
    with dg.build_sensor_context(resources=resources) as ctx:
        assert isinstance(stage.inbox_actions_sensor(ctx), dg.RunRequest)
    assert dg.materialize([stage.inbox_actions, stage.inbox_snapshot], resources=resources).success
    con = duckdb.connect(str(world["db"]), read_only=True)
    status = con.execute(
        "select status from alerts.alerts where alert_id = 'al_crit_acme'"
    ).fetchall()[0][0]
    actor, details = con.execute(
        "select actor, details_json from alerts.audit_log "
        "where alert_id = 'al_crit_acme' and event = 'acknowledged'"
    ).fetchall()[0]
    con.close()
    seconds = time.monotonic() - clicked
    print(
        f"\nclick on Acknowledge -> warehouse shows it (sensor + run in-process): {seconds:.2f} s"
    )
    assert status == "acknowledged" and actor == "ana@example.com"
    assert '"channel": "email"' in details
    # The same link again from the email: a clear page, nothing changes.
    driver.get(email_file.as_uri())
    driver.find_elements(By.LINK_TEXT, "Acknowledge")[0].click()
    WebDriverWait(driver, 15).until(lambda d: "already been used" in d.page_source)
    _shot(driver, "email_link_used_again")


def _sign_in(driver, world, email):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(world["url"] + "/login")
    driver.find_element(By.ID, "email").send_keys(email)
    driver.find_element(By.CSS_SELECTOR, "button.primary").click()
    WebDriverWait(driver, 15).until(lambda d: "Check your email" in d.page_source)
    mail = _mail_to(world["capture"], email)[-1]
    text = mail.message.get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"(http://\S+/login/\S+)", text).group(1)
    driver.get(link)
    driver.find_element(By.ID, "confirm").click()
    WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.ID, "col-list"))


def _box(driver, element_id):
    r = driver.find_element("id", element_id).rect
    return r["x"], r["y"], r["width"]


def test_sign_in_by_link_shows_my_book_in_three_columns_that_stack_on_a_phone(driver, world):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _sign_in(driver, world, "ana@example.com")
    names = {e.text for e in driver.find_elements(By.CSS_SELECTOR, ".account .name")}
    assert names == BOOKS["ana@example.com"]
    # Critical first: the first alert in the list is the critical one.
    first = driver.find_elements(By.CSS_SELECTOR, ".alert-item")[0]
    assert first.get_attribute("data-severity") == "critical"
    page = driver.page_source
    assert "Logins down 46% over 28 days" in page and "Recommended" in page
    tiles = {
        t.find_element(By.CLASS_NAME, "label").text: t.text
        for t in driver.find_elements(By.CSS_SELECTOR, ".tile")
    }
    assert "54" in tiles["Logins"] and "46% down from 100" in tiles["Logins"]
    assert not any(a in page for a in ALL - BOOKS["ana@example.com"])
    font = driver.execute_script("return getComputedStyle(document.body).fontFamily")
    assert font.startswith("Inter")
    # Wide screen: three columns side by side.
    (x1, y1, _), (x2, y2, _), (x3, y3, _) = (
        _box(driver, c) for c in ("col-list", "col-detail", "col-actions")
    )
    assert x1 < x2 < x3 and abs(y1 - y2) < 5 and abs(y2 - y3) < 5
    _shot(driver, "inbox_desktop")

    # Another person's alert id: 404, and nothing of it shown.
    driver.get(world["url"] + "/alerts/al_crit_hooli")
    assert "Not found" in driver.page_source
    assert "Hooli" not in driver.page_source

    # A new alert published while the page is open: the count appears without a reload.
    driver.get(world["url"] + "/")
    con = duckdb.connect(str(world["db"]))
    con.execute(
        "insert into alerts.alerts (alert_id, rule_id, alert_type, account_id, account_name, "
        "episode_start_date, first_raised_on, last_seen_on, status, severity, owner_email, "
        "explanation_json, updated_at) select 'al_new_globex', 'renewal_at_risk', "
        "'renewal_risk', 'a_002', 'Globex Health', ?, ?, ?, 'open', 'critical', "
        '\'ana@example.com\', \'{"clauses": [{"clause": "c", "values": '
        '{"days_to_renewal": 15}}]}\', now()',
        [DAY] * 3,
    )
    publish_app_snapshot(con, world["settings"].snapshot_path, People.from_routing(ROUTING))
    con.close()
    badge = driver.find_element(By.ID, "new-count")
    WebDriverWait(driver, 15).until(lambda d: badge.is_displayed())
    assert badge.text.startswith("1 new alert (1 critical)")
    _shot(driver, "inbox_new_alert_count")

    # A phone: one column, the list (critical on top) first, then the alert, then the actions.
    driver.set_window_size(390, 844)
    driver.get(world["url"] + "/alerts/al_crit_acme")
    (x1, y1, w1), (x2, y2, w2), (x3, y3, w3) = (
        _box(driver, c) for c in ("col-list", "col-detail", "col-actions")
    )
    assert abs(x1 - x2) < 2 and abs(x2 - x3) < 2 and y1 < y2 < y3
    width = driver.execute_script("return document.documentElement.clientWidth")
    assert w1 > 0.85 * width and w2 > 0.85 * width
    assert driver.execute_script(
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    ), "the phone layout scrolls sideways"
    _shot(driver, "inbox_phone")
    driver.execute_script("document.getElementById('col-detail').scrollIntoView()")
    _shot(driver, "inbox_phone_detail")
