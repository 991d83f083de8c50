"""The simulated customer base: accounts, the CSM team that owns them, and their portal users."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from simulator.catalog import (
    FEATURES,
    INDUSTRIES,
    PREMIUM_FEATURES,
    REGION_NAMES,
    REGIONS,
    TIME_ZONES,
)

FIRST_NAMES = (
    "Ada Alex Amara Ana Ben Bruno Carla Chen Chloe Dana David Elena Emil Fatima Felix Grace Hana "
    "Hugo Ines Ivan Jade James Jonas Julia Kai Kenji Lara Leo Lina Luca Maya Mateo Mia Nadia Noah "
    "Nora Omar Priya Rafael Rosa Sam Sara Sofia Tariq Theo Uma Victor Wei Yara Zoe"
).split()
LAST_NAMES = (
    "Abbott Alvarez Becker Brooks Castro Chopra Costa Dubois Eriksen Fischer Garcia Hansen Ito "
    "Jensen Kato Keller Kowalski Larsen Lopez Martin Meyer Moreau Nakamura Novak Okafor Olsen "
    "Patel Perez Quinn Rossi Sato Schmidt Silva Singh Tanaka Torres Urban Vargas Weber Wong Young "
    "Zimmer"
).split()
NAME_LEFT = (
    "Acme Apex Atlas Blue Bright Cedar Clear Coastal Crest Delta Evergreen Falcon First Golden "
    "Granite Harbor Horizon Iron Keystone Lake Maple Meridian Nimbus North Oak Orbit Pioneer Prime "
    "Quantum River Sierra Silver Summit Swift Terra True Union Vertex Vista Willow"
).split()
NAME_RIGHT = (
    "Analytics Bank Capital Clinics Foods Freight Health Holdings Insurance Labs Learning Legal "
    "Logistics Media Medical Motors Partners Pharma Retail Robotics Systems Software Solutions "
    "Supply Telecom Ventures Works"
).split()
VENDOR_DOMAIN = "portal-vendor.example"

PLAN_PROBS = np.array([0.45, 0.38, 0.17])
REGION_PROBS = np.array([0.45, 0.32, 0.15, 0.08])
SEAT_MEDIAN = np.array([8.0, 30.0, 110.0])
SEAT_SIGMA = np.array([0.45, 0.4, 0.5])
SEAT_CLIP = ((3, 25), (10, 90), (40, 500))
PRICE_PER_SEAT = np.array([360.0, 600.0, 900.0])
# Contract terms: 1, 2 or 3 years; notice needed to leave at the end of a term.
TERM_PROBS = np.array([0.7, 0.2, 0.1])
NOTICE_DAYS = np.array([30, 60, 90])
NOTICE_PROBS = np.array([0.4, 0.4, 0.2])
AUTO_RENEW_SHARE = 0.6
# Share of feature use that goes to premium features, by plan (others only trial them).
PREMIUM_SHARE = np.array([0.02, 0.08, 0.35])

_TZ_INDEX = {tz: i for i, tz in enumerate(TIME_ZONES)}
REGION_TZ = [np.array([_TZ_INDEX[tz] for tz in REGIONS[r]]) for r in REGION_NAMES]


def _slug(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum() or ch == " ").replace(" ", "-")


@dataclass
class Team:
    """CSMs (each with a manager) who own the accounts."""

    csm_name: list[str]
    csm_email: list[str]
    csm_manager: np.ndarray
    manager_name: list[str]
    manager_email: list[str]


def make_team(n_accounts: int, rng: np.random.Generator) -> Team:
    """About one CSM per 55 accounts (at least 2), and one manager per 3-5 CSMs."""
    n_csm = max(2, round(n_accounts / 55))
    n_mgr = max(1, round(n_csm / 4))
    people = _unique_people(n_csm + n_mgr, rng)
    csm, mgr = people[:n_csm], people[n_csm:]
    # Managers get consecutive blocks of CSMs, so team sizes differ by at most one.
    manager = (np.arange(n_csm) * n_mgr) // n_csm
    return Team(
        csm_name=[f"{f} {last}" for f, last in csm],
        csm_email=[_email(f, last, VENDOR_DOMAIN) for f, last in csm],
        csm_manager=manager,
        manager_name=[f"{f} {last}" for f, last in mgr],
        manager_email=[_email(f, last, VENDOR_DOMAIN) for f, last in mgr],
    )


def _email(first: str, last: str, domain: str) -> str:
    return f"{first.lower()}.{last.lower()}@{domain}"


def _unique_people(n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    pairs = [(f, last) for f in FIRST_NAMES for last in LAST_NAMES]
    order = rng.permutation(len(pairs))
    out = [pairs[i] for i in order[: min(n, len(pairs))]]
    while len(out) < n:  # more people than name pairs: number the rest
        f, last = pairs[order[len(out) % len(pairs)]]
        out.append((f, f"{last}{len(out)}"))
    return out


class Accounts:
    """All accounts of the run (initial and later-joining), as column arrays indexed by account."""

    def __init__(
        self,
        n_initial: int,
        n_new: int,
        start: dt.date,
        days: int,
        team: Team,
        rng: np.random.Generator,
        no_consent_share: float = 0.03,
        product_led_share: float = 0.3,
    ) -> None:
        n = n_initial + n_new
        self.n = n
        self.ids = [f"a_{i:05d}" for i in range(n)]
        self.names, self.domains = self._names(n, rng)
        self.plan = rng.choice(3, size=n, p=PLAN_PROBS).astype(np.int8)
        self.contract = rng.random(n) >= product_led_share
        self.plan[~self.contract & (self.plan == 2)] = 1  # self-serve: starter or growth
        raw_seats = np.exp(
            np.log(SEAT_MEDIAN[self.plan]) + SEAT_SIGMA[self.plan] * rng.normal(size=n)
        )
        lo = np.array([c[0] for c in SEAT_CLIP])[self.plan]
        hi = np.array([c[1] for c in SEAT_CLIP])[self.plan]
        self.seats = np.clip(np.round(raw_seats), lo, hi).astype(np.int64)
        self.price = PRICE_PER_SEAT[self.plan] * rng.uniform(0.85, 1.15, size=n)
        self.arr = np.round(self.seats * self.price)
        self.industry = rng.integers(0, len(INDUSTRIES), size=n)
        self.region = rng.choice(len(REGION_NAMES), size=n, p=REGION_PROBS)
        self.tz = np.array([rng.choice(REGION_TZ[r]) for r in self.region])
        # Later accounts sign on Mondays spread over the run; initial ones signed 1-48 months ago.
        mondays = [t for t in range(1, days) if (start + dt.timedelta(days=t)).weekday() == 0]
        self.join_day = np.zeros(n, dtype=np.int64)
        if n_new and mondays:
            self.join_day[n_initial:] = np.sort(rng.choice(mondays, size=n_new))
        ago = rng.integers(30, 4 * 365, size=n)
        self.contract_start = [
            start - dt.timedelta(days=int(ago[i]))
            if i < n_initial
            else start + dt.timedelta(days=int(self.join_day[i]))
            for i in range(n)
        ]
        # Contracts: most accounts sign 1-, 2- or 3-year terms (some renew automatically unless
        # notice is given in time); the rest are product-led self-serve accounts with no
        # contract and a monthly bill, which leave by cancelling or simply by going quiet.
        self.term_years = np.where(self.contract, rng.choice([1, 2, 3], size=n, p=TERM_PROBS), 0)
        self.auto_renew = self.contract & (rng.random(n) < AUTO_RENEW_SHARE)
        self.notice_days = np.where(
            self.contract, rng.choice(NOTICE_DAYS, size=n, p=NOTICE_PROBS), 0
        ).astype(np.int64)
        self.renewal_day = np.array(
            [
                (
                    next_term_end(
                        self.contract_start[i],
                        int(self.term_years[i]),
                        start + dt.timedelta(days=int(self.join_day[i]) + 1),
                    )
                    - start
                ).days
                if self.contract[i]
                else -1
                for i in range(n)
            ],
            dtype=np.int64,
        )
        # The day the renewal is decided: before the notice deadline, 0-4 weeks early.
        self.decide_day = np.where(
            self.contract,
            self.renewal_day - self.notice_days - rng.integers(0, 29, size=n),
            -1,
        ).astype(np.int64)
        # Books of uneven size: Dirichlet weights per CSM.
        weights = rng.dirichlet(np.full(len(team.csm_name), 8.0))
        self.csm = rng.choice(len(team.csm_name), size=n, p=weights)
        draws = rng.random(n)
        self.consent = draws >= no_consent_share
        if no_consent_share > 0 and n_initial >= 10 and self.consent[:n_initial].all():
            # Small runs still get one account without consent, so that path is exercised.
            self.consent[int(np.argmin(draws[:n_initial]))] = False
        # Latent health: a long-run level per account; the state starts near it.
        self.mu = rng.normal(0.45, 0.75, size=n)
        self.h = self.mu + rng.normal(0, 0.4, size=n)
        self.mu_shock = np.zeros(n)
        self.drift = np.zeros(n)
        self.premium_interest = rng.beta(1.5, 4.0, size=n)
        self.trial = np.zeros(n)  # premium-trial level (0..1), raises premium feature use
        self.trial_end = np.full(n, -1, dtype=np.int64)  # last day of a trial that may not convert
        self.feature_w = self._feature_weights(rng)
        self.docs = (20 + 3 * self.seats).astype(np.int64)
        # Lifecycle: 0 = not yet a customer, 1 = active, 2 = churned.
        self.status = np.where(self.join_day == 0, 1, 0).astype(np.int8)
        self.churn_day = np.full(n, 1 << 30, dtype=np.int64)
        self.plan_kind = np.full(n, -1, dtype=np.int8)  # pending decision (OUTCOMES index)
        self.plan_day = np.full(n, -1, dtype=np.int64)
        self.plan_decided = np.full(n, -1, dtype=np.int64)
        self.plan_reason = [""] * n
        self.plan_at_renewal = np.zeros(n, dtype=bool)
        # Disengagement: the day the account started fading (-1 = not fading) and why; a quiet
        # account has stopped using the portal without cancelling anything.
        self.fade_start = np.full(n, -1, dtype=np.int64)
        self.fade_reason = [""] * n
        self.quiet = np.zeros(n, dtype=bool)
        self.quiet_day = np.full(n, -1, dtype=np.int64)
        self.admin_user = np.full(n, -1, dtype=np.int64)
        self.admin_replace_day = np.full(n, -1, dtype=np.int64)
        self.champion_left_day = np.full(n, -(1 << 30), dtype=np.int64)
        self.champion_left_dates: list[list[dt.date]] = [[] for _ in range(n)]
        self.next_user_k = np.zeros(n, dtype=np.int64)
        self.initial_plan = self.plan.copy()

    @staticmethod
    def _names(n: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
        names, domains, seen = [], [], set()
        for i in range(n):
            left = NAME_LEFT[rng.integers(len(NAME_LEFT))]
            name = f"{left} {NAME_RIGHT[rng.integers(len(NAME_RIGHT))]}"
            if name in seen:
                name = f"{name} {i}"
            seen.add(name)
            names.append(name)
            domains.append(f"{_slug(name)}.example")
        return names, domains

    def _feature_weights(self, rng: np.random.Generator) -> np.ndarray:
        std = rng.dirichlet([3.0, 2.5, 3.0, 1.5, 1.0, 1.0], size=self.n)
        prem = rng.dirichlet([1.5, 1.5, 1.0, 0.8], size=self.n)
        share = PREMIUM_SHARE[self.plan] * (0.5 + self.premium_interest)
        w = np.hstack([std * (1 - share)[:, None], prem * share[:, None]])
        assert w.shape[1] == len(FEATURES) and len(PREMIUM_FEATURES) == 4
        return w

    def refresh_premium_share(self, i: int) -> None:
        """Re-weight premium use after a plan change or during a trial."""
        w = self.feature_w[i]
        std, prem = w[:6] / w[:6].sum(), w[6:] / w[6:].sum()
        share = min(
            0.6,
            PREMIUM_SHARE[self.plan[i]] * (0.5 + self.premium_interest[i]) + 0.25 * self.trial[i],
        )
        self.feature_w[i] = np.concatenate([std * (1 - share), prem * share])


def add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return dt.date(day.year + years, 2, 28)


def next_term_end(contract_start: dt.date, term_years: int, on_or_after: dt.date) -> dt.date:
    """The first end of a term (contract start + k terms) on or after a day."""
    k = 1
    while True:
        cand = add_years(contract_start, k * term_years)
        if cand >= on_or_after:
            return cand
        k += 1


class Users:
    """Portal users of every account, as growable column arrays indexed by user."""

    def __init__(self, capacity: int = 1024, opt_out_share: float = 0.04) -> None:
        self.n = 0
        self.opt_out_share = opt_out_share
        self._cap = capacity
        self.acct = np.zeros(capacity, dtype=np.int64)
        self.role = np.zeros(capacity, dtype=np.int8)
        self.prop = np.zeros(capacity)
        self.tz = np.zeros(capacity, dtype=np.int64)
        self.created_day = np.zeros(capacity, dtype=np.int64)
        self.created_sec = np.zeros(capacity, dtype=np.int64)
        self.active_from = np.zeros(capacity, dtype=np.int64)
        self.deact_day = np.full(capacity, 1 << 30, dtype=np.int64)
        self.deact_sec = np.zeros(capacity, dtype=np.int64)
        self.opted_out = np.zeros(capacity, dtype=bool)
        self.ids: list[str] = []
        self.emails: list[str] = []

    def _grow(self, need: int) -> None:
        cap = self._cap
        while cap < need:
            cap *= 2
        if cap == self._cap:
            return
        for name in (
            "acct",
            "role",
            "prop",
            "tz",
            "created_day",
            "created_sec",
            "active_from",
            "deact_day",
            "deact_sec",
            "opted_out",
        ):
            old = getattr(self, name)
            fill = (1 << 30) if name == "deact_day" else 0
            new = np.full(cap, fill, dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)
        self._cap = cap

    def add(
        self,
        accounts: Accounts,
        acct: int,
        roles: np.ndarray,
        created_day: np.ndarray,
        active_from: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Add users to one account; returns their indices."""
        m = len(roles)
        self._grow(self.n + m)
        idx = np.arange(self.n, self.n + m)
        k0 = int(accounts.next_user_k[acct])
        accounts.next_user_k[acct] += m
        self.acct[idx] = acct
        self.role[idx] = roles
        self.prop[idx] = np.exp(rng.normal(0.0, 0.5, size=m))
        home = accounts.tz[acct]
        region_tz = REGION_TZ[accounts.region[acct]]
        away = rng.choice(region_tz, size=m)
        self.tz[idx] = np.where(rng.random(m) < 0.8, home, away)
        self.created_day[idx] = created_day
        self.created_sec[idx] = rng.integers(8 * 3600, 18 * 3600, size=m)
        self.active_from[idx] = active_from
        self.opted_out[idx] = rng.random(m) < self.opt_out_share
        first = rng.integers(0, len(FIRST_NAMES), size=m)
        last = rng.integers(0, len(LAST_NAMES), size=m)
        aid = accounts.ids[acct][2:]
        dom = accounts.domains[acct]
        for j in range(m):
            k = k0 + j
            self.ids.append(f"u_{aid}_{k:03d}")
            self.emails.append(
                f"{FIRST_NAMES[first[j]].lower()}.{LAST_NAMES[last[j]].lower()}{k}@{dom}"
            )
        self.n += m
        return idx


# ------------------------------------------------------------------------- who uses the portal
# These take the running simulation (simulator.engine.Simulation): its accounts, users, the
# calendar (date, next_snapshot) and config.

EXPANDING = 2  # decisions.EXPANDED (the outcome index), repeated here to avoid a cycle


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def initial_users(sim, i: int, rng: np.random.Generator) -> None:
    """An account that exists at the start: 45-80 % of its seats in use, its champion first."""
    acc = sim.acc
    util = np.clip(0.45 + 0.35 * _sigmoid(acc.h[i]) + rng.normal(0, 0.1), 0.25, 1.0)
    m = max(2, int(round(acc.seats[i] * util)))
    roles = np.where(rng.random(m) < 0.22, 1, 2).astype(np.int8)
    roles[0] = 0
    age = (sim.cfg.start - acc.contract_start[i]).days
    created = -rng.integers(0, max(1, age), size=m)
    created[0] = -age  # the champion set the account up
    idx = sim.users.add(acc, i, roles, created, created, rng)
    acc.admin_user[i] = idx[0]


def new_customers(sim, t: int, rng: np.random.Generator) -> None:
    """Customers signing today (Mondays, so the day's snapshot lists them and their users)."""
    acc, users = sim.acc, sim.users
    for i in np.flatnonzero((acc.status == 0) & (acc.join_day == t)):
        acc.status[i] = 1
        acc.h[i] += 0.5  # onboarding enthusiasm
        m = max(2, int(round(acc.seats[i] * 0.25)))
        roles = np.where(rng.random(m) < 0.3, 1, 2).astype(np.int8)
        roles[0] = 0
        days = np.full(m, t)
        acc.admin_user[i] = users.add(acc, i, roles, days, days, rng)[0]


def champion_departures(
    sim, t: int, active: np.ndarray, live: np.ndarray, rng: np.random.Generator
) -> None:
    """The admin leaves (about 1/800 a day, twice that when unhealthy); health drops; a
    successor is named 10-60 days later.
    """
    acc, users, n = sim.acc, sim.users, sim.acc.n
    leave_p = (1 / 800) * (1 + (acc.h < -0.5))
    cand = active & (acc.admin_user >= 0) & (rng.random(n) < leave_p)
    for i in np.flatnonzero(cand):
        u = acc.admin_user[i]
        users.deact_day[u] = t
        users.deact_sec[u] = rng.integers(8 * 3600, 19 * 3600)
        acc.admin_user[i] = -1
        acc.admin_replace_day[i] = t + int(rng.integers(10, 60))
        acc.champion_left_day[i] = t
        acc.champion_left_dates[i].append(sim.date(t))
        acc.h[i] -= rng.uniform(0.6, 1.2)
        acc.mu_shock[i] -= 0.7
    for i in np.flatnonzero(active & (acc.admin_replace_day == t)):
        promote_admin(sim, i, t, live, rng)


def promote_admin(sim, i: int, t: int, live: np.ndarray, rng: np.random.Generator) -> None:
    acc, users = sim.acc, sim.users
    # `live` was computed before today's new users were added; they cannot be promoted yet.
    mine = np.flatnonzero(live & (users.acct[: len(live)] == i))
    if len(mine):
        roles = users.role[mine]
        pool = mine[roles == 1] if (roles == 1).any() else mine
        u = int(pool[rng.integers(len(pool))])
        users.role[u] = 0
    else:
        s = sim.next_snapshot(t)
        u = int(users.add(acc, i, np.array([0], np.int8), np.array([t]), np.array([s]), rng)[0])
    acc.admin_user[i] = u
    acc.admin_replace_day[i] = -1
    acc.h[i] += 0.3


def user_turnover(
    sim,
    t: int,
    active: np.ndarray,
    live: np.ndarray,
    eng: np.ndarray,
    util: np.ndarray,
    n_live: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Ordinary users leave (more often in unhealthy accounts) and join (toward a target
    utilisation that rises with health and while an expansion is being planned).
    """
    acc, users = sim.acc, sim.users
    n_users = len(live)  # a successor created just now cannot quit today
    ua = users.acct[:n_users]
    quit_p = (1 / 900) * (1 + 1.5 * (1 - eng[ua]))
    quit = live & (users.role[:n_users] != 0) & (rng.random(n_users) < quit_p)
    qi = np.flatnonzero(quit)
    users.deact_day[qi] = t
    users.deact_sec[qi] = rng.integers(8 * 3600, 19 * 3600, size=len(qi))
    target = acc.seats * (0.5 + 0.4 * eng + 0.35 * (acc.plan_kind == EXPANDING))
    lam = np.where(
        active & ~acc.quiet, np.maximum(0.0, target - n_live) * 0.012 + 0.0015 * acc.seats * eng, 0
    )
    lam = np.where(util > 1.12, 0.0, lam)
    joins = rng.poisson(lam)
    start_on = sim.next_snapshot(t)
    for i in np.flatnonzero(joins):
        m = int(joins[i])
        roles = np.where(rng.random(m) < 0.2, 1, 2).astype(np.int8)
        users.add(acc, i, roles, np.full(m, t), np.full(m, start_on), rng)
