"""The weekly KPI email: team scope, headline vs last week, an inline chart, sent once."""

from __future__ import annotations

import datetime as dt
import random
import shutil

import duckdb
import pytest

from notifications.capture import CaptureServer
from notifications.content import ContentConfig
from notifications.kpi_email import CHART_CID, build_kpi_emails
from notifications.mail import SmtpConfig, SmtpSender
from notifications.outbox import deliver_due, enqueue

from .conftest import REPO

WEEK = dt.date(2025, 3, 3)
NOW = dt.datetime(2025, 3, 10, 7, 0)


def test_kpi_email_reaches_managers_and_admins_once_with_an_inline_chart(outcome_marts, tmp_path):
    db = tmp_path / "w.duckdb"
    shutil.copy(outcome_marts, db)
    con = duckdb.connect(str(db))
    config = ContentConfig(routing={"admins": ["boss@example.com"]})
    built = build_kpi_emails(con, WEEK, REPO / "config" / "templates" / "email", config, NOW)
    assert sorted(d.recipient for d in built) == ["boss@example.com", "mgr@example.com"]
    capture = CaptureServer(tmp_path / "mail").start()
    try:
        sender = SmtpSender(SmtpConfig(host="127.0.0.1", port=capture.port, timeout_seconds=5))
        assert enqueue(con, built, NOW) == 2
        deliver_due(con, {"email": sender}, NOW, rng=random.Random(1))
        again = build_kpi_emails(con, WEEK, REPO / "config" / "templates" / "email", config, NOW)
        assert enqueue(con, again, NOW) == 0  # the week's email is never sent twice
        mails = capture.messages()
    finally:
        capture.stop()
    assert len(mails) == 2
    msg = next(m.message for m in mails if m.message["To"] == "mgr@example.com")
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert f"cid:{CHART_CID}" in html
    images = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 1 and images[0]["Content-ID"] == f"<{CHART_CID}>"
    assert images[0].get_content()[:8] == b"\x89PNG\r\n\x1a\n"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    # Week of 3 Mar: al_res (acted on in 10 h, SLA met) and al_exp (never acted on, SLA missed).
    assert "Alerts raised: 2 (no change)" in text and "SLA attainment: 50%" in text
    assert "Median hours to act: 10.0 h" in text
    assert "Rules to look at" in text
    con.close()


def test_missing_kpi_templates_say_what_to_copy(outcome_marts, tmp_path):
    old = tmp_path / "email"
    shutil.copytree(REPO / "config" / "templates" / "email", old)
    (old / "kpi.html.j2").unlink()
    con = duckdb.connect(str(outcome_marts), read_only=True)
    with pytest.raises(FileNotFoundError, match="kpi.html.j2 not found .* copy them"):
        build_kpi_emails(con, WEEK, old, ContentConfig(), NOW)
    con.close()


def test_the_chart_draws_a_week_with_unknown_counts_as_a_gap():
    from notifications.kpi_email import chart_png

    weeks = [
        {"week_start": WEEK - dt.timedelta(days=7), "alerts_raised": None, "risk_precision": None},
        {"week_start": WEEK, "alerts_raised": 3, "risk_precision": 0.5},
    ]
    assert chart_png(weeks)[:8] == b"\x89PNG\r\n\x1a\n"
