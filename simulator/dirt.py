"""Bad input on purpose: the day's events as JSON lines with dirt, late and delayed arrivals."""

from __future__ import annotations

import datetime as dt
from itertools import compress

import numpy as np

from simulator import catalog as C
from simulator.activity import DAY_S
from simulator.config import SimConfig

_MASK64 = (1 << 64) - 1
_EVENT_NAMES = list(C.EVENT_NAMES)
_FEATURE_LIT = [f'"{f}"' for f in C.FEATURES] + ["null"]  # index -1 -> null
_TZ = list(C.TIME_ZONES)
BAD_TIMESTAMPS = ('"yesterday"', '"N/A"', '"not a timestamp"', "1735689600")
BAD_DURATIONS = ('"about 12 minutes"', '"n/a"', '"long"')


def mix(values: np.ndarray, salt: int) -> np.ndarray:
    """An invertible 64-bit mix (distinct inputs give distinct, random-looking outputs)."""
    x = values.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(salt & _MASK64)
    x ^= x >> np.uint64(29)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(32)
    return x


def message_ids(counter: int, n: int, salt: int) -> np.ndarray:
    """Unique message ids for the next n events of the run."""
    return mix(np.arange(counter, counter + n, dtype=np.uint64), salt)


def plan_delayed_days(cfg: SimConfig, rng: np.random.Generator) -> dict[int, int]:
    """Days whose folder arrives late, mapped to the day it arrives.

    Never a Monday or the first day (so no user shows up in events before a snapshot lists
    them), and at least 4 days apart (so nothing lands more than 5 days late).
    """
    rate = cfg.dirt.rate("delayed_day_rate")
    out: dict[int, int] = {}
    last = -10
    draws = rng.random(cfg.days)
    gaps = rng.integers(1, 4, size=cfg.days)
    for t in range(1, cfg.days - 3):
        day = cfg.start + dt.timedelta(days=t)
        if draws[t] < rate and t - last >= 4 and day.weekday() != 0:
            out[t] = t + int(gaps[t])
            last = t
    return out


def arrival_day(sim, t: int, lo: int, hi: int, rng: np.random.Generator) -> int:
    """A landing day in t+lo..t+hi that exists and is not delayed, else -1."""
    options = [d for d in range(t + lo, min(t + hi, sim.T - 1) + 1) if d not in sim.delayed_arrival]
    return options[int(rng.integers(len(options)))] if options else -1


def event_lines(
    sim, t: int, ev: dict[str, np.ndarray], rng: np.random.Generator
) -> tuple[list[str], dict[int, list[str]]]:
    """Format a day's events as JSON lines with dirt injected.

    Returns the lines for day t's own folder and the lines that land in later folders.
    """
    acc, users, dirt = sim.acc, sim.users, sim.cfg.dirt
    n = len(ev["user"])
    day = sim.date(t)
    mids = [f"{x:016x}" for x in message_ids(sim.msg_counter, n, sim.salt).tolist()]
    sim.msg_counter += n
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
    if t in sim.delayed_arrival or t >= sim.T - 1:
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
    sess_lit = [f'"s_{x:016x}"' for x in mix(sess_ids, sim.salt ^ 0x5E55).tolist()]
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
    counts = sim.dirt
    moved = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(late).tolist():
        arrival = arrival_day(sim, t, 1, 5, rng)
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
            arrival = arrival_day(sim, t, 1, 3, rng)
        if arrival >= 0:
            later.setdefault(arrival, []).append(out[i])
        else:
            own.append(out[i])
    counts["malformed_lines"] += int(bad_json.sum())
    counts["wrong_types"] += int(bad_type.sum())
    counts["unknown_accounts"] += int(unk_acc.sum())
    counts["unknown_users"] += int(unk_user.sum())
    counts["future_timestamps"] += int(future.sum())
    sim.opted_out_events += int(private.sum())
    if t in sim.delayed_arrival:
        # Late because the folder is late, and otherwise valid (duplicate copies excluded).
        counts["delayed_day_events"] += int((kind <= 1).sum())
    return own, later
