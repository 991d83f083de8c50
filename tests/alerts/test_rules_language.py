"""The condition language and rules file: valid rules compile, hostile ones are refused."""

from __future__ import annotations

import copy

import duckdb
import pytest
import yaml

from alerts.expr import ConditionError, compile_condition
from alerts.rules import (
    CONTRACT_HEALTH_COLUMNS,
    DERIVED_COLUMNS,
    RulesFileError,
    load_rules,
    parse_rules,
)
from tests.alerts.conftest import CONFIG, TEMPLATES

COLS = {**CONTRACT_HEALTH_COLUMNS, **DERIVED_COLUMNS}


def test_valid_condition_compiles_to_parameterised_sql():
    c = compile_condition(
        "active_users_28d < 0.5 * active_users_prev_28d and plan in ('growth', 'enterprise') "
        "and days_to_renewal between 0 and 90 and not is_data_complete = false "
        "and churn_probability is not null",
        COLS,
    )
    # Every literal is a parameter; none of them appears in the SQL text.
    assert c.params == [0.5, "growth", "enterprise", 0, 90, False]
    assert "growth" not in c.sql and "0.5" not in c.sql
    assert c.sql.count("?") == len(c.params)
    assert c.columns[:2] == ["active_users_28d", "active_users_prev_28d"]
    con = duckdb.connect()
    con.execute(
        "create table t as select 3 as active_users_28d, 10 as active_users_prev_28d, "
        "'growth' as plan, 30 as days_to_renewal, true as is_data_complete, "
        "0.7 as churn_probability"
    )
    assert con.execute(f"select {c.sql} from t", c.params).fetchall() == [(True,)]


def test_string_literal_cannot_break_out():
    c = compile_condition("plan = 'x'' or 1=1 --'", COLS)
    assert c.params == ["x' or 1=1 --"]
    con = duckdb.connect()
    con.execute("create table t as select 'growth' as plan")
    assert con.execute(f"select count(*) from t where {c.sql}", c.params).fetchall() == [(0,)]


@pytest.mark.parametrize(
    ("condition", "position", "fragment"),
    [
        ("arr > 1; drop table alerts.alerts", 8, "';' is not allowed"),
        ("arr > 1 -- comment", 9, "comments are not allowed"),
        ('plan = "growth"', 8, "double quotes"),
        ("plan = 'growth", 8, "unterminated string"),
        ("select arr from x", 1, "raw SQL is not allowed"),
        ("arr > (select 1)", 8, "raw SQL is not allowed"),
        ("revenue > 1", 1, "unknown column 'revenue'"),
        ("plan > 10", 6, "cannot compare a string with a number"),
        ("arr + 1", 5, "must be true/false"),
        ("arr > 1 and seats", 13, "'and' joins true/false conditions"),
        ("arr between 'a' and 'b'", 13, "'between' bounds must be numbers"),
        ("plan in ('a', 1)", 15, "'in' list values must be strings"),
        ("plan in ('a', seats)", 15, "literal values only"),
        ("arr = null", 7, "write 'x is null'"),
        ("read_csv('x') > 1", 1, "unknown function 'read_csv'"),
        ("arr >", 6, "expected a column, number or string"),
        ("arr > 1 arr", 9, "after a complete expression"),
        ("arr > 1 | 1", 9, "unexpected character '|'"),
        ("", 1, "the condition is empty"),
        ("(" * 40 + "arr > 1" + ")" * 40, 31, "nested deeper than 30"),
        ("not not " * 400 + "arr > 1", 1, "longer than 2000 characters"),
        ("arr > " + "- " * 990 + "1", 1, "nested too deeply"),
    ],
)
def test_hostile_or_invalid_conditions_are_refused_with_position(condition, position, fragment):
    with pytest.raises(ConditionError) as err:
        compile_condition(condition, COLS)
    assert err.value.position == position
    assert fragment in str(err.value)
    assert "allowed:" in str(err.value)  # the message says what the language accepts


def test_negative_literals_and_not_forms():
    c = compile_condition("wow_logins_change in (-1, -0.5) or not arr between -5 and 5", COLS)
    assert c.params == [-1, -0.5, -5, 5]


def _doc():
    return yaml.safe_load((CONFIG / "rules.yml").read_text())


def test_shipped_rules_validate():
    rs = load_rules(CONFIG / "rules.yml", COLS, TEMPLATES)
    types = {r.alert_type for r in rs.rules}
    assert {
        "churn_risk",
        "engagement_drop",
        "champion_quiet",
        "adoption_gap",
        "renewal_risk",
    } <= types
    assert {"expansion_opportunity", "data_freshness"} <= types
    assert all(r.enabled for r in rs.rules)


def test_whole_file_is_refused_and_every_problem_named():
    doc = _doc()
    good = copy.deepcopy(doc)
    doc["rules"][0]["condition"] = "churn_probability >= 0.6; delete from alerts.alerts"
    doc["rules"][1]["severity"] = "urgent"
    doc["rules"][2]["id"] = doc["rules"][3]["id"]
    doc["rules"][4]["recommendation"] = {"action": "fax"}
    with pytest.raises(RulesFileError) as err:
        parse_rules(doc, COLS, TEMPLATES)
    text = str(err.value)
    assert "no rule was applied" in text
    assert "rule 'churn_risk_high': condition error at position 25" in text
    assert "severity 'urgent'" in text
    assert "duplicate id" in text
    assert "action 'fax'" in text
    assert len(err.value.problems) == 4
    # The untouched file still parses: the errors above came from the edits alone.
    assert len(parse_rules(good, COLS, TEMPLATES).rules) == len(good["rules"])


def test_missing_template_and_unknown_keys_are_reported(tmp_path):
    doc = _doc()
    doc["rules"][0]["recommendation"]["template"] = "nope.j2"
    doc["rules"][1]["priority"] = 3
    with pytest.raises(RulesFileError) as err:
        parse_rules(doc, COLS, TEMPLATES)
    assert "template 'nope.j2' not found" in str(err.value)
    assert "unknown keys ['priority']" in str(err.value)


def test_broken_template_syntax_is_reported(tmp_path):
    for f in TEMPLATES.iterdir():
        (tmp_path / f.name).write_text(f.read_text())
    (tmp_path / "churn_risk.j2").write_text("{% if %}")
    with pytest.raises(RulesFileError, match="template churn_risk.j2: line 1"):
        parse_rules(_doc(), COLS, tmp_path)


def test_unknown_column_against_live_table(tmp_path):
    from alerts.rules import columns_from_connection

    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute("create table marts.account_health (account_id string, arr double)")
    cols = columns_from_connection(con)
    assert cols["arr"] == "number" and "churn_probability" in cols
    with pytest.raises(RulesFileError, match="unknown column 'seat_utilisation'"):
        parse_rules(_doc(), cols, TEMPLATES)
