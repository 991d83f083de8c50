"""Control group: a stable hash puts a share of accounts in a holdout whose alerts are not sent."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# 8 hex digits of md5 -> a number in [0, 2**32); the SQL below computes the same value so the
# Python helper (tests, docs) and the set-based update always agree.
_BUCKETS = 2**32


@dataclass(frozen=True)
class Holdout:
    """`routing.yml` -> `holdout: {enabled, share, salt, include_critical}`; off unless a team
    turns it on. Critical alerts are always delivered unless `include_critical` says otherwise.
    """

    enabled: bool = False
    share: float = 0.10
    salt: str = "ea-holdout-v1"
    include_critical: bool = False


def holdout_fraction(account_id: str, salt: str) -> float:
    """Where an account falls in [0, 1): stable across runs, machines and Python versions."""
    digest = hashlib.md5(f"{salt}|{account_id}".encode()).hexdigest()
    return int(digest[:8], 16) / _BUCKETS


def in_holdout(account_id: str, holdout: Holdout, severity: str | None = None) -> bool:
    """True when this account's alerts (of this severity) are recorded but never delivered."""
    if severity == "critical" and not holdout.include_critical:
        return False
    return (
        holdout.enabled
        and account_id != "*"
        and holdout_fraction(account_id, holdout.salt) < (holdout.share)
    )


def holdout_sql(column: str = "account_id") -> str:
    """SQL predicate (parameters $holdout_salt, $holdout_share) equal to `in_holdout`."""
    return (
        f"({column} != '*' and cast(('0x' || left(md5($holdout_salt || '|' || {column}), 8)) "
        f"as ubigint) < $holdout_share * {_BUCKETS})"
    )


def mark_holdout(con, holdout: Holdout, raised_on) -> int:
    """Flag the alerts raised on `raised_on` for holdout accounts; returns how many.

    Critical alerts stay out of the holdout (they are always delivered) unless the team set
    `include_critical: true`.
    """
    if not holdout.enabled:
        return 0
    params = {"holdout_salt": holdout.salt, "holdout_share": holdout.share, "d": raised_on}
    critical = "" if holdout.include_critical else "and severity != 'critical' "
    con.execute(
        f"update alerts.alerts set is_holdout = true where first_raised_on = $d "
        f"and not is_holdout {critical}and {holdout_sql()}",
        params,
    )
    return con.execute(
        "select count(*) from alerts.alerts where first_raised_on = $d and is_holdout",
        {"d": raised_on},
    ).fetchall()[0][0]
