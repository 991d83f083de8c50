"""What customers decide and when: latent health, disengagement, renewals, cancellations with
notice, downgrades, expansions, premium trials, and the outcome rows on the effective date.

Churn is not a calendar event: an account first fades (its latent health drifts down for weeks
or months, or it recovers), and only then decides; once it has decided to leave, its usage winds
down until the effective date. A contract decides before its notice
deadline, weeks ahead of the renewal (fading accounts mostly leave, auto-renewing ones stay more
often); a contract that fades badly may also terminate mid-term with its notice period; a
product-led account with no contract cancels at its next monthly bill or just goes quiet. Budget
cuts and acquisitions still end contracts without any warning in the data.
"""

from __future__ import annotations

import numpy as np

from simulator import catalog as C
from simulator.population import PRICE_PER_SEAT, SEAT_CLIP, add_years

CHURN, RENEWED, EXPANDED, CONTRACTED = range(4)

# Disengagement onset per day (times e^(-1.1 h), x3 right after the champion left), and the
# daily chance that a fading account recovers before it decides anything.
FADE_ONSET = 1 / 900
FADE_RECOVERY = 1 / 150
# Product-led accounts that have faded 3+ weeks decide at this daily rate; this share cancels,
# the rest simply go quiet (no outcome ever: only silence, which the pipeline calls dormancy).
SELF_SERVE_DECISION = 1 / 80
SELF_SERVE_CANCEL_SHARE = 0.7
# Contracts: termination mid-term for accounts fading 4+ weeks (daily, times sigmoid(-1.5 - x)),
# and contract churn with no warning at all (budget cut, acquisition) at a renewal decision.
MID_TERM_TERMINATION = 1 / 400
SURPRISE_CHURN = 0.02


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def evolve_health(sim, rng: np.random.Generator) -> None:
    """Latent health: mean-reverting random walk with rare shocks, plus any disengagement."""
    acc, n = sim.acc, sim.acc.n
    acc.h += 0.03 * (acc.mu + acc.mu_shock - acc.h) + 0.09 * rng.normal(size=n) + acc.drift
    neg = rng.random(n) < 1 / 300
    pos = rng.random(n) < 1 / 600
    acc.h += np.where(neg, rng.normal(-0.9, 0.35, size=n), 0.0)
    acc.h += np.where(pos, rng.normal(0.6, 0.25, size=n), 0.0)
    acc.mu_shock *= 0.985


def _fade(sim, t: int, champ: np.ndarray, rng: np.random.Generator) -> None:
    """Accounts start disengaging (more often when unhealthy or just after the champion left);
    some fading accounts recover before they decide anything.
    """
    acc, n = sim.acc, sim.acc.n
    idle = (acc.status == 1) & (acc.fade_start < 0) & (acc.plan_kind < 0) & ~acc.quiet
    hazard = FADE_ONSET * np.exp(-1.1 * acc.h) * (1 + 2.0 * champ)
    draws, strength = rng.random(n), rng.uniform(0.01, 0.03, size=n)
    for i in np.flatnonzero(idle & (draws < hazard)):
        acc.fade_start[i] = t
        if champ[i]:
            acc.fade_reason[i] = "champion_left"
        else:
            acc.fade_reason[i] = "low_engagement" if acc.h[i] < 0.2 else "competitor"
        acc.drift[i] = -strength[i]
    recover = (acc.fade_start >= 0) & (acc.fade_start < t) & (acc.plan_kind < 0)
    for i in np.flatnonzero(recover & (rng.random(n) < FADE_RECOVERY)):
        _stop_fading(acc, i)


def _stop_fading(acc, i: int) -> None:
    acc.fade_start[i] = -1
    acc.fade_reason[i] = ""
    acc.drift[i] = 0.0


def _next_bill(sim, i: int, t: int) -> int:
    """A product-led account's next monthly bill at least a week away (its signup day of month,
    the 28th at most).
    """
    want = min(sim.acc.contract_start[i].day, 28)
    day = t + 7
    while sim.date(day).day != want:
        day += 1
    return day


def decide(sim, t: int, eng: np.ndarray, util: np.ndarray, rng: np.random.Generator) -> None:
    """Today's decisions: fading onsets, renewal decisions on each contract's decision day,
    mid-term terminations and downgrades, product-led cancellations, expansions.
    """
    acc = sim.acc
    n = acc.n
    champ = ((t - acc.champion_left_day) < 150) | (acc.admin_user < 0)
    _fade(sim, t, champ, rng)
    free = (acc.status == 1) & (acc.plan_kind < 0)
    x = acc.h + rng.normal(0, 0.6, size=n)
    fading = acc.fade_start >= 0
    faded_for = np.where(fading, t - acc.fade_start, 0)
    u = rng.random((6, n))
    # Once a customer has decided to leave it winds down: usage falls away until the date.
    wind_down = rng.uniform(0.03, 0.07, size=n)
    p_exp = sigmoid(-1.9 + 0.8 * x + 3.0 * (util - 0.8) + 2.0 * (acc.premium_interest - 0.3))
    p_con = sigmoid(-2.6 - 1.0 * x + 2.0 * (0.6 - util))

    # Contracts decide on their decision day, before the notice deadline of the renewal.
    p_churn = sigmoid(
        -2.4
        - 1.1 * x
        + 3.0 * np.minimum(faded_for / 60.0, 1.0)
        + 0.5 * champ
        - 0.5 * acc.auto_renew
    )
    for i in np.flatnonzero(free & acc.contract & (acc.decide_day == t)):
        day = int(acc.renewal_day[i])
        if u[0, i] < p_churn[i]:
            reason = acc.fade_reason[i] or ("low_engagement" if x[i] < -0.3 else "competitor")
            _plan(sim, i, CHURN, day, t, True, reason)
            acc.drift[i] = -wind_down[i]
        elif u[1, i] < SURPRISE_CHURN:
            reason = "budget_cut" if u[2, i] < 0.7 else "acquired"
            _plan(sim, i, CHURN, day, t, True, reason)
            acc.drift[i] = 0.0  # no warning in the data
        elif u[2, i] < p_exp[i]:
            _plan(sim, i, EXPANDED, day, t, True, _expansion_reason(acc, i))
        elif u[3, i] < p_con[i]:
            _plan(sim, i, CONTRACTED, day, t, True, "fewer_users")
        else:
            _plan(sim, i, RENEWED, day, t, True, "")

    # Mid-term: a contract that has faded for 4+ weeks may terminate with its notice period;
    # unused seats are sometimes cut (a downgrade) without waiting for the renewal.
    far = free & acc.contract & (acc.renewal_day - t > acc.notice_days + 45)
    p_term = np.where(faded_for >= 28, MID_TERM_TERMINATION * sigmoid(-1.5 - x), 0.0)
    for i in np.flatnonzero(far & (u[4] < p_term)):
        _plan(sim, i, CHURN, t + int(acc.notice_days[i]), t, False, acc.fade_reason[i])
        acc.drift[i] = -wind_down[i]
    p_down = 0.0004 * sigmoid(-x + 3.0 * (0.5 - util))
    for i in np.flatnonzero(far & ~fading & (u[5] < p_down)):
        _plan(sim, i, CONTRACTED, t + int(rng.integers(14, 45)), t, False, "fewer_users")

    # Product-led: after 3+ weeks of fading, cancel at the next bill or just stop using it.
    self_serve = free & ~acc.contract & ~acc.quiet & (faded_for >= 21)
    for i in np.flatnonzero(self_serve & (u[4] < SELF_SERVE_DECISION)):
        if u[5, i] < SELF_SERVE_CANCEL_SHARE:
            _plan(sim, i, CHURN, _next_bill(sim, i, t), t, False, acc.fade_reason[i])
            acc.drift[i] = -wind_down[i]
        else:
            acc.quiet[i] = True
            acc.quiet_day[i] = t
            sim.quiet_accounts.append((acc.ids[i], sim.date(t).isoformat(), acc.fade_reason[i]))

    # Expansions between renewals (or any time without a contract): healthy accounts above 80 %
    # seat use, 25-50 days ahead.
    mid = free & ~acc.quiet & (~acc.contract | (acc.renewal_day - t > 90))
    p_mid_exp = 0.003 * sigmoid(3 * (acc.h - 0.3)) * (util > 0.8) * (0.5 + 2 * acc.premium_interest)
    v = rng.random(n)
    for i in np.flatnonzero(mid & ~fading & (v < p_mid_exp)):
        _plan(sim, i, EXPANDED, t + int(rng.integers(25, 50)), t, False, _expansion_reason(acc, i))


def _expansion_reason(acc, i: int) -> str:
    return "seat_growth" if acc.premium_interest[i] < 0.4 else "premium_adoption"


def _plan(sim, i: int, kind: int, day: int, t: int, at_renewal: bool, reason: str) -> None:
    acc = sim.acc
    acc.plan_kind[i] = kind
    acc.plan_day[i] = max(day, t)
    acc.plan_decided[i] = t
    acc.plan_at_renewal[i] = at_renewal
    acc.plan_reason[i] = reason or ("low_engagement" if kind == CHURN else "")


def trials(sim, t: int, active: np.ndarray, rng: np.random.Generator) -> None:
    """Premium trials: a hint of expansion, not a rule.

    Accounts heading for an expansion use premium features more and more (quickly when
    premium is what they buy, slowly when they buy seats); other starter and growth accounts
    run trials of 3-8 weeks that do not convert.
    """
    acc = sim.acc
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


def execute(sim, t: int, rng: np.random.Generator) -> list[tuple]:
    """Apply the decisions due today; returns today's outcome rows (outcomes.csv)."""
    acc = sim.acc
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
                if acc.contract[i] or acc.plan[i] < 1:  # self-serve tops out at growth
                    acc.plan[i] += 1
                    acc.price[i] = PRICE_PER_SEAT[acc.plan[i]] * rng.uniform(0.85, 1.15)
            grow = rng.uniform(1.15, 1.6)
            acc.seats[i] = int(np.ceil(acc.seats[i] * grow))
            acc.docs[i] = 20 + 3 * acc.seats[i]
            acc.arr[i] = round(acc.seats[i] * acc.price[i])
            delta = float(acc.arr[i]) - old_arr
        elif kind == CONTRACTED:
            if acc.plan[i] > 0 and rng.random() < 0.3:  # a downgrade to the plan below
                acc.plan[i] -= 1
                acc.price[i] = PRICE_PER_SEAT[acc.plan[i]] * rng.uniform(0.85, 1.15)
                acc.refresh_premium_share(i)
            lo = SEAT_CLIP[acc.plan[i]][0]
            acc.seats[i] = max(lo, int(acc.seats[i] * rng.uniform(0.6, 0.9)))
            acc.arr[i] = round(acc.seats[i] * acc.price[i])
            delta = float(acc.arr[i]) - old_arr
            if delta >= 0:  # already at the plan's minimum: a plain renewal
                kind, delta = RENEWED, 0.0
        else:
            delta = 0.0
        if acc.plan_at_renewal[i] and kind != CHURN:
            # a new term: the next renewal one term later, decided before its notice deadline
            renewal = add_years(sim.date(int(acc.renewal_day[i])), int(acc.term_years[i]))
            acc.renewal_day[i] = (renewal - sim.cfg.start).days
            acc.decide_day[i] = acc.renewal_day[i] - acc.notice_days[i] - int(rng.integers(0, 29))
        outcome = C.OUTCOMES[kind]
        rows.append((acc.ids[i], outcome, sim.date(t).isoformat(), f"{delta:.2f}"))
        faded = int(acc.fade_start[i])
        sim.truth_outcomes.append(
            (
                acc.ids[i],
                outcome,
                sim.date(t).isoformat(),
                sim.date(int(acc.plan_decided[i])).isoformat(),
                acc.plan_reason[i],
                f"{delta:.2f}",
                "true" if acc.plan_at_renewal[i] else "false",
                sim.date(faded).isoformat() if faded >= 0 and kind == CHURN else "",
                contract_kind(acc, i),
            )
        )
        acc.plan_kind[i] = -1
        acc.plan_day[i] = -1
        _stop_fading(acc, i)
        if acc.trial[i]:
            acc.trial[i] = 0.0
            acc.refresh_premium_share(i)
    return rows


def contract_kind(acc, i: int) -> str:
    """annual, 2-year, 3-year (with -auto-renew) or product_led."""
    if not acc.contract[i]:
        return "product_led"
    years = int(acc.term_years[i])
    name = "annual" if years == 1 else f"{years}-year"
    return name + ("-auto-renew" if acc.auto_renew[i] else "")
