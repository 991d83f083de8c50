"""The simulated behaviour has the patterns the pipeline is meant to find (on average only)."""

import csv
import datetime as dt
from collections import Counter, defaultdict
from statistics import mean

import pytest


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def daily(clean):
    """Events per (account, UTC day) and per day, read straight from the landing files."""
    per_account: Counter = Counter()
    per_day: Counter = Counter()
    for day, _, _, line in clean.lines:
        account = line.split('"groupId":"', 1)[1][:7]
        per_account[account, day] += 1
        per_day[day] += 1
    return per_account, per_day


def _snapshots(landed):
    out = {}
    for folder in landed.folders():
        if (folder / "accounts.csv").exists():
            day = dt.date.fromisoformat(folder.name)
            out[day] = {r["account_id"]: r for r in _csv(folder / "accounts.csv")}
    return out


def test_weekends_are_much_quieter_than_weekdays(daily):
    _, per_day = daily
    weekday = mean(n for d, n in per_day.items() if d.weekday() < 5)
    weekend = mean(n for d, n in per_day.items() if d.weekday() >= 5)
    assert weekend < 0.3 * weekday


def test_churners_are_less_active_in_the_four_weeks_before_than_renewals(clean, daily):
    per_account, _ = daily
    seats = {}
    for snap in _snapshots(clean).values():
        for account, row in snap.items():
            seats.setdefault(account, int(row["seats"]))
    rates = defaultdict(list)
    for row in _csv(clean.truth / "outcomes.csv"):
        when = dt.date.fromisoformat(row["effective_date"])
        if when - dt.timedelta(days=28) < clean.cfg.start:
            continue
        window = [when - dt.timedelta(days=k) for k in range(1, 29)]
        events = sum(per_account[row["account_id"], d] for d in window)
        rates[row["outcome"]].append(events / seats[row["account_id"]])
    assert len(rates["churned"]) >= 5 and len(rates["renewed"]) >= 10
    assert mean(rates["churned"]) < 0.8 * mean(rates["renewed"])
    # ... but not perfectly separable: some churners are busier than some renewals.
    assert max(rates["churned"]) > min(rates["renewed"])


def test_churned_accounts_go_quiet_and_leave_the_snapshots(clean, daily):
    per_account, _ = daily
    snapshots = _snapshots(clean)
    churned = [r for r in _csv(clean.truth / "outcomes.csv") if r["outcome"] == "churned"]
    assert churned
    for row in churned:
        when = dt.date.fromisoformat(row["effective_date"])
        after = [n for (a, d), n in per_account.items() if a == row["account_id"] and d >= when]
        assert after == []
        later = [d for d in snapshots if d > when]
        assert all(row["account_id"] not in snapshots[d] for d in later)


def test_expansions_raise_seats_and_arr_in_later_snapshots(clean):
    snapshots = _snapshots(clean)
    expanded = [r for r in _csv(clean.truth / "outcomes.csv") if r["outcome"] == "expanded"]
    assert expanded
    checked = 0
    for row in expanded:
        when = dt.date.fromisoformat(row["effective_date"])
        assert float(row["arr_delta"]) > 0
        before = [d for d in snapshots if d < when and row["account_id"] in snapshots[d]]
        after = [d for d in snapshots if d > when and row["account_id"] in snapshots[d]]
        if before and after:
            old, new = (
                snapshots[max(before)][row["account_id"]],
                snapshots[min(after)][row["account_id"]],
            )
            assert int(new["seats"]) > int(old["seats"])
            assert float(new["arr"]) > float(old["arr"])
            checked += 1
    assert checked > 0


def test_renewals_move_the_renewal_date_one_term_on(clean):
    snapshots = _snapshots(clean)
    terms = {r["account_id"]: r["contract"] for r in _csv(clean.truth / "accounts.csv")}
    renewed = [r for r in _csv(clean.truth / "outcomes.csv") if r["at_renewal"] == "true"]
    renewed = [r for r in renewed if r["outcome"] != "churned"]
    assert renewed
    for row in renewed:
        years = (
            1 if terms[row["account_id"]].startswith("annual") else int(terms[row["account_id"]][0])
        )
        when = dt.date.fromisoformat(row["effective_date"])
        after = [d for d in snapshots if d > when and row["account_id"] in snapshots[d]]
        if after:
            new = dt.date.fromisoformat(snapshots[min(after)][row["account_id"]]["renewal_date"])
            assert 365 * years - 1 <= (new - when).days <= 365 * years + 1


def test_the_population_has_teams_roles_and_privacy_flags(clean):
    first = _snapshots(clean)[clean.cfg.start]
    books = Counter(r["csm_email"] for r in first.values())
    managers = defaultdict(set)
    for r in first.values():
        managers[r["manager_email"]].add(r["csm_email"])
    assert len(books) >= 2
    assert {r["plan"] for r in first.values()} == {"starter", "growth", "enterprise"}
    assert any(r["tracking_consent"] == "false" for r in first.values())
    users = _csv(clean.landing / clean.cfg.start.isoformat() / "users.csv")
    roles = Counter(u["role"] for u in users)
    assert roles["admin"] == len(first)  # one champion per account
    assert roles["power"] > 0 and roles["casual"] > roles["power"]
    assert any(u["opted_out"] == "true" for u in users)


def test_renewal_dates_are_spread_over_the_year(clean):
    first = _snapshots(clean)[clean.cfg.start]
    months = Counter(
        dt.date.fromisoformat(r["renewal_date"]).month for r in first.values() if r["renewal_date"]
    )
    assert len(months) >= 10
    # product-led accounts have no contract and so no renewal date
    assert 0.15 < sum(not r["renewal_date"] for r in first.values()) / len(first) < 0.45


def test_ground_truth_has_health_for_every_live_account_day(clean):
    import gzip

    with gzip.open(clean.truth / "health_daily.csv.gz", "rt") as f:
        rows = list(csv.DictReader(f))
    assert rows[0].keys() == {"account_id", "date", "latent_health"}
    days = {r["date"] for r in rows}
    assert len(days) == clean.cfg.days
    accounts = _csv(clean.truth / "accounts.csv")
    assert {"account_id", "churn_date", "churn_reason", "champion_left_date"} <= accounts[0].keys()
    churned = {a["account_id"] for a in accounts if a["final_status"] == "churned"}
    assert churned and all(a["churn_reason"] for a in accounts if a["account_id"] in churned)


def test_sessions_start_in_office_hours_of_the_users_time_zone(clean):
    from zoneinfo import ZoneInfo

    hours = Counter()
    for _, _, _, line in clean.lines[::5]:
        if '"event":"Session Started"' not in line:
            continue
        stamp = line.split('"timestamp":"', 1)[1][:24]
        zone = line.split('"timezone":"', 1)[1].split('"', 1)[0]
        local = dt.datetime.fromisoformat(stamp).astimezone(ZoneInfo(zone))
        hours[local.hour] += 1
    total = sum(hours.values())
    assert total > 1000
    office = sum(n for h, n in hours.items() if 7 <= h < 20)
    assert office / total > 0.9
    assert sum(n for h, n in hours.items() if h < 6) / total < 0.01


def test_public_holidays_are_quiet(daily):
    _, per_day = daily
    christmas = per_day[dt.date(2024, 12, 25)]
    wednesdays = [n for d, n in per_day.items() if d.weekday() == 2 and d.month in (10, 11)]
    assert christmas < 0.35 * mean(wednesdays)


def test_champion_departures_show_in_the_user_snapshots(clean):
    departures = _csv(clean.truth / "champion_departures.csv")
    snapshots = _snapshots(clean)
    expected = checked = 0
    for row in departures:
        left = dt.date.fromisoformat(row["left_date"])
        later = [d for d in sorted(snapshots) if d > left]
        if not later or row["account_id"] not in snapshots[later[0]]:
            continue  # the run ended, or the account churned, before the next snapshot
        expected += 1
        users = _csv(clean.landing / later[0].isoformat() / "users.csv")
        gone = [
            u
            for u in users
            if u["account_id"] == row["account_id"]
            and u["role"] == "admin"
            and u["deactivated_at"].startswith(row["left_date"])
        ]
        checked += len(gone) == 1
    assert expected >= 1 and checked == expected


def test_churn_is_not_a_calendar_event(clean):
    """Contracts decide before their notice deadline; mid-term terminations and product-led
    cancellations happen at any time of the contract year."""
    accounts = {r["account_id"]: r for r in _csv(clean.truth / "accounts.csv")}
    churns = [r for r in _csv(clean.truth / "outcomes.csv") if r["outcome"] == "churned"]
    assert churns
    off_calendar = [r for r in churns if r["at_renewal"] == "false"]
    assert 0.2 <= len(off_calendar) / len(churns) <= 0.8
    for row in churns:
        decided = dt.date.fromisoformat(row["decided_date"])
        effective = dt.date.fromisoformat(row["effective_date"])
        notice = accounts[row["account_id"]]["notice_days"]
        if row["contract"] != "product_led":
            assert (effective - decided).days >= int(notice)  # the notice period is honoured


def test_engagement_fades_before_the_churn_decision(clean, daily):
    per_account, _ = daily
    faded = [
        r
        for r in _csv(clean.truth / "outcomes.csv")
        if r["outcome"] == "churned" and r["fading_since"]
    ]
    earlier, before = [], []
    for row in faded:
        start = dt.date.fromisoformat(row["fading_since"])
        effective = dt.date.fromisoformat(row["effective_date"])
        if start - dt.timedelta(days=28) < clean.cfg.start:
            continue
        earlier.append(sum(per_account[row["account_id"], start - dt.timedelta(days=k)]
                           for k in range(1, 29)))  # fmt: skip
        before.append(sum(per_account[row["account_id"], effective - dt.timedelta(days=k)]
                          for k in range(1, 29)))  # fmt: skip
        assert dt.date.fromisoformat(row["decided_date"]) >= start
    assert len(earlier) >= 3
    assert mean(before) < 0.7 * mean(earlier)


def test_product_led_accounts_have_no_renewal_and_quiet_ones_just_stop(clean, daily):
    per_account, _ = daily
    accounts = _csv(clean.truth / "accounts.csv")
    first = _snapshots(clean)[clean.cfg.start]
    for row in accounts:
        if row["account_id"] in first and row["contract"] == "product_led":
            assert first[row["account_id"]]["renewal_date"] == ""
    outcomes = {r["account_id"] for r in _csv(clean.truth / "outcomes.csv")}
    quiet = _csv(clean.truth / "quiet_accounts.csv")
    assert quiet
    for row in quiet:
        since = dt.date.fromisoformat(row["quiet_since"])
        later = [n for (a, d), n in per_account.items() if a == row["account_id"] and d > since]
        assert sum(later) == 0  # silence, and no cancellation or any other outcome after it
        assert row["account_id"] not in outcomes or all(
            dt.date.fromisoformat(r["effective_date"]) <= since
            for r in _csv(clean.truth / "outcomes.csv")
            if r["account_id"] == row["account_id"]
        )
