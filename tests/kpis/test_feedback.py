"""Feedback given when resolving becomes labels on the ml_features weekly grid."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

import alerts
from ml.feedback import feedback_labels

from .conftest import add_alert


def test_resolve_feedback_becomes_a_label_on_the_monday_grid(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    assert feedback_labels(con).empty  # no alerts schema yet: no labels, no error
    alerts.ensure_schema(con)
    for alert_id, account in (("al_1", "A1"), ("al_2", "A2"), ("al_3", "A3")):
        add_alert(con, alert_id, "churn_risk_high", "churn_risk", account, "2025-03-06")
    at = dt.datetime(2025, 3, 9, 12)
    alerts.transition(con, "al_1", "resolved", "ana@example.com", "renewed", at, feedback="saved")
    alerts.transition(
        con, "al_2", "resolved", "ana@example.com", "noise", at, feedback="not_useful"
    )
    with pytest.raises(alerts.TransitionError, match="give one of"):
        alerts.transition(con, "al_3", "resolved", "ana@example.com", "x", at, feedback="great")
    labels = feedback_labels(con)
    labels["as_of_date"] = pd.to_datetime(labels["as_of_date"]).dt.date
    assert labels.to_dict("records") == [
        {"account_id": "A1", "as_of_date": dt.date(2025, 3, 3), "rule_id": "churn_risk_high",
         "feedback": "saved", "label_needs_attention": 1},
        {"account_id": "A2", "as_of_date": dt.date(2025, 3, 3), "rule_id": "churn_risk_high",
         "feedback": "not_useful", "label_needs_attention": 0},
    ]  # fmt: skip
    details = con.execute(
        "select details_json from alerts.audit_log where alert_id = 'al_1' and event = 'resolved'"
    ).fetchone()[0]
    assert '"feedback": "saved"' in details
