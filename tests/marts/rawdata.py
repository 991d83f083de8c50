"""A small hand-built raw layer (the contract's raw.* tables) with known stories per account."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa

from ingest import ensure_raw_schema

START = dt.date(2025, 1, 6)  # a Monday
DAYS = 70  # through 2025-03-16
END = START + dt.timedelta(days=DAYS - 1)
MISSING_DAY = dt.date(2025, 2, 12)  # no landing folder: must show as missing, not as zero
LATE_DAY = dt.date(2025, 3, 14)  # a_001's events of this day land two days late (on END)
CHURN_DATE = dt.date(2025, 3, 1)
EXPAND_DATE = dt.date(2025, 2, 24)
SEATS_CHANGE_DATE = dt.date(2025, 2, 24)  # a Monday snapshot: a_004 goes from 5 to 10 seats

# account_id, seats, arr, users, tracking_consent
ACCOUNTS = [
    ("a_001", 10, 60000, 8, True),  # steady: everyone active every day
    ("a_002", 10, 60000, 8, True),  # fading: users stop one by one, admin early
    ("a_003", 5, 20000, 4, True),  # churns on CHURN_DATE
    ("a_004", 5, 150000, 4, True),  # expands on EXPAND_DATE (seats 5 -> 10)
    ("a_005", 5, 10000, 3, False),  # no tracking consent: no events, no engagement rows
]
FEATURES = ["dashboards", "reports", "search", "workflows", "api_access", "audit_log"]


def last_active_day(account_id: str, user_no: int) -> int:
    """Index of the last day (0-based) a user is active; the stories live here."""
    if account_id == "a_002":
        # admin (user 1) stops on day 20, the others one by one from day 24; user 8 stays
        return 20 if user_no == 1 else (DAYS if user_no == 8 else 20 + 4 * user_no)
    if account_id == "a_003":
        return (CHURN_DATE - START).days - 10 if user_no > 1 else (CHURN_DATE - START).days
    return DAYS


def build_raw(con: duckdb.DuckDBPyConnection, through: dt.date = END) -> None:
    """(Re)create raw.* holding every landing day from START through `through`."""
    ensure_raw_schema(con)  # the ingestion stage's own DDL, so a contract drift shows up here
    for table in ("events", "accounts", "users", "outcomes", "quarantine", "landed_partitions"):
        con.execute(f"delete from raw.{table}")
    days = [
        START + dt.timedelta(days=i) for i in range(DAYS) if START + dt.timedelta(days=i) <= through
    ]
    landed = [d for d in days if d != MISSING_DAY]
    snapshot_days = [d for d in landed if d.weekday() == 0]
    users = [
        (acc, f"u_{acc[2:]}_{n}", "admin" if n == 1 else ("power" if n <= 3 else "casual"), n)
        for acc, _, _, count, _ in ACCOUNTS
        for n in range(1, count + 1)
    ]
    rows_accounts, rows_users = [], []
    for snap in snapshot_days:
        for acc, seats, arr, _, consent in ACCOUNTS:
            if acc == "a_004" and snap >= SEATS_CHANGE_DATE:
                seats, arr = 10, 300000
            rows_accounts.append(
                (
                    acc,
                    f"Account {acc}",
                    f"{acc}.example",
                    "growth",
                    seats,
                    arr,
                    dt.date(2024, 6, 1),
                    dt.date(2025, 6, 1),
                    "Casey",
                    "casey@csm.example",
                    "Morgan",
                    "morgan@csm.example",
                    "software",
                    "emea",
                    consent,
                    snap,
                    snap,
                    "accounts.csv",
                    1,
                    dt.datetime.combine(snap, dt.time(6)),
                )
            )
        for acc, user_id, role, _ in users:
            rows_users.append(
                (
                    user_id,
                    acc,
                    f"{user_id}@{acc}.example",
                    role,
                    dt.datetime(2024, 6, 1),
                    None,
                    False,
                    snap,
                    snap,
                    "users.csv",
                    1,
                    dt.datetime.combine(snap, dt.time(6)),
                )
            )
    _insert(con, "accounts", rows_accounts)
    _insert(con, "users", rows_users)

    events = []
    for acc, user_id, _, user_no in users:
        if not dict((a[0], a[4]) for a in ACCOUNTS)[acc]:
            continue
        for i, day in enumerate(days):
            if day == MISSING_DAY or i > last_active_day(acc, user_no):
                continue
            if acc == "a_003" and day > CHURN_DATE:
                continue
            landing = day + dt.timedelta(days=2) if (acc == "a_001" and day == LATE_DAY) else day
            if landing > through:
                continue
            at = dt.datetime.combine(day, dt.time(9, user_no))
            feature = FEATURES[(i + user_no) % len(FEATURES)]
            for name, doc, feat, dur in [
                ("Session Started", None, None, None),
                ("Document Viewed", f"d_{acc}_{i % 7}", None, None),
                ("Feature Used", None, feature, None),
                ("Session Ended", None, None, 600.0),
            ]:
                events.append(
                    (
                        f"{user_id}-{day}-{name}",
                        acc,
                        user_id,
                        name,
                        at,
                        day,
                        f"s_{user_id}_{i}",
                        doc,
                        feat,
                        dur,
                        None,
                        "{}",
                        landing,
                        "events-000.jsonl.gz",
                        len(events),
                        dt.datetime.combine(landing, dt.time(6)),
                    )
                )
    _insert(con, "events", events)

    outcomes = [
        ("a_003", "churned", CHURN_DATE, -20000),
        ("a_004", "expanded", EXPAND_DATE, 150000),
    ]
    _insert(
        con,
        "outcomes",
        [
            (a, o, d, v, d, "outcomes.csv", 1, dt.datetime.combine(d, dt.time(6)))
            for a, o, d, v in outcomes
            if d <= through
        ],
    )
    partitions = []
    for day in landed:
        sources = ["events", "outcomes"] + (["accounts", "users"] if day in snapshot_days else [])
        partitions += [
            (day, s, 1, 100, 10, 10, 0, 0, 0, 0, dt.datetime.combine(day, dt.time(6)))
            for s in sources
        ]
    _insert(con, "landed_partitions", partitions)


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple]) -> None:
    """Bulk insert through Arrow (row-by-row inserts take seconds even for a few thousand)."""
    if not rows:
        return
    names = [
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'raw' and table_name = ? order by ordinal_position",
            [table],
        ).fetchall()
    ]
    batch = pa.table([pa.array(list(col)) for col in zip(*rows, strict=True)], names=names)
    con.register("_raw_rows", batch)
    con.execute(f"insert into raw.{table} select * from _raw_rows")
    con.unregister("_raw_rows")
