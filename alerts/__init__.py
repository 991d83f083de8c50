"""Alert engine: YAML rules compiled to parameterised SQL, alert lifecycle, routing, backtests."""

from alerts.backtest import backtest
from alerts.engine import EvaluationError, EvaluationResult, alert_id_for, evaluate
from alerts.expr import ConditionError, compile_condition
from alerts.lifecycle import TransitionError, escalate_overdue, snooze, transition
from alerts.rules import (
    RulesFileError,
    columns_from_connection,
    load_routing,
    load_rules,
    parse_rules,
)
from alerts.schema import ensure_schema

__all__ = [
    "ConditionError",
    "EvaluationError",
    "EvaluationResult",
    "RulesFileError",
    "TransitionError",
    "alert_id_for",
    "backtest",
    "columns_from_connection",
    "compile_condition",
    "ensure_schema",
    "escalate_overdue",
    "evaluate",
    "load_routing",
    "load_rules",
    "parse_rules",
    "snooze",
    "transition",
]
