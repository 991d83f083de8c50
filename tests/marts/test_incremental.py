"""Incremental runs give the same marts as a full rebuild, and features never look ahead."""

import datetime as dt
import shutil

import duckdb
import pytest

from tests.marts import rawdata
from tests.marts.conftest import make_world, materialize

INCREMENTAL = (
    "intermediate.int_user_days_aggregated",
    "intermediate.int_document_interactions_aggregated",
    "intermediate.int_feature_usage_aggregated",
    "marts.fct_account_daily_engagement",
    "marts.account_health",
)
TABLES = INCREMENTAL + (
    "marts.dim_accounts",
    "marts.dim_accounts_history",
    "marts.ml_features",
    "marts.feature_adoption",
    "marts.data_freshness",
)


def _differences(left, right, table: str, where: str = "true", columns: str = "*") -> tuple:
    """(rows only in left, rows only in right) for one table of two attached warehouses."""
    with duckdb.connect() as con:
        con.execute(f"attach '{left}' as l (read_only)")
        con.execute(f"attach '{right}' as r (read_only)")
        query = (
            "select count(*) from (select {c} from {a}.{t} where {w} "
            "except all select {c} from {b}.{t} where {w})"
        )
        return tuple(
            con.execute(query.format(c=columns, a=a, b=b, t=table, w=where)).fetchone()[0]
            for a, b in (("l", "r"), ("r", "l"))
        )


# Two and one extra dbt builds: run by CI and `make test` (not by `make test-fast`).
@pytest.mark.slow
def test_one_incremental_day_equals_a_full_refresh(built, tmp_path):
    full, _ = built  # raw through END, built in one go
    day_before = rawdata.END - dt.timedelta(days=1)
    world = make_world(tmp_path)
    world.load_raw(through=day_before)
    assert materialize(world, day_before).success
    world.load_raw(through=rawdata.END)  # END lands, with late events of LATE_DAY
    result = materialize(world, rawdata.END)
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["full_refresh"].value is False
    assert meta["batch_size"].value == "month"
    assert meta["rebuilt_from"].value == (rawdata.END - dt.timedelta(days=5)).isoformat()
    for table in TABLES:
        counts = full.query(f"select count(*) from {table}")
        assert counts[0][0] > 0, table
        assert _differences(full.db, world.db, table) == (0, 0), table


@pytest.mark.slow
def test_changing_data_after_the_as_of_date_changes_no_feature(built, tmp_path):
    original, _ = built
    cutoff = dt.date(2025, 2, 17)  # a Monday on the ml_features grid
    world = make_world(tmp_path)
    shutil.copy(original.db, world.db)
    with duckdb.connect(str(world.db)) as con:
        # after the cutoff: a_001 goes silent, a_004 doubles its activity, a_001 churns and
        # a_002 buys more seats
        con.execute(
            "delete from raw.events where account_id = 'a_001' and event_date > ?", [cutoff]
        )
        con.execute(
            "insert into raw.events select * replace (message_id || '-again' as message_id) "
            "from raw.events where account_id = 'a_004' and event_date > ?",
            [cutoff],
        )
        con.execute(
            "insert into raw.outcomes "
            "values ('a_001', 'churned', ?, -60000, ?, 'outcomes.csv', 1, ?)",
            [cutoff + dt.timedelta(days=10)] * 2 + [dt.datetime(2025, 2, 27, 6)],
        )
        con.execute(
            "update raw.accounts set seats = 20 where account_id = 'a_002' and snapshot_date > ?",
            [cutoff],
        )
    assert materialize(world, rawdata.END, full_refresh=True).success
    features = ", ".join(
        name
        for (name,) in original.query(
            "select column_name from information_schema.columns where table_schema = 'marts' "
            "and table_name = 'ml_features' and column_name not like 'label_%' "
            "and column_name != 'is_label_observable' order by ordinal_position"
        )
    )
    assert "logins_28d" in features and "seat_utilisation" in features
    before = f"as_of_date <= '{cutoff}'"
    assert _differences(original.db, world.db, "marts.ml_features", before, features) == (0, 0)
    # the changes are real: later features and the churn label did move
    after = f"as_of_date > '{cutoff}'"
    assert _differences(original.db, world.db, "marts.ml_features", after, features) != (0, 0)
    labels = world.query(
        "select as_of_date from marts.ml_features where account_id = 'a_001' and label_churn = 1"
    )
    assert cutoff in [d for (d,) in labels]


@pytest.mark.slow
def test_replaying_an_older_day_keeps_the_later_days(built, tmp_path):
    full, _ = built
    world = make_world(tmp_path)
    shutil.copy(full.db, world.db)
    replayed = rawdata.END - dt.timedelta(days=10)
    result = materialize(world, replayed)
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["batch_size"].value == "day"
    # the days after the replayed one, built by the later run, are still there and unchanged
    for table, column in (
        ("marts.account_health", "as_of_date"),
        ("marts.fct_account_daily_engagement", "activity_date"),
    ):
        later = f"{column} > '{replayed}'"
        assert full.query(f"select count(*) from {table} where {later}")[0][0] > 0
        assert _differences(full.db, world.db, table, later) == (0, 0), table
