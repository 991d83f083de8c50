"""The day-by-day simulation: latent account health, lifecycle, activity, dirt, landing files."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import compress
from pathlib import Path

import numpy as np

from simulator import catalog as C
from simulator.config import DIRT_KINDS, SimConfig, SimSummary
from simulator.population import (
    PRICE_PER_SEAT,
    SEAT_CLIP,
    Accounts,
    Users,
    make_team,
)
from simulator.seasons import season_factors, utc_offsets
from simulator.writer import (
    ACCOUNT_COLUMNS,
    OUTCOME_COLUMNS,
    USER_COLUMNS,
    GzipCsvStream,
    clear_folder,
    csv_text,
    write_folder,
)

DAY_S = 86_400
CHURN, RENEWED, EXPANDED, CONTRACTED = range(4)

# Activity parameters per role (admin, power, casual).
P_ACTIVE = np.array([0.50, 0.40, 0.10])
EXTRA_SESSIONS = np.array([0.45, 0.35, 0.10])
ACTIONS_PER_SESSION = np.array([4.0, 4.5, 2.2])
# Action mix per role over: viewed, downloaded, shared, uploaded, commented, feature used.
ACTION_MIX = np.array(
    [
        [0.30, 0.08, 0.07, 0.08, 0.09, 0.38],
        [0.30, 0.10, 0.06, 0.09, 0.08, 0.37],
        [0.52, 0.14, 0.04, 0.02, 0.05, 0.23],
    ]
)
ACTION_CODES = np.array(
    [
        C.DOCUMENT_VIEWED,
        C.DOCUMENT_DOWNLOADED,
        C.DOCUMENT_SHARED,
        C.DOCUMENT_UPLOADED,
        C.DOCUMENT_COMMENTED,
        C.FEATURE_USED,
    ]
)
_MASK64 = (1 << 64) - 1

_EVENT_NAMES = list(C.EVENT_NAMES)
_FEATURE_LIT = [f'"{f}"' for f in C.FEATURES] + ["null"]  # index -1 -> null
_TZ = list(C.TIME_ZONES)
BAD_TIMESTAMPS = ('"yesterday"', '"N/A"', '"not a timestamp"', "1735689600")
BAD_DURATIONS = ('"about 12 minutes"', '"n/a"', '"long"')


def _add_year(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return dt.date(day.year + 1, 2, 28)


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _mix(values: np.ndarray, salt: int) -> np.ndarray:
    """An invertible 64-bit mix (distinct inputs give distinct, random-looking outputs)."""
    x = values.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(salt & _MASK64)
    x ^= x >> np.uint64(29)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(32)
    return x


def _ids(counter: int, n: int, salt: int) -> np.ndarray:
    """Unique message ids for the next n events of the run."""
    return _mix(np.arange(counter, counter + n, dtype=np.uint64), salt)


class Simulation:
    """State carried from day to day; `run` writes everything and returns the summary."""

    def __init__(self, cfg: SimConfig, out_dir: Path, truth_dir: Path | None) -> None:
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.truth_dir = Path(truth_dir) if truth_dir is not None else None
        self.T = cfg.days
        rng = np.random.default_rng([cfg.seed, 0])
        expected_new = cfg.accounts * cfg.new_account_rate * self.T / 365.0
        n_new = int(rng.poisson(expected_new)) if expected_new > 0 else 0
        if cfg.accounts + n_new > 90_000:
            # Ids a_90000 and up are reserved for the unknown-account dirt.
            raise ValueError(
                f"{cfg.accounts} accounts plus {n_new} signed during the run exceed 90000: "
                "use fewer accounts, a shorter run or a lower new_account_rate"
            )
        self.team = make_team(cfg.accounts + n_new, rng)
        self.acc = Accounts(
            cfg.accounts, n_new, cfg.start, self.T, self.team, rng, cfg.no_consent_share
        )
        self.users = Users(max(1024, int(self.acc.seats.sum())), cfg.opt_out_share)
        self.salt = int(rng.integers(0, 1 << 62))
        for i in range(cfg.accounts):
            self._initial_users(i, rng)
        self.delayed_arrival = self._plan_delayed_days(rng)
        self.pending: dict[int, list[str]] = {}  # landing day -> lines that arrive then
        self.pending_outcomes: dict[int, list[tuple]] = {}
        self.msg_counter = 0
        self.sess_counter = 0
        self.dirt = dict.fromkeys(DIRT_KINDS, 0)
        self.outcome_counts = dict.fromkeys(C.OUTCOMES, 0)
        self.truth_outcomes: list[tuple] = []
        self.events_written = 0
        self.opted_out_events = 0
        self.folders = 0
        self.snapshots = 0

    # ----------------------------------------------------------------- set-up
    def _initial_users(self, i: int, rng: np.random.Generator) -> None:
        acc = self.acc
        util = np.clip(0.45 + 0.35 * sigmoid(acc.h[i]) + rng.normal(0, 0.1), 0.25, 1.0)
        m = max(2, int(round(acc.seats[i] * util)))
        roles = np.where(rng.random(m) < 0.22, 1, 2).astype(np.int8)
        roles[0] = 0
        age = (self.cfg.start - acc.contract_start[i]).days
        created = -rng.integers(0, max(1, age), size=m)
        created[0] = -age  # the champion set the account up
        idx = self.users.add(acc, i, roles, created, created, rng)
        acc.admin_user[i] = idx[0]

    def _plan_delayed_days(self, rng: np.random.Generator) -> dict[int, int]:
        """Days whose folder arrives late, mapped to the day it arrives.

        Never a Monday or the first day (so no user shows up in events before a snapshot lists
        them), and at least 4 days apart (so nothing lands more than 5 days late).
        """
        rate = self.cfg.dirt.rate("delayed_day_rate")
        out: dict[int, int] = {}
        last = -10
        draws = rng.random(self.T)
        gaps = rng.integers(1, 4, size=self.T)
        for t in range(1, self.T - 3):
            day = self.cfg.start + dt.timedelta(days=t)
            if draws[t] < rate and t - last >= 4 and day.weekday() != 0:
                out[t] = t + int(gaps[t])
                last = t
        return out

    def date(self, t: int) -> dt.date:
        return self.cfg.start + dt.timedelta(days=t)

    def next_snapshot(self, t: int) -> int:
        """The first snapshot day on or after t (snapshots: day 0 and Mondays)."""
        return t + (7 - self.date(t).weekday()) % 7 if t > 0 else 0

    # -------------------------------------------------------------- lifecycle
    def live_users(self, t: int) -> np.ndarray:
        u = self.users
        n = u.n
        return (self.acc.status[u.acct[:n]] == 1) & (u.active_from[:n] <= t) & (u.deact_day[:n] > t)

    def lifecycle(self, t: int, rng: np.random.Generator) -> list[tuple]:
        acc, users, n = self.acc, self.users, self.acc.n
        # New customers join (on Mondays, so the day's snapshot lists them and their users).
        for i in np.flatnonzero((acc.status == 0) & (acc.join_day == t)):
            acc.status[i] = 1
            acc.h[i] += 0.5  # onboarding enthusiasm
            m = max(2, int(round(acc.seats[i] * 0.25)))
            roles = np.where(rng.random(m) < 0.3, 1, 2).astype(np.int8)
            roles[0] = 0
            days = np.full(m, t)
            acc.admin_user[i] = users.add(acc, i, roles, days, days, rng)[0]

        active = acc.status == 1
        # Latent health: mean-reverting random walk with rare shocks, plus any planned drift.
        acc.h += 0.03 * (acc.mu + acc.mu_shock - acc.h) + 0.09 * rng.normal(size=n) + acc.drift
        neg = rng.random(n) < 1 / 300
        pos = rng.random(n) < 1 / 600
        acc.h += np.where(neg, rng.normal(-0.9, 0.35, size=n), 0.0)
        acc.h += np.where(pos, rng.normal(0.6, 0.25, size=n), 0.0)
        acc.mu_shock *= 0.985
        eng = sigmoid(acc.h)

        live = self.live_users(t)
        n_live = np.bincount(users.acct[: users.n][live], minlength=n)
        util = n_live / np.maximum(acc.seats, 1)

        # Champion departures: the admin leaves; health drops; a successor is named weeks later.
        leave_p = (1 / 800) * (1 + (acc.h < -0.5))
        cand = active & (acc.admin_user >= 0) & (rng.random(n) < leave_p)
        for i in np.flatnonzero(cand):
            u = acc.admin_user[i]
            users.deact_day[u] = t
            users.deact_sec[u] = rng.integers(8 * 3600, 19 * 3600)
            acc.admin_user[i] = -1
            acc.admin_replace_day[i] = t + int(rng.integers(10, 60))
            acc.champion_left_day[i] = t
            acc.champion_left_dates[i].append(self.date(t))
            acc.h[i] -= rng.uniform(0.6, 1.2)
            acc.mu_shock[i] -= 0.7
        for i in np.flatnonzero(active & (acc.admin_replace_day == t)):
            self._promote_admin(i, t, live, rng)

        # Ordinary users leave (more often in unhealthy accounts) and join (toward a target
        # utilisation that rises with health and while an expansion is being planned).
        n_users = len(live)  # a successor created just now cannot quit today
        ua = users.acct[:n_users]
        quit_p = (1 / 900) * (1 + 1.5 * (1 - eng[ua]))
        quit = live & (users.role[:n_users] != 0) & (rng.random(n_users) < quit_p)
        qi = np.flatnonzero(quit)
        users.deact_day[qi] = t
        users.deact_sec[qi] = rng.integers(8 * 3600, 19 * 3600, size=len(qi))
        target = acc.seats * (0.5 + 0.4 * eng + 0.35 * (acc.plan_kind == EXPANDED))
        lam = np.where(
            active, np.maximum(0.0, target - n_live) * 0.012 + 0.0015 * acc.seats * eng, 0
        )
        lam = np.where(util > 1.12, 0.0, lam)
        joins = rng.poisson(lam)
        start_on = self.next_snapshot(t)
        for i in np.flatnonzero(joins):
            m = int(joins[i])
            roles = np.where(rng.random(m) < 0.2, 1, 2).astype(np.int8)
            users.add(acc, i, roles, np.full(m, t), np.full(m, start_on), rng)

        self._decide(t, eng, util, rng)
        self._trials(t, active, rng)
        return self._execute(t, rng)

    def _trials(self, t: int, active: np.ndarray, rng: np.random.Generator) -> None:
        """Premium trials: a hint of expansion, not a rule.

        Accounts heading for an expansion use premium features more and more (quickly when
        premium is what they buy, slowly when they buy seats); other starter and growth accounts
        run trials of 3-8 weeks that do not convert.
        """
        acc = self.acc
        n = acc.n
        free = active & (acc.plan_kind < 0) & (acc.trial_end < t) & (acc.plan < 2)
        for i in np.flatnonzero(free & (rng.random(n) < 1 / 400)):
            acc.trial_end[i] = t + int(rng.integers(20, 60))
        expanding = active & (acc.plan_kind == EXPANDED)
        for i in np.flatnonzero(expanding | (active & (acc.trial_end >= t))):
            if expanding[i]:
                step = 1 / 30 if acc.plan_reason[i] == "premium_adoption" else 1 / 150
            else:
                step = 1 / 25
            acc.trial[i] = min(1.0, acc.trial[i] + step)
            acc.refresh_premium_share(i)
        for i in np.flatnonzero(active & ~expanding & (acc.trial_end == t - 1)):
            acc.trial[i] = 0.0
            acc.refresh_premium_share(i)

    def _promote_admin(self, i: int, t: int, live: np.ndarray, rng: np.random.Generator) -> None:
        acc, users = self.acc, self.users
        # `live` was computed before today's new users were added; they cannot be promoted yet.
        mine = np.flatnonzero(live & (users.acct[: len(live)] == i))
        if len(mine):
            roles = users.role[mine]
            pool = mine[roles == 1] if (roles == 1).any() else mine
            u = int(pool[rng.integers(len(pool))])
            users.role[u] = 0
        else:
            s = self.next_snapshot(t)
            u = int(users.add(acc, i, np.array([0], np.int8), np.array([t]), np.array([s]), rng)[0])
        acc.admin_user[i] = u
        acc.admin_replace_day[i] = -1
        acc.h[i] += 0.3

    def _decide(self, t: int, eng: np.ndarray, util: np.ndarray, rng: np.random.Generator) -> None:
        """Decide renewals 60 days ahead, and rare mid-term churn/expansion 3-7 weeks ahead.

        Decisions use latent health plus noise, so activity hints at them but never fully
        separates outcomes; engagement-driven churners then drift down until the date.
        """
        acc = self.acc
        n = acc.n
        free = (acc.status == 1) & (acc.plan_kind < 0)
        to_renewal = acc.renewal_day - t
        x = acc.h + rng.normal(0, 0.6, size=n)
        champ = ((t - acc.champion_left_day) < 150) | (acc.admin_user < 0)
        u1, u2, u3 = rng.random(n), rng.random(n), rng.random(n)
        p_churn = sigmoid(-2.5 - 1.3 * x + 0.9 * champ)
        p_exp = sigmoid(-1.9 + 0.8 * x + 3.0 * (util - 0.8) + 2.0 * (acc.premium_interest - 0.3))
        p_con = sigmoid(-2.6 - 1.0 * x + 2.0 * (0.6 - util))
        renew = free & (to_renewal <= 60)
        for i in np.flatnonzero(renew):
            if u1[i] < p_churn[i]:
                kind = CHURN
            elif u2[i] < p_exp[i]:
                kind = EXPANDED
            elif u3[i] < p_con[i]:
                kind = CONTRACTED
            else:
                kind = RENEWED
            self._plan(i, kind, int(acc.renewal_day[i]), t, True, champ[i], x[i], rng)

        mid = free & (to_renewal > 90)
        p_mid_churn = np.minimum(0.01, 0.0001 * np.exp(-1.4 * acc.h))
        p_mid_exp = (
            0.003 * sigmoid(3 * (acc.h - 0.3)) * (util > 0.8) * (0.5 + 2 * acc.premium_interest)
        )
        v = rng.random(n)
        for i in np.flatnonzero(mid & (v < p_mid_churn)):
            self._plan(i, CHURN, t + int(rng.integers(21, 50)), t, False, champ[i], x[i], rng)
        for i in np.flatnonzero(mid & (v >= p_mid_churn) & (v < p_mid_churn + p_mid_exp)):
            self._plan(i, EXPANDED, t + int(rng.integers(25, 50)), t, False, champ[i], x[i], rng)

    def _plan(
        self,
        i: int,
        kind: int,
        day: int,
        t: int,
        at_renewal: bool,
        champ: bool,
        x: float,
        rng: np.random.Generator,
    ) -> None:
        acc = self.acc
        acc.plan_kind[i] = kind
        acc.plan_day[i] = max(day, t)
        acc.plan_decided[i] = t
        acc.plan_at_renewal[i] = at_renewal
        reason = ""
        if kind == CHURN:
            if champ:
                reason = "champion_left"
            elif x < -0.3:
                reason = "low_engagement"
            else:
                reasons = ["budget_cut", "acquired", "competitor", "low_engagement"]
                reason = reasons[int(rng.choice(4, p=[0.35, 0.15, 0.3, 0.2]))]
            # Disengagement before leaving; budget cuts and acquisitions come without warning.
            if reason in ("champion_left", "low_engagement", "competitor"):
                acc.drift[i] = -rng.uniform(0.008, 0.03)
        elif kind == EXPANDED:
            reason = "seat_growth" if acc.premium_interest[i] < 0.4 else "premium_adoption"
        elif kind == CONTRACTED:
            reason = "fewer_users"
        acc.plan_reason[i] = reason

    def _execute(self, t: int, rng: np.random.Generator) -> list[tuple]:
        acc = self.acc
        rows = []
        for i in np.flatnonzero((acc.status == 1) & (acc.plan_day == t)):
            kind = int(acc.plan_kind[i])
            old_arr = float(acc.arr[i])
            if kind == CHURN:
                acc.status[i] = 2
                acc.churn_day[i] = t
                delta = -old_arr
            elif kind == EXPANDED:
                if acc.plan[i] < 2 and rng.random() < 0.3 + 0.6 * acc.premium_interest[i]:
                    acc.plan[i] += 1
                    acc.price[i] = PRICE_PER_SEAT[acc.plan[i]] * rng.uniform(0.85, 1.15)
                grow = rng.uniform(1.15, 1.6)
                acc.seats[i] = int(np.ceil(acc.seats[i] * grow))
                acc.docs[i] = 20 + 3 * acc.seats[i]
                acc.arr[i] = round(acc.seats[i] * acc.price[i])
                delta = float(acc.arr[i]) - old_arr
            elif kind == CONTRACTED:
                lo = SEAT_CLIP[acc.plan[i]][0]
                acc.seats[i] = max(lo, int(acc.seats[i] * rng.uniform(0.6, 0.9)))
                acc.arr[i] = round(acc.seats[i] * acc.price[i])
                delta = float(acc.arr[i]) - old_arr
                if delta >= 0:  # already at the plan's minimum: a plain renewal
                    kind, delta = RENEWED, 0.0
            else:
                delta = 0.0
            if acc.plan_at_renewal[i] and kind != CHURN:
                renewal = self.date(int(acc.renewal_day[i]))
                acc.renewal_day[i] = (_add_year(renewal) - self.cfg.start).days
            outcome = C.OUTCOMES[kind]
            rows.append((acc.ids[i], outcome, self.date(t).isoformat(), f"{delta:.2f}"))
            self.truth_outcomes.append(
                (
                    acc.ids[i],
                    outcome,
                    self.date(t).isoformat(),
                    self.date(int(acc.plan_decided[i])).isoformat(),
                    acc.plan_reason[i],
                    f"{delta:.2f}",
                    "true" if acc.plan_at_renewal[i] else "false",
                )
            )
            acc.plan_kind[i] = -1
            acc.plan_day[i] = -1
            acc.drift[i] = 0.0
            if acc.trial[i]:
                acc.trial[i] = 0.0
                acc.refresh_premium_share(i)
        return rows

    # --------------------------------------------------------------- activity
    def activity(self, t: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One day's clean events as column arrays, sorted by time (ms since midnight UTC)."""
        acc, users = self.acc, self.users
        day = self.date(t)
        eng = sigmoid(acc.h)
        season = season_factors(day)[acc.region]
        offsets = utc_offsets(day)
        live = np.flatnonzero(self.live_users(t))
        ua = users.acct[live]
        role = users.role[live]
        p = P_ACTIVE[role] * users.prop[live] * eng[ua] * season[ua] * self.cfg.activity_scale
        on = rng.random(len(live)) < np.minimum(p, 0.95)
        u = live[on]
        role, ua = role[on], ua[on]
        # Sessions: start in the user's office hours (a morning and an afternoon peak).
        n_sess = 1 + rng.poisson(EXTRA_SESSIONS[role] * eng[ua])
        s_user = np.repeat(u, n_sess)
        s_acct = users.acct[s_user]
        s_role = users.role[s_user]
        m = len(s_user)
        morning = rng.random(m) < 0.55
        local_h = np.where(morning, rng.normal(10.2, 1.4, m), rng.normal(14.8, 1.8, m))
        local_s = (np.clip(local_h, 6.5, 21.5) * 3600).astype(np.int64)
        n_act = rng.poisson(
            ACTIONS_PER_SESSION[s_role] * (0.4 + eng[s_acct]) * self.cfg.activity_scale
        )
        dur = (60 + n_act * rng.lognormal(np.log(70), 0.6, m)).astype(np.int64)
        dur = np.minimum(dur, 4 * 3600)
        start = (local_s - offsets[users.tz[s_user]]) % DAY_S
        start = np.minimum(start, DAY_S - 1 - dur)  # a session ends on the day it started
        start_ms = start * 1000 + rng.integers(0, 1000, m)
        end_ms = start_ms + dur * 1000
        sess_id = np.arange(self.sess_counter, self.sess_counter + m)
        self.sess_counter += m

        # Actions inside sessions.
        a_sess = np.repeat(np.arange(m), n_act)
        k = len(a_sess)
        a_role = s_role[a_sess]
        a_acct = s_acct[a_sess]
        cum = np.cumsum(ACTION_MIX, axis=1)[a_role]
        a_kind = (rng.random(k)[:, None] > cum).sum(axis=1).clip(0, 5)
        a_code = ACTION_CODES[a_kind]
        a_ms = start_ms[a_sess] + (rng.random(k) * dur[a_sess] * 1000).astype(np.int64)
        a_ms = np.maximum(a_ms, start_ms[a_sess] + 1)
        is_feat = a_code == C.FEATURE_USED
        fcum = np.cumsum(acc.feature_w[a_acct], axis=1)
        fcum /= fcum[:, -1:]
        feat = np.where(is_feat, (rng.random(k)[:, None] > fcum).sum(axis=1).clip(0, 9), -1)
        # Documents: a Zipf-like pull toward each account's most used documents.
        doc = np.where(is_feat, -1, (acc.docs[a_acct] * rng.random(k) ** 2.5).astype(np.int64))

        # CSM campaigns: each CSM mails their accounts' users every other week (Tue-Thu).
        e_user, e_code, e_ms, e_camp = self._emails(t, day, eng, offsets, rng)

        cols = {
            "user": np.concatenate([s_user, s_user, s_user[a_sess], e_user]),
            "code": np.concatenate(
                [np.full(m, C.SESSION_STARTED), np.full(m, C.SESSION_ENDED), a_code, e_code]
            ),
            "ms": np.concatenate([start_ms, end_ms, a_ms, e_ms]),
            "sess": np.concatenate([sess_id, sess_id, sess_id[a_sess], np.full(len(e_user), -1)]),
            "doc": np.concatenate([np.full(2 * m, -1), doc, np.full(len(e_user), -1)]),
            "feat": np.concatenate([np.full(2 * m, -1), feat, np.full(len(e_user), -1)]),
            "dur": np.concatenate([np.full(m, -1), dur, np.full(k + len(e_user), -1)]),
            "camp": np.concatenate([np.full(2 * m + k, -1), e_camp]),
        }
        order = np.lexsort((cols["code"], cols["user"], cols["ms"]))
        return {name: col[order] for name, col in cols.items()}

    def _emails(
        self, t: int, day: dt.date, eng: np.ndarray, offsets: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        acc, users = self.acc, self.users
        n_csm = len(self.team.csm_name)
        csm_ids = np.arange(n_csm)
        sending = (day.weekday() == 1 + csm_ids % 3) & (((t // 7) + csm_ids) % 2 == 0)
        empty = np.zeros(0, dtype=np.int64)
        if not sending.any():
            return empty, empty, empty, empty
        live = np.flatnonzero(self.live_users(t))
        rec = live[sending[acc.csm[users.acct[live]]]]
        ra = users.acct[rec]
        p_open = np.minimum(0.9, (0.1 + 0.45 * eng[ra]) * users.prop[rec] ** 0.3)
        opened = rec[rng.random(len(rec)) < p_open]
        oa = users.acct[opened]
        clicked = rng.random(len(opened)) < 0.15 + 0.3 * eng[oa]
        local = (9.5 * 3600 + rng.exponential(3 * 3600, len(opened))).astype(np.int64)
        local = np.minimum(local, 22 * 3600)
        o_ms = ((local - offsets[users.tz[opened]]) % DAY_S) * 1000 + rng.integers(
            0, 1000, len(opened)
        )
        o_ms = np.minimum(o_ms, (DAY_S - 700) * 1000)
        c_ms = o_ms + rng.integers(5_000, 600_000, len(opened))
        cu = opened[clicked]
        return (
            np.concatenate([opened, cu]),
            np.concatenate(
                [np.full(len(opened), C.CSM_EMAIL_OPENED), np.full(len(cu), C.CSM_EMAIL_CLICKED)]
            ),
            np.concatenate([o_ms, c_ms[clicked]]),
            np.concatenate([acc.csm[oa], acc.csm[users.acct[cu]]]),
        )

    # ------------------------------------------------------------ dirt, lines
    def _arrival(self, t: int, lo: int, hi: int, rng: np.random.Generator) -> int:
        """A landing day in t+lo..t+hi that exists and is not delayed, else -1."""
        options = [
            d for d in range(t + lo, min(t + hi, self.T - 1) + 1) if d not in self.delayed_arrival
        ]
        return options[int(rng.integers(len(options)))] if options else -1

    def lines(
        self, t: int, ev: dict[str, np.ndarray], rng: np.random.Generator
    ) -> tuple[list[str], dict[int, list[str]]]:
        """Format a day's events as JSON lines with dirt injected.

        Returns the lines for day t's own folder and the lines that land in later folders.
        """
        acc, users, dirt = self.acc, self.users, self.cfg.dirt
        n = len(ev["user"])
        day = self.date(t)
        mids = [f"{x:016x}" for x in _ids(self.msg_counter, n, self.salt).tolist()]
        self.msg_counter += n
        uidx = ev["user"]
        aidx = users.acct[uidx]

        # One dirt kind per event at most: 0 = clean, then in DIRT order below.
        names = (
            "duplicate_rate",
            "late_rate",
            "malformed_rate",
            "wrong_type_rate",
            "unknown_account_rate",
            "unknown_user_rate",
            "future_timestamp_rate",
        )
        rates = [dirt.rate(r) for r in names]
        if t in self.delayed_arrival or t >= self.T - 1:
            rates[1] = 0.0  # a late event needs a later folder to land in
        kind = np.searchsorted(np.cumsum(rates), rng.random(n), side="right") + 1
        kind[kind > len(rates)] = 0
        # No dirt on events ingestion must drop for privacy: then every count below is exact
        # whichever order ingestion applies its privacy, validity and duplicate checks in.
        private = users.opted_out[uidx] | ~acc.consent[aidx]
        kind[private] = 0
        dup, late, bad_json, bad_type, unk_acc, unk_user, future = (kind == k for k in range(1, 8))

        ms = ev["ms"].copy()
        ms[future] += rng.integers(7, 400, int(future.sum())) * DAY_S * 1000
        stamps = np.datetime_as_string(
            np.datetime64(day, "ms") + ms.astype("timedelta64[ms]"), unit="ms"
        )
        ts = [f'"{s}Z"' for s in stamps.tolist()]
        uids = [users.ids[i] for i in uidx.tolist()]
        gids = [acc.ids[a] for a in aidx.tolist()]
        durs = ["null" if d < 0 else str(d) for d in ev["dur"].tolist()]
        for i in np.flatnonzero(bad_type).tolist():
            if ev["code"][i] == C.SESSION_ENDED and rng.random() < 0.6:
                durs[i] = BAD_DURATIONS[int(rng.integers(len(BAD_DURATIONS)))]
            else:
                ts[i] = BAD_TIMESTAMPS[int(rng.integers(len(BAD_TIMESTAMPS)))]
        for i in np.flatnonzero(unk_acc).tolist():
            gids[i] = f"a_{90000 + int(rng.integers(0, 10000)):05d}"
        for i in np.flatnonzero(unk_user).tolist():
            uids[i] = f"u_{gids[i][2:]}_{9000 + int(rng.integers(0, 1000))}"

        # Session ids are formatted once per session (a session has several events).
        first = int(ev["sess"][ev["sess"] >= 0].min()) if (ev["sess"] >= 0).any() else 0
        local = np.where(ev["sess"] >= 0, ev["sess"] - first, -1)
        n_sess = int(local.max()) + 1 if n else 0
        sess_ids = np.arange(first, first + n_sess, dtype=np.uint64)
        sess_lit = [f'"s_{x:016x}"' for x in _mix(sess_ids, self.salt ^ 0x5E55).tolist()]
        sess_lit.append("null")  # index -1
        sess = [sess_lit[j] for j in local.tolist()]
        docs = [
            "null" if d < 0 else f'"d_{acc.ids[a][2:]}_{d:04d}"'
            for d, a in zip(ev["doc"].tolist(), aidx.tolist(), strict=True)
        ]
        ymd = day.strftime("%Y%m%d")
        camps = ["null" if c < 0 else f'"cmp_{c:03d}_{ymd}"' for c in ev["camp"].tolist()]
        feats = [_FEATURE_LIT[f] for f in ev["feat"].tolist()]
        evn = [_EVENT_NAMES[c] for c in ev["code"].tolist()]
        tzs = [_TZ[z] for z in users.tz[uidx].tolist()]
        out = [
            f'{{"type":"track","messageId":"{m}","userId":"{u}","groupId":"{g}","event":"{e}",'
            f'"timestamp":{s},"properties":{{"session_id":{ss},"document_id":{d},"feature":{f},'
            f'"duration_seconds":{du},"campaign_id":{c}}},"context":{{"timezone":"{z}"}}}}\n'
            for m, u, g, e, s, ss, d, f, du, c, z in zip(
                mids, uids, gids, evn, ts, sess, docs, feats, durs, camps, tzs, strict=True
            )
        ]
        for i in np.flatnonzero(bad_json).tolist():
            line = out[i]
            out[i] = line[: int(rng.integers(12, len(line) - 12))] + "\n"

        # Route: late events and later duplicate copies go to later folders; duplicates that
        # stay repeat at the end of the day's own lines.
        later: dict[int, list[str]] = {}
        counts = self.dirt
        moved = np.zeros(n, dtype=bool)
        for i in np.flatnonzero(late).tolist():
            arrival = self._arrival(t, 1, 5, rng)
            if arrival >= 0:
                later.setdefault(arrival, []).append(out[i])
                moved[i] = True
                counts["late_events"] += 1
            else:
                kind[i] = 0  # nowhere to land late: stays on time and clean
        own = list(compress(out, (~moved).tolist()))
        for i in np.flatnonzero(dup).tolist():
            counts["duplicate_events"] += 1
            arrival = -1
            if rng.random() < dirt.duplicate_later_share:
                arrival = self._arrival(t, 1, 3, rng)
            if arrival >= 0:
                later.setdefault(arrival, []).append(out[i])
            else:
                own.append(out[i])
        counts["malformed_lines"] += int(bad_json.sum())
        counts["wrong_types"] += int(bad_type.sum())
        counts["unknown_accounts"] += int(unk_acc.sum())
        counts["unknown_users"] += int(unk_user.sum())
        counts["future_timestamps"] += int(future.sum())
        self.opted_out_events += int(private.sum())
        if t in self.delayed_arrival:
            # Late because the folder is late, and otherwise valid (duplicate copies excluded).
            counts["delayed_day_events"] += int((kind <= 1).sum())
        return own, later

    # -------------------------------------------------------------- snapshots
    def accounts_csv(self, t: int) -> str:
        acc, team = self.acc, self.team
        rows = []
        for i in np.flatnonzero((acc.join_day <= t) & (acc.churn_day > t)).tolist():
            c = int(acc.csm[i])
            mgr = int(team.csm_manager[c])
            rows.append(
                (
                    acc.ids[i],
                    acc.names[i],
                    acc.domains[i],
                    C.PLANS[acc.plan[i]],
                    str(int(acc.seats[i])),
                    f"{acc.arr[i]:.2f}",
                    acc.contract_start[i].isoformat(),
                    self.date(int(acc.renewal_day[i])).isoformat(),
                    team.csm_name[c],
                    team.csm_email[c],
                    team.manager_name[mgr],
                    team.manager_email[mgr],
                    C.INDUSTRIES[acc.industry[i]],
                    C.REGION_NAMES[acc.region[i]],
                    "true" if acc.consent[i] else "false",
                )
            )
        return csv_text(ACCOUNT_COLUMNS, rows)

    def users_csv(self, t: int) -> str:
        acc, users = self.acc, self.users
        n = users.n
        listed = (acc.join_day <= t) & (acc.churn_day > t)
        keep = np.flatnonzero(listed[users.acct[:n]] & (users.created_day[:n] <= t))
        start = np.datetime64(self.cfg.start, "s")
        created = np.datetime_as_string(
            start
            + (users.created_day[keep] * DAY_S + users.created_sec[keep]).astype("timedelta64[s]")
        )
        gone = users.deact_day[keep] <= t
        deact = np.datetime_as_string(
            start
            + (np.where(gone, users.deact_day[keep], 0) * DAY_S + users.deact_sec[keep]).astype(
                "timedelta64[s]"
            )
        )
        ids, emails = users.ids, users.emails
        body = "".join(
            f"{ids[u]},{acc.ids[a]},{emails[u]},{C.ROLES[r]},{c}Z,{d + 'Z' if g else ''},"
            f"{'true' if o else 'false'}\n"
            for u, a, r, c, d, g, o in zip(
                keep.tolist(),
                users.acct[keep].tolist(),
                users.role[keep].tolist(),
                created.tolist(),
                deact.tolist(),
                gone.tolist(),
                users.opted_out[keep].tolist(),
                strict=True,
            )
        )
        return ",".join(USER_COLUMNS) + "\n" + body

    # -------------------------------------------------------------------- run
    def run(self, progress: Callable[[str], None] | None) -> SimSummary:
        started = time.perf_counter()
        health = None
        if self.truth_dir is not None:
            health = GzipCsvStream(
                self.truth_dir / "health_daily.csv.gz", ("account_id", "date", "latent_health")
            )
        # Files are compressed and written on a second thread (zlib releases the GIL) while the
        # next day is simulated; at most one day waits, so memory stays bounded.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="landing-writer")
        try:
            self._days(pool, health, progress, started)
        finally:
            pool.shutdown(wait=True)
            if health is not None:
                health.close()
        assert not self.pending and not self.pending_outcomes, "lines left undelivered"
        if self.truth_dir is not None:
            self._write_truth()
        return SimSummary(
            days=self.T,
            accounts=self.acc.n,
            users=self.users.n,
            events_written=self.events_written,
            dirt=dict(self.dirt),
            outcomes=dict(self.outcome_counts),
            folders_written=self.folders,
            snapshots_written=self.snapshots,
            opted_out_events=self.opted_out_events,
            seconds=round(time.perf_counter() - started, 3),
        )

    def _days(
        self,
        pool: ThreadPoolExecutor,
        health: GzipCsvStream | None,
        progress: Callable[[str], None] | None,
        started: float,
    ) -> None:
        cfg = self.cfg
        last_report = started
        inflight: Future | None = None
        for t in range(self.T):
            day = self.date(t)
            outcome_rows = self.lifecycle(t, np.random.default_rng([cfg.seed, 1, t]))
            ev = self.activity(t, np.random.default_rng([cfg.seed, 2, t]))
            rd = np.random.default_rng([cfg.seed, 3, t])
            own, later = self.lines(t, ev, rd)
            for arrival, lines in later.items():
                self.pending.setdefault(arrival, []).extend(lines)
            if health is not None:
                acc = self.acc
                alive = np.flatnonzero((acc.status == 1) | (acc.churn_day == t))
                iso = day.isoformat()
                health.write(
                    "".join(
                        f"{acc.ids[i]},{iso},{h:.4f}\n"
                        for i, h in zip(alive.tolist(), acc.h[alive].tolist(), strict=True)
                    )
                )
            folder = self.out_dir / day.isoformat()
            if inflight is not None:
                inflight.result()  # re-raises a failed write here
                inflight = None
            if t in self.delayed_arrival:
                arrival = self.delayed_arrival[t]
                self.pending.setdefault(arrival, []).extend(own)
                self.pending_outcomes.setdefault(arrival, []).extend(outcome_rows)
                self.dirt["delayed_days"] += 1
                clear_folder(folder)  # a stale folder from an earlier run must not "arrive"
            else:
                lines = own + self.pending.pop(t, [])
                outcomes = self.pending_outcomes.pop(t, []) + outcome_rows
                snapshot = t == 0 or day.weekday() == 0
                empty = 0
                if rd.random() < cfg.dirt.rate("empty_file_rate"):
                    empty = 1 + int(rd.integers(0, 2))
                    self.dirt["empty_files"] += 1
                inflight = pool.submit(
                    write_folder,
                    folder,
                    day,
                    lines,
                    cfg.events_per_file,
                    cfg.compresslevel,
                    empty,
                    self.accounts_csv(t) if snapshot else None,
                    self.users_csv(t) if snapshot else None,
                    csv_text(OUTCOME_COLUMNS, outcomes),
                )
                self.events_written += len(lines)
                self.folders += 1
                self.snapshots += snapshot
                for row in outcomes:
                    self.outcome_counts[row[1]] += 1
            now = time.perf_counter()
            if progress is not None and (now - last_report >= 2.0 or t == self.T - 1):
                last_report = now
                rate = self.events_written / max(now - started, 1e-9)
                progress(
                    f"day {t + 1}/{self.T} ({day}): {self.events_written:,} events written, "
                    f"{rate:,.0f} events/s"
                )
        if inflight is not None:
            inflight.result()

    def _write_truth(self) -> None:
        acc = self.acc
        assert self.truth_dir is not None
        self.truth_dir.mkdir(parents=True, exist_ok=True)
        last: dict[str, tuple] = {}
        for row in self.truth_outcomes:
            last[row[0]] = row
        rows = []
        for i in range(acc.n):
            joined = (
                self.date(int(acc.join_day[i])) if acc.join_day[i] > 0 else acc.contract_start[i]
            )
            churned = acc.status[i] == 2
            pending = acc.plan_kind[i] >= 0
            lo = last.get(acc.ids[i])
            left = acc.champion_left_dates[i]
            rows.append(
                (
                    acc.ids[i],
                    joined.isoformat(),
                    C.PLANS[acc.initial_plan[i]],
                    C.PLANS[acc.plan[i]],
                    "churned" if churned else ("active" if acc.status[i] == 1 else "not_joined"),
                    C.OUTCOMES[acc.plan_kind[i]] if pending else "",
                    self.date(int(acc.plan_day[i])).isoformat() if pending else "",
                    acc.plan_reason[i] if pending else "",
                    lo[1] if lo else "",
                    lo[2] if lo else "",
                    self.date(int(acc.churn_day[i])).isoformat() if churned else "",
                    lo[4] if churned and lo else "",
                    left[-1].isoformat() if left else "",
                    str(len(left)),
                    f"{acc.mu[i]:.4f}",
                    "true" if acc.consent[i] else "false",
                )
            )
        cols = (
            "account_id",
            "joined_date",
            "plan_at_start",
            "plan_at_end",
            "final_status",
            "planned_outcome",
            "planned_outcome_date",
            "planned_reason",
            "last_outcome",
            "last_outcome_date",
            "churn_date",
            "churn_reason",
            "champion_left_date",
            "champion_left_count",
            "baseline_health",
            "tracking_consent",
        )
        (self.truth_dir / "accounts.csv").write_text(csv_text(cols, rows))
        cols = (
            "account_id",
            "outcome",
            "effective_date",
            "decided_date",
            "reason",
            "arr_delta",
            "at_renewal",
        )
        (self.truth_dir / "outcomes.csv").write_text(csv_text(cols, self.truth_outcomes))
        champ = [
            (acc.ids[i], d.isoformat()) for i in range(acc.n) for d in acc.champion_left_dates[i]
        ]
        (self.truth_dir / "champion_departures.csv").write_text(
            csv_text(("account_id", "left_date"), champ)
        )


def simulate(
    cfg: SimConfig,
    out_dir: Path,
    truth_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> SimSummary:
    """Simulate the portal from cfg.start to cfg.end, writing one landing folder per day.

    Writes into `out_dir` (created if missing; only the simulator's own files in the day folders
    it writes are replaced) and, when given, the hidden ground truth into `truth_dir`.
    """
    return Simulation(cfg, Path(out_dir), truth_dir).run(progress)
