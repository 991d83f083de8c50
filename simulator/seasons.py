"""Calendar effects: public holidays per region, weekly and yearly seasonality, UTC offsets."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

from simulator.catalog import REGION_NAMES, TIME_ZONES


def easter(year: int) -> dt.date:
    """Western Easter Sunday (anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month, day = divmod(h + leap - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """The n-th given weekday of a month (n = -1 for the last one)."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


@lru_cache(maxsize=64)
def holidays(region: str, year: int) -> frozenset[dt.date]:
    """The main public holidays a region's offices close for (a simplified, fixed list)."""
    d = dt.date
    days = {d(year, 1, 1), d(year, 12, 25)}
    e = easter(year)
    if region == "NA":
        days |= {
            _nth_weekday(year, 5, 0, -1),  # Memorial Day
            d(year, 7, 4),
            _nth_weekday(year, 9, 0, 1),  # Labor Day
            _nth_weekday(year, 11, 3, 4),  # Thanksgiving
            _nth_weekday(year, 11, 3, 4) + dt.timedelta(days=1),
        }
    elif region == "EMEA":
        days |= {
            e - dt.timedelta(days=2),
            e + dt.timedelta(days=1),
            d(year, 5, 1),
            d(year, 12, 26),
        }
    elif region == "APAC":
        days |= {d(year, 5, 1), e - dt.timedelta(days=2), d(year, 12, 26)}
    elif region == "LATAM":
        days |= {
            e - dt.timedelta(days=48),  # Carnival
            e - dt.timedelta(days=47),
            e - dt.timedelta(days=2),
            d(year, 5, 1),
        }
    return frozenset(days)


WEEKDAY_FACTOR = np.array([1.0, 1.04, 1.03, 0.98, 0.85, 0.11, 0.07])


def season_factors(day: dt.date) -> np.ndarray:
    """Activity multiplier for each region (REGION_NAMES order) on a calendar day."""
    base = WEEKDAY_FACTOR[day.weekday()]
    out = np.full(len(REGION_NAMES), base)
    for r, region in enumerate(REGION_NAMES):
        if day in holidays(region, day.year):
            out[r] = min(base, 0.12)
        # Quiet weeks: the year-end break everywhere, August in Europe, January summer in APAC.
        if (day.month == 12 and day.day >= 23) or (day.month == 1 and day.day <= 2):
            out[r] *= 0.45
        elif region == "EMEA" and day.month == 8:
            out[r] *= 0.75
        elif region == "APAC" and day.month == 1 and day.day <= 15:
            out[r] *= 0.85
    return out


def utc_offsets(day: dt.date) -> np.ndarray:
    """Seconds to add to UTC to get local time, per zone in TIME_ZONES, at local noon of `day`.

    Noon is used because office hours never touch the 02:00-03:00 daylight-saving switch.
    """
    return np.array([_offset(tz, day) for tz in TIME_ZONES], dtype=np.int64)


@lru_cache(maxsize=32768)
def _offset(tz: str, day: dt.date) -> int:
    local_noon = dt.datetime(day.year, day.month, day.day, 12, tzinfo=ZoneInfo(tz))
    offset = local_noon.utcoffset()
    assert offset is not None
    return int(offset.total_seconds())
