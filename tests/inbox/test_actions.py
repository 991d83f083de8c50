"""Signed one-click links and the inbox's own actions: a GET never acts, the POST acts once, and
forged, expired, replayed, forwarded and cross-site requests change nothing."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3

import duckdb
import pytest

from inbox import store
from inbox.apply import apply_pending
from notifications.content import ContentConfig
from notifications.digest import build_digests
from notifications.links import LinkError, sign_action, verify_action
from notifications.mail import SmtpConfig, SmtpSender
from notifications.outbox import deliver_due, enqueue
from tests.notifications.sample import ROUTING

from .conftest import DAY, PUBLIC, REPO, SECRET, csrf_of, last_link, publish, sign_in

TEMPLATES = REPO / "config" / "templates" / "email"


def _actions(settings) -> list[tuple]:
    con = sqlite3.connect(settings.store_path)
    try:
        return con.execute(
            "select alert_id, action, actor, channel, feedback from actions"
        ).fetchall()
    finally:
        con.close()


def _token(action="acknowledge", alert="al_crit_acme", to="ana@example.com", **kw) -> str:
    return sign_action(SECRET, alert, action, to, **kw)


def test_tokens_are_bound_to_alert_action_recipient_and_expiry():
    claim = verify_action(SECRET, _token())
    assert (claim.alert_id, claim.action, claim.recipient) == (
        "al_crit_acme",
        "acknowledge",
        "ana@example.com",
    )
    token = _token()
    body, sig = token.rsplit(".", 1)
    forged_body = _token(alert="al_crit_hooli").rsplit(".", 1)[0]
    for forged in (f"{forged_body}.{sig}", token[:-2] + ("AA" if token[-2:] != "AA" else "BB")):
        with pytest.raises(LinkError) as err:
            verify_action(SECRET, forged)
        assert err.value.reason == "forged"
    with pytest.raises(LinkError) as err:
        verify_action("another-secret", token)
    assert err.value.reason == "forged"
    old = _token(now=dt.datetime(2020, 1, 1), days=14)
    with pytest.raises(LinkError) as err:
        verify_action(SECRET, old)
    assert err.value.reason == "expired"


def test_a_get_only_asks_and_the_post_acts_once(client, settings):
    url = f"/a/{_token()}"
    page = client.get(url)
    assert page.status_code == 200 and "Acknowledge this alert as" in page.text
    assert "Acme Logistics" in page.text and "Logins down 46% over 28 days" in page.text
    assert _actions(settings) == []  # a mail scanner opening the link changes nothing
    assert client.get(url).status_code == 200 and _actions(settings) == []

    done = client.post(url, data={"csrf": csrf_of(page.text)})
    assert done.status_code == 200 and "Acknowledged" in done.text
    assert _actions(settings) == [("al_crit_acme", "acknowledge", "ana@example.com", "email", None)]
    # Replayed (the same link again, GET or POST): a clear page, nothing new.
    again = client.get(url)
    assert again.status_code == 409 and "already been used" in again.text
    replay = client.post(url, data={"csrf": csrf_of(page.text)})
    assert replay.status_code == 409 and len(_actions(settings)) == 1


def test_forged_and_expired_links_get_a_clear_page_and_change_nothing(client, settings):
    token = _token()
    forged = client.get(f"/a/{token[:-3]}abc")
    assert forged.status_code == 400 and "not valid" in forged.text
    expired_token = _token(now=dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=30))
    expired = client.get(f"/a/{expired_token}")
    assert expired.status_code == 410 and "expired" in expired.text
    csrf = csrf_of(client.get(f"/a/{token}").text)
    for bad in (f"/a/{token[:-3]}abc", f"/a/{expired_token}"):
        assert client.post(bad, data={"csrf": csrf}).status_code in (400, 410)
    assert _actions(settings) == []


def test_a_forwarded_link_does_not_act_for_someone_else(client, settings, capture):
    sign_in(client, capture, "ben@example.com")
    url = f"/a/{_token(to='ana@example.com')}"
    page = client.get(url)
    assert page.status_code == 403 and "sent to someone else" in page.text
    assert client.post(url, data={"csrf": csrf_of(page.text)}).status_code == 403
    assert _actions(settings) == []


def test_a_link_for_an_alert_outside_the_recipients_book_acts_on_nothing(client, settings):
    # Signed for ben, but Acme is Ana's account: a valid signature grants no access.
    url = f"/a/{_token(to='ben@example.com')}"
    page = client.get(url)
    assert page.status_code == 404 and "not in your inbox" in page.text
    assert "Acme" not in page.text
    assert _actions(settings) == []


def test_the_post_needs_the_forms_csrf_token(client, settings):
    url = f"/a/{_token()}"
    client.get(url)  # the browser has a session cookie, but a cross-site form lacks the token
    for data in ({}, {"csrf": "guessed"}):
        response = client.post(url, data=data)
        assert response.status_code == 403 and "did not come from this site" in response.text
    assert _actions(settings) == []


def test_resolve_asks_for_feedback_and_snooze_records_the_date(client, settings):
    url = f"/a/{_token('resolve', 'al_high_globex')}"
    page = client.get(url)
    assert "Saved the account" in page.text and "Not useful" in page.text
    assert client.post(url, data={"csrf": csrf_of(page.text)}).status_code == 400
    ok = client.post(url, data={"csrf": csrf_of(page.text), "feedback": "not_useful"})
    assert ok.status_code == 200 and "Resolved" in ok.text
    snooze = f"/a/{_token('snooze', 'al_med_globex')}"
    ok = client.post(snooze, data={"csrf": csrf_of(client.get(snooze).text)})
    assert ok.status_code == 200
    con = store.connect(settings.store_path)
    rows = {a.alert_id: a for a in store.pending_actions(con)}
    assert rows["al_high_globex"].feedback == "not_useful"
    assert rows["al_med_globex"].snooze_until == dt.date.today() + dt.timedelta(days=7)


def test_actions_are_recorded_while_a_run_holds_the_warehouse_then_applied(
    client, settings, warehouse
):
    writer = duckdb.connect(str(warehouse))  # a pipeline run holding the writer lock
    try:
        url = f"/a/{_token()}"
        done = client.post(url, data={"csrf": csrf_of(client.get(url).text)})
        assert done.status_code == 200  # acknowledged at once, the warehouse untouched
        report = apply_pending(writer, store.connect(settings.store_path))
    finally:
        writer.close()
    assert (report.applied, report.rejected) == (1, 0)
    con = duckdb.connect(str(warehouse), read_only=True)
    status, ack_at = con.execute(
        "select status, acknowledged_at from alerts.alerts where alert_id = 'al_crit_acme'"
    ).fetchall()[0]
    actor, details, event_at = con.execute(
        "select actor, details_json, event_at from alerts.audit_log "
        "where alert_id = 'al_crit_acme' and event = 'acknowledged'"
    ).fetchall()[0]
    con.close()
    assert status == "acknowledged" and actor == "ana@example.com"
    assert '"channel": "email"' in details
    action = store.pending_actions(store.connect(settings.store_path))
    assert action == []  # marked applied
    # Time to action counts from the click, not from when the warehouse got it.
    assert ack_at == event_at and (
        dt.datetime.now(dt.UTC).replace(tzinfo=None) - ack_at
    ) < dt.timedelta(minutes=1)


def test_applying_twice_changes_nothing_and_a_closed_alert_is_rejected(settings, warehouse):
    con = store.connect(settings.store_path)
    store.record_action(con, "al_crit_acme", "acknowledge", "ana@example.com", "inbox")
    store.record_action(con, "al_resolved_acme", "acknowledge", "ana@example.com", "inbox")
    wh = duckdb.connect(str(warehouse))
    report = apply_pending(wh, con)
    assert (report.applied, report.rejected) == (1, 1)
    events = wh.execute("select count(*) from alerts.audit_log").fetchall()[0][0]
    # The run crashed before marking: the same actions come round again and change nothing.
    con.execute("update actions set applied_at = null, outcome = null")
    again = apply_pending(wh, con)
    assert (again.applied, again.unchanged, again.rejected) == (0, 1, 1)
    assert wh.execute("select count(*) from alerts.audit_log").fetchall()[0][0] == events
    wh.close()


def test_the_digest_links_open_the_right_confirmation(client, settings, warehouse, capture):
    con = duckdb.connect(str(warehouse))
    config = ContentConfig(routing=ROUTING, links=_links())
    built = build_digests(con, DAY, TEMPLATES, config, recipients=["ana@example.com"])
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    enqueue(con, built, now)
    sender = SmtpSender(SmtpConfig(host="127.0.0.1", port=capture.port, timeout_seconds=5))
    deliver_due(con, {"email": sender}, now, rng=random.Random(1))
    con.close()
    html = capture.messages()[-1].message.get_body(preferencelist=("html",)).get_content()
    for label in ("Acknowledge", "Snooze 7 days", "Resolve", "Open in inbox"):
        assert f">{label}</a>" in html
    url = last_link(capture, "ana@example.com", "/a/")
    page = client.get(url)
    assert page.status_code == 200 and "as <strong>ana@example.com</strong>" in page.text


def _links():
    from notifications.links import ActionLinks

    return ActionLinks(PUBLIC, SECRET)


def test_quick_actions_in_the_inbox_show_at_once(client, settings, capture, warehouse):
    sign_in(client, capture, "ana@example.com")
    page = client.get("/alerts/al_crit_acme")
    assert page.status_code == 200 and 'id="act-acknowledge"' in page.text
    done = client.post(
        "/alerts/al_crit_acme/actions", data={"csrf": csrf_of(page.text), "action": "acknowledge"}
    )
    assert done.status_code == 303
    after = client.get(done.headers["location"])
    assert "✓ Acknowledged" in after.text and 'id="act-acknowledge"' not in after.text
    assert _actions(settings) == [("al_crit_acme", "acknowledge", "ana@example.com", "inbox", None)]
    # Someone else's alert: the same 404 as an alert that does not exist.
    for other in ("al_crit_hooli", "no_such_alert"):
        assert client.get(f"/alerts/{other}").status_code == 404
        assert (
            client.post(
                f"/alerts/{other}/actions",
                data={"csrf": csrf_of(page.text), "action": "acknowledge"},
            ).status_code
            == 404
        )
    assert len(_actions(settings)) == 1
    publish(warehouse, settings.snapshot_path)  # a later snapshot: still acknowledged
    assert "✓ Acknowledged" not in client.get("/alerts/al_crit_acme").text
    assert "acknowledged" in client.get("/alerts/al_crit_acme").text
