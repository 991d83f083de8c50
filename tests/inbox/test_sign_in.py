"""Sign-in by emailed link (no passwords), rate limits, and who sees what in the inbox."""

from __future__ import annotations

import re

from inbox import store

from .conftest import csrf_of, last_link, sign_in

ACCOUNTS = {
    "Acme Logistics",
    "Globex Health",
    "Initech Finance",
    "Umbrella Retail",
    "Hooli Media",
}


def _ask(client, email, next_path="/"):
    page = client.get("/login")
    return client.post(
        "/login", data={"email": email, "csrf": csrf_of(page.text), "next": next_path}
    )


def test_the_inbox_needs_a_signed_in_person(client):
    response = client.get("/alerts/al_crit_acme")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/alerts/al_crit_acme"


def test_a_sign_in_link_works_once_and_only_by_post(client, capture):
    assert _ask(client, "ana@example.com").status_code == 200
    link = last_link(capture, "ana@example.com", "/login/")
    confirm = client.get(link)
    assert "Sign in as ana@example.com?" in confirm.text
    assert client.get("/").status_code == 303  # the GET (a mail scanner) signed nobody in
    assert client.post(link, data={"csrf": csrf_of(confirm.text)}).status_code == 303
    assert client.get("/").status_code == 200
    again = client.get(link)
    assert again.status_code == 410 and "already been used" in again.text
    fresh = csrf_of(client.get("/").text)  # the session's new form token
    assert client.post(link, data={"csrf": fresh}).status_code == 410


def test_unknown_addresses_get_the_same_answer_and_no_email(client, capture):
    known = _ask(client, "ana@example.com")
    unknown = _ask(client, "mallory@evil.example")
    assert known.status_code == unknown.status_code == 200
    strip = re.compile(r"[\w.+-]+@[\w.-]+|name=\"csrf\" value=\"[^\"]+\"")
    assert strip.sub("", known.text) == strip.sub("", unknown.text)
    assert [m.envelope_to for m in capture.messages()] == [["ana@example.com"]]


def test_sign_in_links_are_rate_limited_per_address_and_per_client(client, capture, settings):
    for _ in range(settings.sign_in_per_email):
        assert _ask(client, "ana@example.com").status_code == 200
    limited = _ask(client, "ana@example.com")
    assert limited.status_code == 429 and "Too many sign-in links" in limited.text
    assert limited.headers["Retry-After"] == str(settings.sign_in_window_minutes * 60)
    assert len(capture.messages()) == settings.sign_in_per_email
    # Many addresses from one client: the client limit stops it too.
    codes = [
        _ask(client, f"guess{i}@example.com").status_code
        for i in range(settings.sign_in_per_client)
    ]
    assert codes.count(429) >= 1 and codes[-1] == 429


def test_expired_and_unknown_sign_in_links_explain_themselves(client, settings):
    con = store.connect(settings.store_path)
    import datetime as dt

    token = store.create_sign_in_link(con, "ana@example.com", 15, at=dt.datetime(2020, 1, 1))
    assert "expired" in client.get(f"/login/{token}").text
    assert client.get("/login/nonsense").status_code == 400


def test_each_person_sees_only_their_book_in_the_inbox(settings, capture):
    from starlette.testclient import TestClient

    from inbox.app import create_app

    expected = {
        "ana@example.com": {"Acme Logistics", "Globex Health"},
        "ben@example.com": {"Initech Finance"},
        "north.lead@example.com": {"Acme Logistics", "Globex Health", "Initech Finance"},
        "cs-director@example.com": ACCOUNTS,
    }
    app = create_app(settings)
    for person, accounts in expected.items():
        with TestClient(app, base_url="http://testserver", follow_redirects=False) as c:
            sign_in(c, capture, person)
            shown = set()
            for tab in ("active", "snoozed", "closed"):
                page = c.get(f"/?show={tab}").text
                shown |= {a for a in ACCOUNTS if f'<span class="name">{a}</span>' in page}
            assert shown == accounts, person


def test_the_new_alert_count_updates_without_a_reload(client, capture, settings, warehouse):
    import datetime as dt

    import duckdb

    from .conftest import publish

    sign_in(client, capture, "ana@example.com")
    page = client.get("/")
    since = re.search(r'data-since="([^"]+)"', page.text).group(1)
    assert client.get(f"/api/new?since={since}").json()["new"] == 0
    # The pipeline raises a new critical alert on Ana's account and publishes a snapshot.
    con = duckdb.connect(str(warehouse))
    con.execute(
        "insert into alerts.alerts (alert_id, rule_id, alert_type, account_id, account_name, "
        "episode_start_date, first_raised_on, last_seen_on, status, severity, owner_email, "
        "updated_at) select 'al_new_acme', 'renewal_at_risk', 'renewal_risk', 'a_001', "
        "'Acme Logistics', ?, ?, ?, 'open', 'critical', 'ana@example.com', now()",
        [dt.date(2025, 3, 4)] * 3,
    )
    con.close()
    publish(warehouse, settings.snapshot_path)
    assert client.get(f"/api/new?since={since}").json() == {
        "new": 1,
        "critical": 1,
        "published_at": client.get(f"/api/new?since={since}").json()["published_at"],
    }
    other = client.__class__(client.app, base_url="http://testserver")
    assert other.get(f"/api/new?since={since}").status_code == 401


def test_metrics_compare_with_the_previous_period_and_unknown_is_never_zero(client, capture):
    sign_in(client, capture, "ben@example.com")
    page = client.get("/alerts/al_high_initech").text
    tiles = dict(
        re.findall(
            r'<div class="label">([^<]+)</div>\s*<div class="value">([^<]+)</div>\s*'
            r'<div class="change[^"]*">([^<]*)</div>',
            page,
        )
        and [
            (m[0], m[2].strip())
            for m in re.findall(
                r'<div class="label">([^<]+)</div>\s*<div class="value">([^<]+)</div>\s*'
                r'<div class="change[^"]*">([^<]*)</div>',
                page,
            )
        ]
    )
    assert tiles["Logins"] == "▲ 5% up from 38"
    assert tiles["Documents viewed"] == "no earlier figure"  # not "0", not "-100%"
    assert "Renewal in 45 days" in page and "12% of seats in use" in page
