"""Write the actions people took in the inbox (or from an email link) into the warehouse.

Runs inside a pipeline run (the `alerts/inbox_actions` asset), so it never competes with the
pipeline for DuckDB's writer lock. Each action becomes the same lifecycle change the command
line makes (alerts.lifecycle), audited with the person as actor, the time they confirmed as the
event time, and {"channel": "email" | "inbox"} in the details. Re-applying is harmless: a
transition to the status an alert already has changes nothing and is not audited twice.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass, field

from alerts.lifecycle import TransitionError, snooze, transition
from inbox import store

FEEDBACK_REASONS = {
    "saved": "Resolved: the account was saved",
    "useful": "Resolved: the alert was useful",
    "not_useful": "Resolved: the alert was not useful",
}


@dataclass
class ApplyReport:
    applied: int = 0
    unchanged: int = 0
    rejected: int = 0
    examples: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict:
        return {
            "applied": self.applied,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "examples": self.examples[:5],
        }


def apply_action(con, action: store.Action) -> tuple[str, str | None]:
    """Apply one action to the warehouse: ('applied' | 'unchanged' | 'rejected', detail)."""
    details = {"channel": action.channel, "action_id": action.action_id}
    try:
        if action.action == "acknowledge":
            r = transition(
                con,
                action.alert_id,
                "acknowledged",
                action.actor,
                reason=action.note,
                at=action.requested_at,
                details=details,
            )
            return ("applied" if r["changed"] else "unchanged"), None
        if action.action == "resolve":
            reason = action.note or FEEDBACK_REASONS.get(action.feedback or "", "Resolved")
            r = transition(
                con,
                action.alert_id,
                "resolved",
                action.actor,
                reason=reason,
                at=action.requested_at,
                feedback=action.feedback,
                details=details,
            )
            return ("applied" if r["changed"] else "unchanged"), None
        if action.action == "snooze":
            until = action.snooze_until or (action.requested_at.date() + dt.timedelta(days=7))
            snooze(
                con,
                action.alert_id,
                until,
                action.actor,
                reason=action.note,
                at=action.requested_at,
                details=details,
            )
            return "applied", None
    except TransitionError as exc:
        return "rejected", str(exc)
    return "rejected", f"unknown action {action.action!r}"


def apply_pending(con, store_con: sqlite3.Connection) -> ApplyReport:
    """Apply every pending action, oldest first, each in its own warehouse transaction; mark
    each in the store once the warehouse has it (a crash in between re-applies it harmlessly).
    """
    report = ApplyReport()
    for action in store.pending_actions(store_con):
        con.execute("begin transaction")
        try:
            outcome, detail = apply_action(con, action)
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
        store.mark_applied(store_con, action.action_id, outcome, detail)
        setattr(report, outcome, getattr(report, outcome) + 1)
        report.examples.append(
            f"{action.action} {action.alert_id} by {action.actor} ({action.channel}): {outcome}"
            + (f" - {detail}" if detail else "")
        )
    return report
