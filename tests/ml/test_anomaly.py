import datetime as dt

import duckdb
import pandas as pd
import pytest

from ml.anomaly import detect_anomalies, write_anomalies
from ml.config import AnomalyConfig
from tests.ml.synthetic import daily_engagement

AS_OF = dt.date(2025, 3, 30)  # day 83 of the synthetic series


@pytest.fixture()
def con():
    daily = daily_engagement()
    d = pd.to_datetime(daily["activity_date"])
    # Planted drop on a busy weekday for one account.
    drop = (daily["account_id"] == "a_00001") & (d == "2025-03-19")
    daily.loc[drop, ["logins", "active_users", "session_minutes", "docs_viewed"]] = 0
    # A day whose data has not landed yet looks like a total outage; it must not be flagged.
    daily.loc[d == "2025-03-26", "is_data_landed"] = False
    daily.loc[d == "2025-03-26", ["logins", "active_users", "session_minutes", "docs_viewed"]] = 0
    # A holiday: everyone is quiet.
    daily.loc[d == "2025-03-12", ["logins", "active_users", "session_minutes", "docs_viewed"]] = 0
    c = duckdb.connect()
    c.execute("create schema marts")
    c.register("daily_in", daily)
    c.execute("create table marts.fct_account_daily_engagement as select * from daily_in")
    yield c
    c.close()


def test_planted_drop_is_flagged_against_the_weekday_baseline(con):
    found = detect_anomalies(con, AS_OF, AnomalyConfig(holidays=("2025-03-12",)))
    hits = found[(found["account_id"] == "a_00001") & (found["metric"] == "logins")]
    assert dt.date(2025, 3, 19) in set(pd.to_datetime(hits["activity_date"]).dt.date)
    row = hits[pd.to_datetime(hits["activity_date"]).dt.date == dt.date(2025, 3, 19)].iloc[0]
    assert row["robust_z"] < -3.5 and row["observed"] == 0 and row["expected"] > 10
    # Quiet weekends are judged against quiet weekends, so they are not flagged as drops.
    weekend = pd.to_datetime(found["activity_date"]).dt.dayofweek >= 5
    assert not (weekend & (found["robust_z"] < 0) & (found["metric"] == "logins")).any()


def test_unlanded_days_and_holidays_are_never_flagged(con):
    found = detect_anomalies(con, AS_OF, AnomalyConfig(holidays=("2025-03-12",)))
    flagged = set(pd.to_datetime(found["activity_date"]).dt.date)
    assert dt.date(2025, 3, 26) not in flagged
    assert dt.date(2025, 3, 12) not in flagged
    without_holiday = detect_anomalies(con, AS_OF, AnomalyConfig())
    assert dt.date(2025, 3, 12) in set(pd.to_datetime(without_holiday["activity_date"]).dt.date)


def test_writing_anomalies_is_idempotent(con):
    cfg = AnomalyConfig(holidays=("2025-03-12",))
    n = write_anomalies(con, AS_OF, cfg)
    first = con.execute("select * exclude (detected_at) from ml.anomalies order by all").df()
    assert write_anomalies(con, AS_OF, cfg) == n == len(first) > 0
    again = con.execute("select * exclude (detected_at) from ml.anomalies order by all").df()
    pd.testing.assert_frame_equal(first, again)


def test_missing_mart_gives_a_clear_error():
    with pytest.raises(ValueError, match="build the marts first"):
        detect_anomalies(duckdb.connect(), AS_OF)


def test_regional_holidays_apply_only_to_accounts_in_that_region(con):
    con.execute(
        "create table marts.dim_accounts as select distinct account_id, "
        "case when account_id = 'a_00001' then 'EMEA' else 'NA' end as region "
        "from marts.fct_account_daily_engagement"
    )
    # The planted drop of a_00001 (EMEA) falls on an EMEA holiday: not judged there.
    cfg = AnomalyConfig.from_holiday_file(
        {"all": ["2025-03-12"], "regions": {"EMEA": ["2025-03-19"], "NA": ["2025-03-20"]}}
    )
    found = detect_anomalies(con, AS_OF, cfg)
    days = pd.to_datetime(found["activity_date"]).dt.date
    assert not ((found["account_id"] == "a_00001") & (days == dt.date(2025, 3, 19))).any()
    assert dt.date(2025, 3, 12) not in set(days)


def test_holiday_file_in_the_repo_parses_and_bad_dates_are_named():
    import yaml

    from tests.conftest import REPO

    cfg = AnomalyConfig.from_holiday_file(
        yaml.safe_load((REPO / "config/holidays.yml").read_text())
    )
    assert "2025-12-25" in cfg.holidays and "2025-11-27" in cfg.regional_holidays["NA"]
    with pytest.raises(ValueError, match=r"regions.EMEA: '2025-13-01'"):
        AnomalyConfig.from_holiday_file({"regions": {"EMEA": ["2025-13-01"]}})
