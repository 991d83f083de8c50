"""Control group: a stable hash puts a share of accounts in a holdout whose alerts are not sent."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# 8 hex digits of md5 -> a number in [0, 2**32); the SQL below computes the same value so the
# Python helper (tests, docs) and the set-based update always agree.
_BUCKETS = 2**32


@dataclass(frozen=True)
class Holdout:
    """`routing.yml` -> `holdout: {enabled, share, salt}`; off unless a team turns it on."""

    enabled: bool = False
    share: float = 0.10
    salt: str = "ea-holdout-v1"


def holdout_fraction(account_id: str, salt: str) -> float:
    """Where an account falls in [0, 1): stable across runs, machines and Python versions."""
    digest = hashlib.md5(f"{salt}|{account_id}".encode()).hexdigest()
    return int(digest[:8], 16) / _BUCKETS


def in_holdout(account_id: str, holdout: Holdout) -> bool:
    """True when this account's alerts are recorded but never delivered."""
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
    """Flag the alerts raised on `raised_on` for holdout accounts; returns how many."""
    if not holdout.enabled:
        return 0
    params = {"holdout_salt": holdout.salt, "holdout_share": holdout.share, "d": raised_on}
    con.execute(
        f"update alerts.alerts set is_holdout = true where first_raised_on = $d "
        f"and not is_holdout and {holdout_sql()}",
        params,
    )
    return con.execute(
        "select count(*) from alerts.alerts where first_raised_on = $d and is_holdout",
        {"d": raised_on},
    ).fetchall()[0][0]
