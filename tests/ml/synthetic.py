"""Small synthetic feature frames for plumbing tests (Dagster wiring, registry, scoring).

The churn signal is planted where the heuristic baselines do not look, so a model trained here
"beats" them by construction: no test may take these frames as evidence of model quality. The
model is judged on data we did not write (tests/ml/test_cdnow.py) and the evaluation's own
properties are tested on label-free or shuffled data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

START = pd.Timestamp("2025-01-06")  # a Monday


def feature_grid(
    n_accounts: int = 200,
    weeks: int = 56,
    horizon_days: int = 56,
    churn_share: float = 0.35,
    expand_share: float = 0.25,
    seed: int = 0,
    freq_days: int = 7,
) -> pd.DataFrame:
    """Rows shaped like `marts.ml_features` (or `account_health` with freq_days=1).

    Churners lose engagement over the ~100 days before churn and their admin goes quiet;
    expanders grow usage and seat use. Both signals are noisy, and the admin signal is not
    visible to the heuristic baseline, so a model can beat it.
    """
    rng = np.random.default_rng(seed)
    n_steps = weeks * 7 // freq_days
    dates = START + pd.to_timedelta(np.arange(n_steps) * freq_days, unit="D")
    span = (dates[-1] - dates[0]).days
    accounts = [f"a_{i:05d}" for i in range(n_accounts)]
    seats = rng.integers(5, 60, n_accounts)
    rate = rng.gamma(4.0, 0.5, n_accounts)  # logins per active user per day
    churns = rng.random(n_accounts) < churn_share
    churn_day = np.where(churns, rng.integers(60, span + 120, n_accounts), 10**6)
    expands = (~churns) & (rng.random(n_accounts) < expand_share)
    expand_day = np.where(expands, rng.integers(60, span + 120, n_accounts), 10**6)
    renewal_offset = rng.integers(0, 365, n_accounts)

    day = (dates - START).days.to_numpy()[None, :]  # 1 x T
    to_churn = churn_day[:, None] - day  # A x T
    to_expand = expand_day[:, None] - day
    decline = np.clip(1 - to_churn / 100.0, 0, 1)  # 0 far from churn, 1 at churn
    growth = np.clip(1 - to_expand / 100.0, 0, 1)
    noise = rng.normal(0, 0.25, (n_accounts, n_steps))
    health = np.clip(1.0 - 0.6 * decline + 0.4 * growth + noise, 0.05, 2.0)

    util = np.clip(rng.beta(4, 3, n_accounts)[:, None] * health, 0, 1.2)
    active_users_28d = np.maximum(0, np.round(seats[:, None] * util))
    logins_28d = rng.poisson(rate[:, None] * 28 * np.maximum(active_users_28d, 0.2) * 0.3)
    prev_noise = rng.normal(0, 0.15, (n_accounts, n_steps))
    prev_health = np.clip(
        1.0
        - 0.6 * np.clip(1 - (to_churn - 28) / 100.0, 0, 1)
        + 0.4 * np.clip(1 - (to_expand - 28) / 100.0, 0, 1)
        + prev_noise,
        0.05,
        2,
    )
    logins_prev_28d = rng.poisson(
        rate[:, None] * 28 * np.maximum(seats[:, None] * util / health * prev_health, 0.2) * 0.3
    )
    # Planted signal the baseline does not use: the admin goes quiet before churn.
    admin_quiet = rng.exponential(4.0, (n_accounts, n_steps)) + 45 * decline * rng.random(
        (n_accounts, n_steps)
    )
    frame = pd.DataFrame(
        {
            "account_id": np.repeat(accounts, n_steps),
            "as_of_date": np.tile(dates.date, n_accounts),
            "logins_28d": logins_28d.ravel(),
            "logins_prev_28d": logins_prev_28d.ravel(),
            "logins_7d": rng.binomial(logins_28d, 0.25).ravel(),
            "active_users_28d": active_users_28d.ravel(),
            "session_minutes_28d": (logins_28d * rng.gamma(3, 4, (n_accounts, n_steps))).ravel(),
            "docs_viewed_28d": rng.poisson(logins_28d * 0.8).ravel(),
            "docs_shared_28d": rng.poisson(logins_28d * 0.1 * health).ravel(),
            "feature_breadth_28d": np.clip(
                np.round(8 * health + rng.normal(0, 1.5, health.shape)), 0, 12
            ).ravel(),
            "seat_utilisation": (active_users_28d / seats[:, None]).ravel(),
            "days_since_admin_activity": np.round(admin_quiet).ravel(),
            # Planted expansion signal: premium features take off before an upgrade.
            "premium_feature_events_28d": rng.poisson(3 + 25 * growth).ravel(),
            "days_since_last_activity": np.round(rng.exponential(1 + 5 * decline)).ravel(),
            "days_to_renewal": ((renewal_offset[:, None] - day) % 365).ravel(),
            "arr": np.repeat(seats * 1200.0, n_steps),
            "seats": np.repeat(seats, n_steps),
            "plan": np.repeat(np.where(seats > 30, "enterprise", "growth"), n_steps),
            "csm_email": "csm@example.com",
            "health_score": np.clip(health * 60, 0, 100).ravel(),
            "score_engagement": (health * 30).ravel(),
            "is_data_complete": True,
        }
    )
    frame["logins_trend_28d"] = (frame["logins_28d"] - frame["logins_prev_28d"]) / frame[
        "logins_prev_28d"
    ].clip(lower=1)
    t_churn = np.repeat(churn_day, n_steps) - np.tile(day.ravel(), n_accounts)
    t_expand = np.repeat(expand_day, n_steps) - np.tile(day.ravel(), n_accounts)
    frame["label_churn"] = ((t_churn > 0) & (t_churn <= horizon_days)).astype("int8")
    frame["label_expand"] = ((t_expand > 0) & (t_expand <= horizon_days)).astype("int8")
    last_day = dates[-1]
    frame["is_label_observable"] = (
        pd.to_datetime(frame["as_of_date"]) + pd.Timedelta(days=horizon_days) <= last_day
    )
    frame = frame[t_churn > 0].reset_index(drop=True)  # churned accounts leave the grid
    return frame


ENGAGEMENT_COLUMNS = [
    "active_users",
    "logins",
    "session_minutes",
    "docs_viewed",
    "docs_downloaded",
    "docs_shared",
    "docs_uploaded",
    "docs_commented",
    "features_used",
    "premium_feature_events",
    "csm_emails_opened",
    "csm_emails_clicked",
    "admin_active_users",
]


def daily_engagement(n_accounts: int = 6, days: int = 84, seed: int = 1) -> pd.DataFrame:
    """Rows shaped like `marts.fct_account_daily_engagement`: busy weekdays, quiet weekends."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(START, periods=days, freq="D")
    weekday = dates.dayofweek.to_numpy()
    level = rng.uniform(20, 60, n_accounts)[:, None] * np.where(weekday < 5, 1.0, 0.15)[None, :]
    logins = rng.poisson(level)
    frame = pd.DataFrame(
        {
            "account_id": np.repeat([f"a_{i:05d}" for i in range(n_accounts)], days),
            "activity_date": np.tile(dates.date, n_accounts),
            "is_data_landed": True,
            "logins": logins.ravel(),
        }
    )
    frame["active_users"] = np.maximum(1, frame["logins"] // 3)
    frame["session_minutes"] = frame["logins"] * 12.0
    frame["docs_viewed"] = frame["logins"] * 2
    for column in ENGAGEMENT_COLUMNS:
        if column not in frame.columns:
            frame[column] = rng.poisson(2, len(frame))
    return frame[["account_id", "activity_date", "is_data_landed", *ENGAGEMENT_COLUMNS]]
