"""Email deliveries through a real SMTP server: scoping, parts, invites, retries, no duplicates."""

from __future__ import annotations

import datetime as dt
import random

import duckdb

from alerts import escalate_overdue
from notifications import ics
from notifications.capture import CaptureServer, free_port
from notifications.content import ContentConfig
from notifications.digest import build_critical_alerts, build_digests, build_escalations
from notifications.links import ActionLinks
from notifications.mail import SmtpConfig, SmtpSender
from notifications.outbox import RetryPolicy, deliver_due, enqueue, outbox_counts, utcnow
from tests.notifications.sample import CHAMPION_EMAIL, OPTED_OUT_EMAIL

from .conftest import DAY, NOW, TEMPLATES

ALL_ACCOUNTS = {
    "Acme Logistics",
    "Globex Health",
    "Initech Finance",
    "Umbrella Retail",
    "Hooli Media",
}


def _send_digests(con, content, smtp, now=NOW):
    built = build_digests(con, DAY, TEMPLATES, content, now)
    enqueue(con, built, now)
    return deliver_due(con, {"email": smtp}, now, rng=random.Random(1))


def _html(msg) -> str:
    return msg.get_body(preferencelist=("html",)).get_content()


def _by_recipient(capture):
    return {c.envelope_to[0]: c for c in capture.messages()}


def test_each_person_gets_only_their_own_book(con, content, smtp, capture):
    report = _send_digests(con, content, smtp)
    mails = _by_recipient(capture)
    assert report.sent == len(mails) == 7
    for c in capture.messages():
        assert len(c.envelope_to) == 1  # nobody is copied on someone else's digest
    expected = {
        "ana@example.com": {"Acme Logistics", "Globex Health"},
        "ben@example.com": {"Initech Finance"},
        "cara@example.com": {"Umbrella Retail", "Hooli Media"},
        "north.lead@example.com": {"Acme Logistics", "Globex Health", "Initech Finance"},
        "south.lead@example.com": {"Umbrella Retail", "Hooli Media"},
        "cs-director@example.com": ALL_ACCOUNTS,
        "data-team@example.com": ALL_ACCOUNTS,
    }
    for recipient, accounts in expected.items():
        html = _html(mails[recipient].message)
        shown = {a for a in ALL_ACCOUNTS if a in html}
        assert shown == accounts, recipient
    # Warehouse-wide data alerts and delivery health go to admins only.
    assert "All accounts (data)" in _html(mails["data-team@example.com"].message)
    assert "Delivery health" in _html(mails["cs-director@example.com"].message)
    assert "Delivery health" not in _html(mails["ana@example.com"].message)


def test_digest_content_order_privacy_and_parts(con, content, smtp, capture):
    _send_digests(con, content, smtp)
    mails = _by_recipient(capture)
    msg = mails["ana@example.com"].message
    assert msg.get_content_type() == "multipart/mixed"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = _html(msg)
    # One card per account, worst account first; inside a card its alerts worst first (Globex's
    # medium adoption gap sits under its high engagement drop, not in a table of its own).
    assert html.index("Acme Logistics") < html.index("Globex Health")
    assert html.index("Engagement drop") < html.index("Adoption gap")
    assert html.count("Globex Health</td>") == 1 and "Also open" not in html
    assert "NEEDS ATTENTION NOW" in text and "ALSO OPEN" not in text
    # Accounts without news are one compact row each.
    ben = _html(mails["ben@example.com"].message)
    assert "Also open" in ben and ben.count("Initech Finance</td>") == 1
    assert "border-left" in html or "#e62b34" in html
    assert "▼" in html and "▲" in html
    for banned in ("display:flex", "display: flex", "position:absolute", "position: absolute"):
        assert banned not in html
    assert f"mailto:{CHAMPION_EMAIL}" in html and "mailto:north.lead@example.com" in html
    for c in capture.messages():  # the opted-out user is never named, in any message
        assert OPTED_OUT_EMAIL not in c.path.read_text(errors="replace")
    # Snoozed, resolved and over-budget alerts are not listed individually.
    cara = _html(mails["cara@example.com"].message)
    assert "Share the feature guide" not in cara and "1 lower-priority alert" in cara
    assert "Check renewal" not in cara
    assert "Old drop" not in html


def test_invite_attachment_is_rfc5545(con, content, smtp, capture):
    _send_digests(con, content, smtp)
    msg = _by_recipient(capture)["ana@example.com"].message
    invites = [p for p in msg.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert len(invites) == 1
    assert invites[0].get_param("method") == "REQUEST"
    raw = invites[0].get_payload(decode=True).decode("utf-8")
    assert raw.endswith("\r\n") and "\n" not in raw.replace("\r\n", "")
    assert all(len(line.encode()) <= 75 for line in raw.split("\r\n"))
    props = {name: (params, value) for name, params, value in ics.parse(raw)}
    assert props["METHOD"][1] == "REQUEST"
    assert props["UID"][1] == "al_crit_acme@engagement-alerts"
    for key in ("DTSTAMP", "DTSTART", "DTEND"):
        dt.datetime.strptime(props[key][1], "%Y%m%dT%H%M%SZ")
    assert props["DTSTART"][1] < props["DTEND"][1]
    description = ics.unescape_text(props["DESCRIPTION"][1])
    assert "Acme Logistics" in description and "al_crit_acme" in description
    attendees = [v for n, _, v in ics.parse(raw) if n == "ATTENDEE"]
    assert f"mailto:{CHAMPION_EMAIL}" in attendees


def test_ics_folding_and_escaping_round_trip():
    text = "Ünïcode, commas; semicolons \\ and\nnewlines " * 8
    cal = ics.meeting_request(
        uid="x@y",
        organizer_email="a@b.c",
        attendees=["d@e.f"],
        summary="S",
        description=text,
        start=dt.datetime(2025, 1, 2, 3),
        stamp=dt.datetime(2025, 1, 1),
    )
    assert all(len(line.encode()) <= 75 for line in cal.split("\r\n"))
    desc = next(v for n, _, v in ics.parse(cal) if n == "DESCRIPTION")
    assert ics.unescape_text(desc) == text


def test_rerun_sends_nothing_twice(con, content, smtp, capture):
    _send_digests(con, content, smtp)
    first = len(capture.messages())
    report = _send_digests(con, content, smtp, NOW + dt.timedelta(hours=1))
    assert report.attempted == 0
    assert len(capture.messages()) == first
    assert outbox_counts(con)["sent"] == first


def test_critical_alerts_go_out_immediately(con, content, smtp, capture):
    built = build_critical_alerts(con, TEMPLATES, content, NOW)
    enqueue(con, built, NOW)
    deliver_due(con, {"email": smtp}, NOW)
    mails = capture.messages()
    assert sorted(m.message["Subject"] for m in mails) == [
        "Critical: Acme Logistics - churn risk",
        "Critical: Hooli Media - churn risk",
    ]
    acme = next(m for m in mails if "Acme" in m.message["Subject"])
    assert acme.message["To"] == "ana@example.com"
    assert acme.message["Cc"] == "north.lead@example.com"
    assert sorted(acme.envelope_to) == ["ana@example.com", "north.lead@example.com"]
    # Already sent: a later tick finds nothing new to send.
    assert build_critical_alerts(con, TEMPLATES, content, NOW) == []


def test_smtp_down_waits_in_outbox_then_goes_out_exactly_once(con, content, tmp_path):
    port = free_port()
    sender = SmtpSender(SmtpConfig(port=port, timeout_seconds=2))
    policy = RetryPolicy(max_attempts=5, base_seconds=60)
    built = build_critical_alerts(con, TEMPLATES, content, NOW)
    enqueue(con, built, NOW)
    report = deliver_due(con, {"email": sender}, NOW, policy)
    assert report.failed == 2 and report.sent == 0
    assert outbox_counts(con)["failed"] == 2
    # Not due yet: the backoff holds the next attempt back.
    assert deliver_due(con, {"email": sender}, NOW + dt.timedelta(seconds=5), policy).attempted == 0
    with CaptureServer(tmp_path / "mail2", port=port) as server:
        later = NOW + dt.timedelta(minutes=5)
        assert deliver_due(con, {"email": sender}, later, policy).sent == 2
        assert (
            deliver_due(con, {"email": sender}, later + dt.timedelta(hours=1), policy).attempted
            == 0
        )
        assert len(server.messages()) == 2
    log = con.execute(
        "select outcome, count(*) from ops.delivery_log group by all order by 1"
    ).fetchall()
    assert log == [("failed", 2), ("sent", 2)]


def test_crash_after_send_is_deduplicated_by_message_id(con, content, smtp, capture):
    from notifications.outbox import DeliveryError

    def crashing(row):
        smtp(row)  # the mail goes out ...
        raise DeliveryError("process died before marking sent")  # ... but is not recorded

    enqueue(con, build_critical_alerts(con, TEMPLATES, content, NOW), NOW)
    deliver_due(con, {"email": crashing}, NOW, RetryPolicy(base_seconds=1, jitter=0))
    assert deliver_due(con, {"email": smtp}, NOW + dt.timedelta(minutes=1)).sent == 2
    assert len(capture.messages()) == 2
    assert capture.handler.duplicates == 2


def test_dead_after_max_attempts_is_visible(con, content):
    sender = SmtpSender(SmtpConfig(port=free_port(), timeout_seconds=1))
    policy = RetryPolicy(max_attempts=2, base_seconds=1, jitter=0)
    enqueue(con, build_critical_alerts(con, TEMPLATES, content, NOW), NOW)
    deliver_due(con, {"email": sender}, NOW, policy)
    report = deliver_due(con, {"email": sender}, NOW + dt.timedelta(minutes=1), policy)
    assert report.dead == 2
    assert outbox_counts(con)["dead"] == 2
    # Dead rows are never retried again.
    assert deliver_due(con, {"email": sender}, NOW + dt.timedelta(days=1), policy).attempted == 0


def test_sla_escalations_reach_the_manager_once(con, content, smtp, capture):
    later = NOW + dt.timedelta(days=2)
    escalate_overdue(con, later)
    built = build_escalations(con, TEMPLATES, content, later)
    enqueue(con, built, later)
    deliver_due(con, {"email": smtp}, later)
    mails = capture.messages()
    assert mails and all(m.message["Subject"].startswith("Escalation:") for m in mails)
    to_north = {
        m.message["Subject"].split(" - ")[0]
        for m in mails
        if m.envelope_to[0] == "north.lead@example.com"
    }
    assert to_north == {
        "Escalation: Acme Logistics",
        "Escalation: Globex Health",
        "Escalation: Initech Finance",
    }
    for m in mails:  # each escalation goes to the manager of that account's team only
        team_south = any(a in m.message["Subject"] for a in ("Umbrella", "Hooli"))
        assert m.envelope_to[0] == (
            "south.lead@example.com" if team_south else "north.lead@example.com"
        )
    assert build_escalations(con, TEMPLATES, content, later) == []


def test_headline_shows_change_since_previous_digest(con, content, smtp, capture):
    _send_digests(con, content, smtp)
    con.execute(
        "update alerts.alerts set status = 'resolved', resolution_reason = 'done' "
        "where alert_id = 'al_med_globex'"
    )
    next_day = DAY + dt.timedelta(days=1)
    built = build_digests(con, next_day, TEMPLATES, content, NOW + dt.timedelta(days=1))
    ana = next(d for d in built if d.recipient == "ana@example.com")
    assert "Open alerts: 2 (▼ 1)" in ana.payload["text"]
    assert "Critical & high: 2 (no change)" in ana.payload["text"]
    assert ana.idempotency_key == f"digest:ana@example.com:{next_day.isoformat()}"


def test_a_broken_message_is_dead_lettered_and_the_rest_still_go(con, content, smtp, capture):
    built = build_critical_alerts(con, TEMPLATES, content, NOW)
    enqueue(con, built, NOW)
    con.execute("update ops.outbox set payload_json = '{}' where alert_id = 'al_crit_acme'")
    report = deliver_due(con, {"email": smtp}, NOW)
    assert report.sent == 1 and report.dead == 1
    assert "KeyError" in report.errors[0]
    assert [m.message["Subject"] for m in capture.messages()] == [
        "Critical: Hooli Media - churn risk"
    ]


def test_sla_is_shown_in_the_recipients_time_zone(con):
    routing = {"admins": [], "timezones": {"ana@example.com": "America/New_York"}}
    built = build_digests(con, DAY, TEMPLATES, ContentConfig(routing=routing), NOW)
    ana = next(d for d in built if d.recipient == "ana@example.com").payload["text"]
    cara = next(d for d in built if d.recipient == "cara@example.com").payload["text"]
    assert "act by 2025-03-05 12:00 EST" in ana  # 17:00 UTC
    assert "act by 2025-03-05 17:00 UTC" in cara


def test_send_budget_defers_the_rest_to_the_next_pass(con, content, smtp, capture):
    enqueue(con, build_critical_alerts(con, TEMPLATES, content, NOW), NOW)
    report = deliver_due(con, {"email": smtp}, NOW, budget_seconds=0.0)
    assert report.sent == 1 and report.deferred == 1
    assert deliver_due(con, {"email": smtp}, NOW).sent == 1
    assert len(capture.messages()) == 2


def test_dead_deliveries_can_be_requeued_once_the_relay_is_back(
    con, content, db_path, tmp_path, ea_env
):
    from notifications.__main__ import main as outbox_cli
    from warehouse.ops_state import due_work, ops_state_path

    port = free_port()
    sender = SmtpSender(SmtpConfig(port=port, timeout_seconds=1))
    enqueue(con, build_critical_alerts(con, TEMPLATES, content, NOW), NOW)
    deliver_due(con, {"email": sender}, NOW, RetryPolicy(max_attempts=1))
    assert outbox_counts(con)["dead"] == 2
    con.close()
    assert outbox_cli(["requeue-dead", "--db", str(db_path)]) == 0
    # The command publishes the work list, so the retry sensor sees them without a run.
    published = duckdb.connect(str(ops_state_path(ea_env["EA_DATA_DIR"])), read_only=True)
    assert len(due_work(published, utcnow())["delivery"]) == 2
    published.close()
    con2 = duckdb.connect(str(db_path))
    with CaptureServer(tmp_path / "back", port=port) as server:
        assert deliver_due(con2, {"email": sender}, utcnow()).sent == 2
        assert len(server.messages()) == 2
    con2.close()


def test_a_big_book_stays_under_the_gmail_clipping_size(con, content):
    # 300 accounts with long explanations: the admin sees them all, in one email Gmail shows whole.
    con.execute(
        """
        insert into marts.dim_accounts (account_id, account_name, arr, csm_email, manager_email)
        select 'b_' || i, 'Bulk Account ' || i, 50000, 'bulk' || (i % 10) || '@example.com',
               'north.lead@example.com'
        from range(300) t(i)
        """
    )
    long_text = "Logins fell sharply and the admin has been quiet for weeks. " * 6
    con.execute(
        """
        insert into alerts.alerts (alert_id, rule_id, alert_type, account_id, account_name,
            episode_start_date, first_raised_on, last_seen_on, status, severity, priority,
            probability, arr, owner_email, escalation_email, sla_due_at, explanation,
            explanation_json, drivers_json, recommended_action, recommendation_text,
            in_digest_summary, updated_at)
        select 'al_b_' || i, 'r', 'churn_risk', 'b_' || i, 'Bulk Account ' || i, $d, $d, $d,
            'open', case when i % 3 = 0 then 'high' else 'medium' end, i, 0.5, 50000,
            'bulk' || (i % 10) || '@example.com', 'north.lead@example.com', $now, $t,
            '{"clauses": [{"clause": "c", "values": {"logins_trend_28d": -0.5}}]}',
            '[{"feature": "logins_28d", "contribution": 0.4}]', 'meeting', $t, false, $now
        from range(300) t(i)
        """,
        {"d": DAY, "now": NOW, "t": long_text},
    )
    # As sent in production: four signed action links per alert in the cards.
    linked = ContentConfig(
        routing=content.routing, links=ActionLinks("https://alerts.example.com", "k" * 43)
    )
    built = build_digests(con, DAY, TEMPLATES, linked, NOW)
    assert "https://alerts.example.com/a/" in built[0].payload["html"]
    sizes = {d.recipient: len(d.payload["html"].encode()) for d in built}
    assert max(sizes.values()) < 100_000, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
    admin = next(d for d in built if d.recipient == "cs-director@example.com").payload["html"]
    assert "more." in admin or "more in the" in admin  # the rest is counted, not dropped silently


def test_nothing_holds_the_warehouse_while_a_message_is_sent(db_path, content, smtp, capture):
    """Given a connector (as Dagster steps give their resource's get_connection), the file is
    closed during each send: another process can write the warehouse meanwhile."""
    import contextlib
    import subprocess
    import sys

    from notifications.outbox import send_emails_now

    con = duckdb.connect(str(db_path))
    built = build_critical_alerts(con, TEMPLATES, content, NOW)
    con.close()
    writes = []
    code = (
        "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
        "c.execute('create table if not exists ops.touched (touched_at timestamp)'); "
        "c.execute('insert into ops.touched values (now())')"
    )

    def sender(row):
        # A run step, the inbox or a person writing while this message is on its way.
        done = subprocess.run([sys.executable, "-c", code, str(db_path)], capture_output=True)
        writes.append(done.stderr.decode()[-300:] if done.returncode else 0)
        return smtp(row)

    def connect():
        return contextlib.closing(duckdb.connect(str(db_path)))

    new, report = send_emails_now(connect, built, sender, NOW)
    assert new == 2 and report.sent == 2 and writes == [0, 0]
    assert len(capture.messages()) == 2
