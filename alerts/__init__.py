"""Alert engine: YAML rules compiled to parameterised SQL, alert lifecycle, routing, backtests."""

from alerts.lifecycle import TransitionError, escalate_overdue, snooze, transition
from alerts.schema import ensure_schema

__all__ = ["TransitionError", "ensure_schema", "escalate_overdue", "snooze", "transition"]
