import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from ml.config import SegmentConfig
from ml.segment import segment_accounts, write_segments


def _frame():
    rng = np.random.default_rng(0)
    n = 20
    heavy = pd.DataFrame(
        {
            "logins_28d": rng.normal(900, 50, n),
            "active_users_28d": rng.normal(40, 3, n),
            "seat_utilisation": rng.normal(0.9, 0.03, n),
            "feature_breadth_28d": rng.normal(10, 1, n),
        }
    )
    light = pd.DataFrame(
        {
            "logins_28d": rng.normal(5, 2, n).clip(0),
            "active_users_28d": rng.normal(2, 1, n).clip(0),
            "seat_utilisation": rng.normal(0.1, 0.03, n).clip(0),
            "feature_breadth_28d": rng.normal(1, 0.5, n).clip(0),
        }
    )
    frame = pd.concat([heavy, light], ignore_index=True)
    frame.insert(0, "account_id", [f"a_{i:05d}" for i in range(2 * n)])
    return frame


def test_segments_separate_heavy_and_light_accounts_with_readable_names():
    seg = segment_accounts(_frame(), SegmentConfig(n_segments=2))
    heavy, light = seg.iloc[:20], seg.iloc[20:]
    assert heavy["segment_id"].nunique() == 1 and light["segment_id"].nunique() == 1
    assert heavy["segment_id"].iloc[0] > light["segment_id"].iloc[0]  # ids ordered by engagement
    assert heavy["segment_name"].iloc[0].startswith("Power: high")
    assert light["segment_name"].iloc[0].startswith("Dormant: low")


def test_writing_segments_replaces_the_day():
    con = duckdb.connect()
    day = dt.date(2025, 6, 2)
    seg = segment_accounts(_frame())
    write_segments(con, day, seg)
    write_segments(con, day, seg)
    assert con.execute("select count(*) from ml.segments").fetchone()[0] == len(seg)
