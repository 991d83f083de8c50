"""What a person reads about an alert is plain language: sentences with values and directions,
the model's signals in words, labels from one glossary, unknown values said to be unknown."""

from __future__ import annotations

import json
import random
import re

import pytest

from notifications.content import ContentConfig, card
from notifications.digest import build_critical_alerts, build_digests
from notifications.outbox import deliver_due, enqueue
from notifications.reasons import describe, load_glossary, reason_sentences, reason_texts
from notifications.tasks import build_crm_tasks

from .conftest import DAY, NOW, TEMPLATES

GLOSSARY = load_glossary()
# What must never reach a person: rule syntax, column names, raw model contributions.
RULE_SYNTAX = re.compile(
    r"\b\w+_(?:28d|7d|90d|band|tier|percentile|probability)\b|\bbetween \d|!=|>=|<=|"
    r"Model driver|[+-]\d\.\d\d\b"
)


def _engine_alert(values_by_clause, drivers=(), alert_type="renewal_risk"):
    """An alert as the engine stores it: clause text, whether it held, the values it read."""
    return {
        "alert_type": alert_type,
        "explanation_json": json.dumps(
            {
                "rule_id": "r",
                "clauses": [
                    {"clause": text, "held": True, "values": values}
                    for text, values in values_by_clause
                ],
            }
        ),
        "drivers_json": json.dumps(list(drivers)),
    }


def test_each_kind_of_value_reads_as_a_sentence_with_its_direction():
    cases = {
        ("days_to_renewal", 15): "Renewal in 15 days",
        ("days_to_renewal", 1): "Renewal in 1 day",
        ("days_to_renewal", -4): "Renewal date passed 4 days ago",
        ("days_since_admin_activity", 30): "Admin last active 30 days ago",
        ("days_since_admin_activity", 90): "Admin last active 90 or more days ago",
        ("days_since_last_activity", 0): "Someone used the portal today",
        ("churn_band", "very_high"): "Predicted churn risk is very high",
        ("health_tier", "at_risk"): "Health is at risk",
        ("seat_utilisation", 0.25): "25% of seats in use",
        ("arr", 120000): "ARR $120,000",
        ("churn_percentile", 96): "Churn risk higher than 96% of accounts",
        ("is_data_complete", False): "Some of the last 7 days of data have not arrived yet",
    }
    for (column, value), expected in cases.items():
        assert describe(column, value, GLOSSARY).text == expected, column

    drop = describe("active_users_28d", 6, GLOSSARY, previous=10)
    assert drop.text == "Active users down 40% over 28 days, vs the previous 28 (6 vs 10)"
    assert (drop.arrow, drop.tone) == ("▼", "critical")
    rise = describe("logins_trend_28d", 0.22, GLOSSARY)
    assert rise.text == "Logins up 22% over 28 days, vs the previous 28"
    assert (rise.arrow, rise.tone) == ("▲", "positive")


def test_unknown_values_are_said_to_be_unknown_never_zero_and_come_last():
    alert = _engine_alert(
        [
            ("coalesce(churn_percentile, 100) >= 75", {"churn_percentile": None}),
            ("days_since_admin_activity >= 21", {"days_since_admin_activity": 30}),
            (
                "active_users_28d <= 0.6 * active_users_prev_28d",
                {"active_users_28d": None, "active_users_prev_28d": 10},
            ),
        ],
        alert_type="champion_quiet",
    )
    reasons = reason_sentences(alert, GLOSSARY)
    texts = [r.text for r in reasons]
    assert texts[0] == "Admin last active 30 days ago"
    assert texts[1:] == [
        "Churn risk rank: not known (no data for this day)",
        "Active users: not known (no data for this day)",
    ]
    assert [r.known for r in reasons] == [True, False, False]
    assert not any(re.search(r"\b0\b", t) for t in texts)


def test_model_drivers_become_ranked_reasons_in_words():
    alert = _engine_alert(
        [("days_to_renewal between 0 and 90", {"days_to_renewal": 15})],
        drivers=[
            {"feature": "days_to_renewal", "contribution": 2.86},
            {"feature": "arr", "contribution": 0.43},
            {"feature": "logins_trend_28d", "contribution": -0.31},
        ],
    )
    metrics = {"arr": 120000, "logins_trend_28d": -0.46}
    texts = reason_texts(alert, GLOSSARY, metrics)
    assert texts == [
        "Renewal in 15 days — raises the predicted churn risk (the model's strongest signal)",
        "ARR $120,000 — raises the predicted churn risk (the model's second signal)",
        "Logins down 46% over 28 days, vs the previous 28 — lowers the predicted churn risk "
        "(the model's third signal)",
    ]
    # Without the account's values the signal is still named, never given as a number.
    bare = reason_texts(alert, GLOSSARY)
    assert bare[1] == "ARR — raises the predicted churn risk (the model's second signal)"
    for text in texts + bare:
        assert not RULE_SYNTAX.search(text), text


def test_labels_come_from_the_one_glossary(tmp_path):
    custom = tmp_path / "glossary.yml"
    custom.write_text(
        (TEMPLATES.parents[1] / "glossary.yml")
        .read_text()
        .replace("says: Renewal in {value} days", "says: Contract renews in {value} days")
    )
    alert = _engine_alert([("days_to_renewal < 90", {"days_to_renewal": 15})])
    assert reason_texts(alert, load_glossary(custom)) == ["Contract renews in 15 days"]
    config = ContentConfig(glossary=load_glossary(custom))
    c = card({**alert, "alert_id": "x", "account_id": "a"}, {}, set(), {}, config=config)
    assert c["reasons"][0]["text"] == "Contract renews in 15 days"
    assert c["title"] == "Renewal at risk"


def test_no_message_a_person_reads_shows_rule_syntax_or_model_internals(
    con, content, smtp, capture
):
    built = build_digests(con, DAY, TEMPLATES, content, NOW)
    built += build_critical_alerts(con, TEMPLATES, content, NOW)
    enqueue(con, built, NOW)
    deliver_due(con, {"email": smtp}, NOW, rng=random.Random(1))
    assert capture.messages()
    for m in capture.messages():
        for part in ("plain", "html"):
            body = m.message.get_body(preferencelist=(part,)).get_content()
            # mailto: drafts are URL-encoded text; decode nothing, just read what is shown
            shown = re.sub(r'href="[^"]*"|mailto:\S+', "", body)
            hit = RULE_SYNTAX.search(shown)
            assert hit is None, (m.envelope_to, part, hit.group(0) if hit else "")
    ana = next(m for m in capture.messages() if m.envelope_to == ["ana@example.com"])
    text = ana.message.get_body(preferencelist=("plain",)).get_content()
    assert "Logins down 46% over 28 days, vs the previous 28" in text
    assert "Admin last active 31 days ago" in text


def test_crm_task_bodies_are_plain_and_link_to_the_inbox(con):
    tasks = build_crm_tasks(con, now=NOW, inbox_url="https://alerts.example.com")
    assert tasks
    acme = next(t for t in tasks if t.alert_id == "al_crit_acme")
    body = acme.payload["body"]
    assert "- Logins down 46% over 28 days, vs the previous 28" in body
    assert "https://alerts.example.com/alerts/al_crit_acme" in body
    assert acme.payload["subject"].startswith("Book a meeting: Acme Logistics")
    for t in tasks:
        assert not RULE_SYNTAX.search(t.payload["body"]), t.payload["body"]


def test_the_rule_expression_stays_for_the_data_team(con):
    alert = _engine_alert([("days_to_renewal between 0 and 90", {"days_to_renewal": 15})])
    alert.update(alert_id="x", account_id="a", explanation="days_to_renewal between 0 and 90 (15)")
    c = card(alert, {}, set(), {})
    assert c["rule_expression"] == "days_to_renewal between 0 and 90 (15)"
    assert "between" not in c["explanation"]


@pytest.mark.parametrize("bad", ["columns: [1, 2]", "columns:\n  arr: ARR\n", ": :"])
def test_a_broken_glossary_says_what_to_fix(tmp_path, bad):
    path = tmp_path / "glossary.yml"
    path.write_text(bad)
    with pytest.raises(ValueError, match="glossary.yml"):
        load_glossary(path)


def test_recommendations_never_quote_model_contributions():
    from alerts.rules import template_env

    env = template_env(TEMPLATES.parents[0] / "recommendations")
    drivers = [
        {"feature": "days_to_renewal", "contribution": 2.86, "label": "days to renewal (+2.86)"},
        {"feature": "arr", "contribution": 0.43, "label": "arr (+0.43)"},
    ]
    row = {
        "dormant_since_date": "2025-01-01",
        "accounts_affected": 3,
        "day_is_landed": False,
        "active_users_28d": 6,
        "active_users_prev_28d": 10,
        "logins_28d": 40,
        "logins_prev_28d": 90,
        "plan": "growth",
        "days_to_renewal": 15,
        "health_tier": "at_risk",
        "seat_utilisation": 0.97,
        "days_since_admin_activity": 30,
        "feature_breadth_28d": 2,
        "seats": 40,
    }
    context = {
        "account_name": "Acme",
        "arr": 120000,
        "probability": 0.8,
        "severity": "high",
        "title": "t",
        "action": "call",
        "drivers": drivers,
        "values": row,
        "row": row,
        "as_of_date": "2025-03-04",
        "account_id": "a_001",
    }
    for name in env.list_templates():
        text = env.get_template(name).render(**context)
        assert not RULE_SYNTAX.search(text), (name, text)
