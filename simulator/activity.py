"""One day's portal activity: sessions, document and feature actions, CSM email opens."""

from __future__ import annotations

import datetime as dt

import numpy as np

from simulator import catalog as C
from simulator.seasons import season_factors, utc_offsets

DAY_S = 86_400

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


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def day_events(sim, t: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One day's clean events as column arrays, sorted by time (ms since midnight UTC)."""
    acc, users = sim.acc, sim.users
    day = sim.date(t)
    eng = sigmoid(acc.h)
    season = season_factors(day)[acc.region]
    offsets = utc_offsets(day)
    live = np.flatnonzero(sim.portal_users(t))
    ua = users.acct[live]
    role = users.role[live]
    p = P_ACTIVE[role] * users.prop[live] * eng[ua] * season[ua] * sim.cfg.activity_scale
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
    n_act = rng.poisson(ACTIONS_PER_SESSION[s_role] * (0.4 + eng[s_acct]) * sim.cfg.activity_scale)
    dur = (60 + n_act * rng.lognormal(np.log(70), 0.6, m)).astype(np.int64)
    dur = np.minimum(dur, 4 * 3600)
    start = (local_s - offsets[users.tz[s_user]]) % DAY_S
    start = np.minimum(start, DAY_S - 1 - dur)  # a session ends on the day it started
    start_ms = start * 1000 + rng.integers(0, 1000, m)
    end_ms = start_ms + dur * 1000
    sess_id = np.arange(sim.sess_counter, sim.sess_counter + m)
    sim.sess_counter += m

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
    e_user, e_code, e_ms, e_camp = _emails(sim, t, day, eng, offsets, rng)

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
    sim, t: int, day: dt.date, eng: np.ndarray, offsets: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    acc, users = sim.acc, sim.users
    n_csm = len(sim.team.csm_name)
    csm_ids = np.arange(n_csm)
    sending = (day.weekday() == 1 + csm_ids % 3) & (((t // 7) + csm_ids) % 2 == 0)
    empty = np.zeros(0, dtype=np.int64)
    if not sending.any():
        return empty, empty, empty, empty
    live = np.flatnonzero(sim.portal_users(t))
    rec = live[sending[acc.csm[users.acct[live]]]]
    ra = users.acct[rec]
    p_open = np.minimum(0.9, (0.1 + 0.45 * eng[ra]) * users.prop[rec] ** 0.3)
    opened = rec[rng.random(len(rec)) < p_open]
    oa = users.acct[opened]
    clicked = rng.random(len(opened)) < 0.15 + 0.3 * eng[oa]
    local = (9.5 * 3600 + rng.exponential(3 * 3600, len(opened))).astype(np.int64)
    local = np.minimum(local, 22 * 3600)
    o_ms = ((local - offsets[users.tz[opened]]) % DAY_S) * 1000 + rng.integers(0, 1000, len(opened))
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
