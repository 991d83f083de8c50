"""Outcome attribution, responsiveness and KPI definitions on a small hand-made alert history."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from alerts.backtest import live_precision


@pytest.fixture(scope="module")
def con(outcome_marts):
    connection = duckdb.connect(str(outcome_marts), read_only=True)
    yield connection
    connection.close()


def _row(con, sql: str, params=None) -> dict:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    assert len(rows) == 1, rows
    return dict(zip(names, rows[0], strict=True))


def test_alert_followed_by_churn_is_a_true_positive_with_its_lead_time(con):
    tp = _row(con, "select * from kpis.alert_outcomes where alert_id = 'al_tp'")
    assert tp["outcome"] == "churned"
    assert tp["is_true_positive"] and tp["is_outcome_known"]
    assert tp["lead_days"] == 40  # raised 2025-03-01, churned 2025-04-10
    assert tp["arr_lost"] == 50_000


def test_churned_account_counts_for_recall_only_with_an_alert_30_days_ahead(con):
    rows = dict(
        con.execute(
            "select account_id, had_risk_alert_with_lead from kpis.kpi_churn_coverage"
        ).fetchall()
    )
    assert rows == {"A1": True, "A5": False}


def test_resolved_alert_time_to_action_and_resolution(con):
    res = _row(con, "select * from kpis.alert_outcomes where alert_id = 'al_res'")
    # Raised on 2025-03-03 = stamped at midnight after it; acked 10:00, resolved next day 12:00.
    assert res["hours_to_first_action"] == pytest.approx(10.0)
    assert res["hours_to_resolution"] == pytest.approx(36.0)
    assert res["sla_status"] == "met"
    assert res["feedback"] == "useful"
    # Nothing happened to A2 within the 90 days and the horizon has passed: a false alarm.
    assert res["outcome"] == "nothing" and not res["is_true_positive"]


def test_sla_attainment_per_severity(con):
    crit = _row(con, "select * from kpis.alert_outcomes where alert_id = 'al_crit'")
    assert crit["sla_status"] == "missed"  # 24 h SLA, first acknowledged after 30 h
    assert crit["hours_to_first_action"] == pytest.approx(30.0)
    untouched = _row(con, "select * from kpis.alert_outcomes where alert_id = 'al_crit_missed'")
    assert untouched["sla_status"] == "missed"  # due long before the as-of date, never touched
    by_severity = dict(
        con.execute(
            "select dimension_value, sum(sla_met) / sum(sla_decided) from kpis.kpi_alerts_weekly "
            "where dimension = 'severity' group by 1"
        ).fetchall()
    )
    assert by_severity["critical"] == 0.0
    assert by_severity["high"] == pytest.approx(0.5)  # al_res met, al_tp never acted on


def test_zero_missed_critical_check_flags_the_week_with_an_undelivered_critical(con):
    weeks = dict(
        con.execute(
            "select cast(week_start as string), is_every_critical_delivered "
            "from kpis.kpi_alerts_weekly where dimension = 'overall'"
        ).fetchall()
    )
    assert weeks["2025-02-24"] is True  # al_crit's critical mail was sent
    # A2's renewal risk held on a landed day and no alert was raised: missed, though no
    # critical alert exists that week (the reconciliation recomputes it from the marts).
    assert weeks["2025-03-03"] is False
    assert weeks["2025-03-10"] is False  # al_crit_missed has no sent critical mail


def test_a_week_with_a_missed_condition_and_no_alert_counts_zero_alerts_not_unknown(con):
    row = _row(
        con,
        "select alerts_raised, critical_alerts, critical_missed, risk_precision "
        "from kpis.kpi_alerts_weekly where dimension = 'severity' "
        "and dimension_value = 'critical' and week_start = '2025-03-03'",
    )
    # A2's renewal risk held and no critical alert was raised that week: none raised is a known
    # zero (the weekly chart drew it as a crash before); precision of nothing stays unknown.
    assert row["critical_missed"] > 0
    assert (row["alerts_raised"], row["critical_alerts"]) == (0, 0)
    assert row["risk_precision"] is None


def test_precision_false_alarms_and_expansion_revenue(con):
    overall = _row(
        con,
        "select sum(risk_true_positives) as tp, sum(risk_alerts_judged) as judged, "
        "sum(risk_false_alarms) as fa, sum(arr_gained) as gained "
        "from kpis.kpi_alerts_weekly where dimension = 'overall'",
    )
    # Risk alerts: al_tp (churn), al_res, al_crit, al_crit_missed (nothing) -> 1 of 4.
    assert (overall["tp"], overall["judged"], overall["fa"]) == (1, 4, 3)
    assert overall["gained"] == 12_000  # the expansion alert on A4 was followed by +12k


def test_data_alerts_are_not_attributed_and_every_slice_adds_up(con):
    assert con.execute(
        "select count(*) from kpis.alert_outcomes where account_id = '*'"
    ).fetchone() == (0,)
    totals = dict(
        con.execute(
            "select dimension, sum(alerts_raised) from kpis.kpi_alerts_weekly group by 1"
        ).fetchall()
    )
    assert set(totals.values()) == {5}, totals


def test_uplift_says_there_is_no_holdout_when_none_is_configured(con):
    rows = con.execute("select metric, holdout_accounts, conclusion from kpis.kpi_holdout_uplift")
    for metric, holdout_accounts, conclusion in rows.fetchall():
        assert holdout_accounts == 0
        assert conclusion.startswith("no holdout"), (metric, conclusion)


def test_dagster_assets_show_headline_numbers(kpi_run):
    _, metadata = kpi_run
    assert {"kpis/alert_outcomes", "kpis/kpi_alerts_weekly", "kpis/kpi_holdout_uplift"} <= set(
        metadata
    )
    outcomes = metadata["kpis/alert_outcomes"]
    assert outcomes["rows"].value == 5
    assert outcomes["risk_precision"].value == 0.25
    assert metadata["kpis/kpi_churn_coverage"]["recall_with_lead"].value == 0.5
    assert metadata["kpis/kpi_alerts_weekly"]["weeks_with_undelivered_criticals"].value == 2


def test_backtest_reports_live_per_rule_precision_from_real_outcomes(con):
    live = live_precision(con, dt.date(2025, 3, 1), dt.date(2025, 3, 31)).set_index("rule_id")
    assert live.loc["churn_risk_high", "live_precision"] == 1.0  # followed by the churn
    assert live.loc["renewal_at_risk", ["judged", "true_positives"]].tolist() == [2, 0]
    assert live.loc["engagement_drop", "with_feedback"] == 1
    assert live_precision(duckdb.connect(), dt.date(2025, 3, 1), dt.date(2025, 3, 31)) is None


def test_reconciliation_recomputes_every_critical_condition_from_the_marts(con):
    rows = con.execute(
        "select account_id, cast(as_of_date as string), alert_id, is_delivered, exemption, "
        "is_missed from kpis.critical_reconciliation order by as_of_date, account_id"
    ).fetchall()
    assert rows == [
        ("A3", "2025-03-01", "al_crit", True, None, False),  # covered and mailed
        ("A2", "2025-03-04", None, False, None, True),  # held, never became an alert
        ("A5", "2025-03-04", None, False, "no_tracking_consent", False),
        ("A3", "2025-03-10", "al_crit_missed", False, None, True),  # nobody was told
    ]  # A4 (day not landed) and A1 (healthy) are not there


def test_critical_rules_var_default_matches_the_rules_file():
    import yaml

    from alerts.reconcile import critical_rule_vars
    from alerts.rules import load_rules
    from tests.kpis.conftest import CONFIG, REPO

    project = yaml.safe_load((REPO / "dbt_project" / "dbt_project.yml").read_text())
    assert project["vars"]["critical_rules"] == critical_rule_vars(load_rules(CONFIG / "rules.yml"))
