import datetime as dt
import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.registry import ChampionModel
from ml.score import score_frame, write_scores

AS_OF = dt.date(2025, 12, 1)


@pytest.fixture()
def day_frame(grid):
    last = grid[pd.to_datetime(grid["as_of_date"]) == pd.to_datetime(grid["as_of_date"]).max()]
    return last.assign(as_of_date=AS_OF).reset_index(drop=True)


@pytest.fixture()
def champion(churn_result):
    return ChampionModel(churn_result.model, "churn_model", "7", "run-abc")


def test_drivers_and_base_value_sum_to_the_raw_score(day_frame, champion):
    scores = score_frame(day_frame, champion, "churn", AS_OF)
    raw = champion.model.raw_score(day_frame)
    for i, text in enumerate(scores["drivers_json"]):
        payload = json.loads(text)
        total = payload["base_value"] + sum(d["contribution"] for d in payload["drivers"])
        assert total == pytest.approx(raw[i], abs=1e-6)
        assert payload["raw_score"] == pytest.approx(raw[i], abs=1e-6)
        top = sorted(payload["drivers"], key=lambda d: -abs(d["contribution"]))[:3]
        assert [d["feature"] for d in top] == [scores.loc[i, f"driver_{k}"] for k in (1, 2, 3)]
        assert scores.loc[i, "driver_1_contribution"] == pytest.approx(top[0]["contribution"])
    np.testing.assert_allclose(scores["probability"], champion.model.predict_proba(day_frame))


def test_scores_have_contract_columns_bands_and_percentiles(day_frame, champion):
    scores = score_frame(day_frame, champion, "churn", AS_OF)
    assert set(scores["band"]) <= {"low", "medium", "high", "very_high"}
    assert scores["percentile"].between(0, 100).all()
    top = scores.loc[scores["probability"].idxmax()]
    assert top["percentile"] == 100
    assert (scores["model_version"] == "7").all() and (scores["mlflow_run_id"] == "run-abc").all()


def test_writing_scores_twice_replaces_the_day(day_frame, champion):
    con = duckdb.connect()
    at = dt.datetime(2025, 12, 1, 6, 0)
    scores = score_frame(day_frame, champion, "churn", AS_OF, scored_at=at)
    write_scores(con, scores)
    write_scores(con, score_frame(day_frame, champion, "expansion", AS_OF, scored_at=at))
    first = con.execute("select * from ml.account_scores order by all").df()
    write_scores(con, scores)
    again = con.execute("select * from ml.account_scores order by all").df()
    pd.testing.assert_frame_equal(first, again)
    counts = dict(
        con.execute("select model_name, count(*) from ml.account_scores group by 1").fetchall()
    )
    assert counts == {"churn": len(day_frame), "expansion": len(day_frame)}
