"""The simple rankings every model is judged against, and BG/NBD P(alive) written out here.

A baseline is a score where higher means "more likely to be positive" (to churn, or for the
expansion model to expand). Each is computed from one row's own point-in-time columns, so it is
judged on exactly the rows the model is judged on. A row whose baseline input is unknown gets
the median score of the rows that have one (neutral), never a worst case.

BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): repeat
transactions follow a Poisson process with gamma(r, alpha) distributed rates, and after each
transaction a customer drops out with a beta(a, b) distributed probability. The likelihood and
P(alive | x, t_x, T) below are equations (6) and the appendix of that paper; time is in weeks,
a "transaction" is an active day.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

from ml.config import TrainConfig

BGNBD_COLUMNS = ("active_days_total", "days_first_to_last_activity", "days_since_first_activity")


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float


def bgnbd_log_likelihood(
    params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Per-customer log-likelihood of x repeat transactions, the last at t_x, observed for t."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x = np.asarray(x, dtype="float64")
    t_x = np.asarray(t_x, dtype="float64")
    t = np.asarray(t, dtype="float64")
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + t)
    repeat = x > 0
    a4 = np.where(
        repeat,
        np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return a1 + a2 + np.logaddexp(a3, a4)


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, t: np.ndarray) -> BgNbdParams:
    """Maximum-likelihood BG/NBD parameters (optimised on their logarithms, so they stay > 0).

    Raises:
        ValueError: no customer was observed for a positive time.
    """
    x, t_x, t = (np.asarray(v, dtype="float64") for v in (x, t_x, t))
    keep = np.isfinite(x) & np.isfinite(t_x) & np.isfinite(t) & (t > 0)
    if not keep.any():
        raise ValueError("BG/NBD needs customers observed for a positive time.")
    x, t_x, t = x[keep], t_x[keep], t[keep]

    def loss(log_params: np.ndarray) -> float:
        p = BgNbdParams(*np.exp(log_params))
        return -float(bgnbd_log_likelihood(p, x, t_x, t).sum())

    start = np.log([1.0, max(float(t.mean()), 1.0), 1.0, 1.0])
    best = minimize(loss, start, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6})
    best = minimize(loss, best.x, method="L-BFGS-B")
    return BgNbdParams(*(float(v) for v in np.exp(best.x)))


def bgnbd_p_alive(params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """P(still alive at t | x repeat transactions, the last at t_x); 1 without repeats."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, t = (np.asarray(v, dtype="float64") for v in (x, t_x, t))
    repeat = x > 0
    log_odds = (
        np.log(a)
        - np.log(np.where(repeat, b + x - 1, 1.0))
        + (r + x) * (np.log(alpha + t) - np.log(alpha + t_x))
    )
    return np.where(repeat, 1.0 / (1.0 + np.exp(np.clip(log_odds, -700, 700))), 1.0)


def bgnbd_expected(
    params: BgNbdParams, t_future: float, x: np.ndarray, t_x: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Expected repeat transactions in (T, T + t_future] given x, t_x, T (the paper's eq. 10)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, t = (np.asarray(v, dtype="float64") for v in (x, t_x, t))
    ratio = (alpha + t) / (alpha + t + t_future)
    hyper = hyp2f1(r + x, b + x, a + b + x - 1, t_future / (alpha + t + t_future))
    numerator = (a + b + x - 1) / (a - 1) * (1 - ratio ** (r + x) * hyper)
    repeat = x > 0
    odds = np.where(
        repeat,
        a / np.where(repeat, b + x - 1, 1.0) * ((alpha + t) / (alpha + t_x)) ** (r + x),
        0.0,
    )
    return numerator / (1 + odds)


def bgnbd_inputs(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) in weeks from the frame's activity columns: x = active days - 1."""
    x = frame["active_days_total"].astype("float64").to_numpy() - 1
    t_x = frame["days_first_to_last_activity"].astype("float64").to_numpy() / 7.0
    t = frame["days_since_first_activity"].astype("float64").to_numpy() / 7.0
    return x, t_x, t


def _neutral(values: pd.Series) -> np.ndarray:
    v = values.astype("float64")
    fill = v.median() if v.notna().any() else 0.0
    return v.fillna(fill).to_numpy()


def _first_column(frame: pd.DataFrame, names: list[str]) -> str | None:
    return next((n for n in names if n in frame.columns and frame[n].notna().any()), None)


@dataclass
class Baselines:
    """Which baselines apply to a frame, fitted on the training window (BG/NBD) once."""

    config: TrainConfig
    frequency_column: str | None = None
    bgnbd: BgNbdParams | None = None
    descriptions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def fit(cls, train_window: pd.DataFrame, config: TrainConfig) -> Baselines:
        """Choose the baselines the data supports; fit BG/NBD on each account's last training
        row (non-contractual, i.e. inactivity labels only).
        """
        out = cls(config=config)
        days = config.frequency_days
        candidates = [f"events_{days}d"] + [
            f"events_{w}d" for w in (365, 180, 90, 28) if w <= max(days, 28)
        ]
        candidates += ["logins_90d", "logins_28d"]
        out.frequency_column = _first_column(train_window, candidates)
        d = out.descriptions
        d["recency"] = "days since the last activity (longest silence first)"
        if out.frequency_column:
            d["frequency"] = f"fewest {out.frequency_column.replace('_', ' in the last ', 1)}"
        if "health_score" in train_window.columns and train_window["health_score"].notna().any():
            d["health_score"] = "lowest health score first"
        if (
            config.model_name == "churn"
            and "days_to_renewal" in train_window.columns
            and train_window["days_to_renewal"].notna().any()
        ):
            d["calendar"] = f"renewal within {config.calendar_days} days"
        if config.label_source == "inactivity" and all(
            c in train_window.columns for c in BGNBD_COLUMNS
        ):
            last = train_window.sort_values("as_of_date").groupby("account_id").tail(1)
            out.bgnbd = fit_bgnbd(*bgnbd_inputs(last))
            d["bgnbd"] = "BG/NBD: lowest P(alive) first, fitted on the training window"
            d["bgnbd_expected"] = (
                f"BG/NBD: fewest expected active days in the next {config.horizon_days} days"
            )
        if config.model_name == "expansion":
            d["recency"] = "most recent activity first"
            if out.frequency_column:
                d["frequency"] = f"most {out.frequency_column.replace('_', ' in the last ', 1)}"
            if "health_score" in d:
                d["health_score"] = "highest health score first"
        return out

    @property
    def names(self) -> list[str]:
        return list(self.descriptions)

    def score(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Name -> score per row (higher = more likely positive)."""
        sign = -1.0 if self.config.model_name == "expansion" else 1.0
        out: dict[str, np.ndarray] = {}
        if "days_since_last_activity" in frame.columns:
            out["recency"] = sign * _neutral(frame["days_since_last_activity"])
        else:
            out["recency"] = np.zeros(len(frame))
        if self.frequency_column:
            out["frequency"] = -sign * _neutral(frame[self.frequency_column])
        if "health_score" in self.descriptions:
            out["health_score"] = -sign * _neutral(frame["health_score"])
        if "calendar" in self.descriptions:
            days = frame["days_to_renewal"].astype("float64")
            out["calendar"] = (
                ((days >= 0) & (days <= self.config.calendar_days)).astype("float64").to_numpy()
            )
        if self.bgnbd is not None:
            inputs = bgnbd_inputs(frame)
            out["bgnbd"] = _neutral(pd.Series(1.0 - bgnbd_p_alive(self.bgnbd, *inputs)))
            expected = bgnbd_expected(self.bgnbd, self.config.horizon_days / 7.0, *inputs)
            out["bgnbd_expected"] = -_neutral(pd.Series(expected))
        return out
