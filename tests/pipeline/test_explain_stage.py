"""The nightly explain stage: D's partition of forecast.explanations, reruns and sampling."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from _explain_world import HORIZON, RUN, make_world
from _services import fresh_postgres_database

from nightcast.pipeline.explain import explain, select_series
from nightcast.pipeline.runs import warehouse

SERIES = 6
TOP_K = 5


def _stored(settings) -> pd.DataFrame:
    with warehouse(settings) as wh:
        return wh.df(
            "select * from forecast.explanations "
            "order by run_date, item_id, location_id, forecast_date, rank"
        )


def _check_partition(settings) -> None:
    first = explain(settings, RUN)
    assert first == {"rows": SERIES * HORIZON * TOP_K, "series": SERIES, "sampled": False,
                     "seconds": first["seconds"]}  # fmt: skip
    rows = _stored(settings)
    assert len(rows) == SERIES * HORIZON * TOP_K
    ranks = rows.groupby(["item_id", "location_id", "forecast_date"])["rank"].apply(list)
    assert all(r == list(range(1, TOP_K + 1)) for r in ranks)
    # The explained number is the forecast BI shows (the raw P50 where nothing clipped it).
    with warehouse(settings) as wh:
        forecasts = wh.df("select item_id, location_id, forecast_date, p50 from forecast.forecasts")
    top = rows[rows["rank"] == 1].merge(forecasts, on=["item_id", "location_id", "forecast_date"])
    assert len(top) == SERIES * HORIZON
    same = (top["prediction"] - top["p50"]).abs() < 1e-6
    assert same.mean() > 0.8

    again = explain(settings, RUN)
    assert again["rows"] == first["rows"]
    pd.testing.assert_frame_equal(_stored(settings), rows)


def test_explain_writes_the_run_partition_and_a_rerun_leaves_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_world(tmp_path, monkeypatch)
    _check_partition(settings)
    with warehouse(settings) as wh:
        task = wh.fetchone(
            "select rows_in, rows_out, summary from ops.task_runs where task = 'explain'"
        )
    assert task == (SERIES, SERIES * HORIZON * TOP_K, "6 series (all), top 5")


def test_explain_partition_on_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = fresh_postgres_database("nightcast_explain_stage")
    settings = make_world(tmp_path, monkeypatch, url)
    _check_partition(settings)
    with warehouse(settings) as wh:
        parts = wh.fetchall(
            "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
            "join pg_class p on p.oid = i.inhparent where p.relname = 'explanations'"
        )
    assert parts == [("explanations_p" + RUN.strftime("%Y%m%d"),)]


def test_above_the_limit_the_top_volume_half_and_a_stable_hash_sample_are_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_world(tmp_path, monkeypatch).model_copy(update={"explain_max_series": 4})
    with warehouse(settings) as wh:
        volume = wh.df(
            "select item_id || '|' || location_id as unique_id, sum(p50) as volume "
            "from forecast.forecasts group by 1 order by 2 desc"
        )
    out = explain(settings, RUN)
    assert (out["series"], out["sampled"]) == (4, True)
    rows = _stored(settings)
    explained = set(rows["item_id"] + "|" + rows["location_id"])
    assert len(explained) == 4
    # The two biggest series by forecast volume are always in the sample.
    assert set(volume["unique_id"].head(2)) <= explained
    assert explained == set(select_series(volume, 4)[0])


def test_select_series_is_deterministic_and_keeps_the_largest() -> None:
    volume = pd.DataFrame({"unique_id": [f"s{i}" for i in range(10)], "volume": range(10)})
    chosen, sampled = select_series(volume, 4)
    assert sampled and len(chosen) == 4 and {"s9", "s8"} <= set(chosen)
    shuffled = volume.sample(frac=1, random_state=1)
    assert select_series(shuffled, 4) == (chosen, True)
    assert select_series(volume, 10) == (sorted(volume["unique_id"]), False)


def test_no_forecasts_for_the_run_date_names_it_and_the_dates_there_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_world(tmp_path, monkeypatch)
    missing = RUN + timedelta(days=1)
    with pytest.raises(ValueError, match=f"run date {missing}.*{RUN}"):
        explain(settings, missing)


def test_a_forecast_series_gone_from_the_history_is_named_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_world(tmp_path, monkeypatch)
    with warehouse(settings) as wh:
        wh.execute("delete from marts.fct_sales_daily where item_id = 'demo:I2'")
    with pytest.raises(
        ValueError, match=r"2 series forecast for 2025-03-31 have no history.*demo:I2"
    ):
        explain(settings, RUN)
    assert _stored(settings).empty
