"""Batching of the nightly forecast: the plan's batches, part files and the load-time check."""

from __future__ import annotations

import dataclasses
import random
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from nightcast.config import get_settings
from nightcast.forecasting import ForecastModel
from nightcast.forecasting.registry import artifact_checksum
from nightcast.pipeline import batches
from nightcast.pipeline.forecast import STATIC_COLS, forecast_batch
from nightcast.storage import Location, location

RUN = date(2025, 5, 1)
H = 7


def test_every_series_lands_in_exactly_one_batch_of_at_most_n() -> None:
    ids = [f"I{i}|L{i % 3}" for i in range(23)]
    cut = batches.split_series(ids + ids[:5], 5)
    flat = [s for b in cut for s in b]
    assert sorted(flat) == sorted(ids) and len(flat) == len(set(flat))
    assert [len(b) for b in cut] == [5, 5, 5, 5, 3]


def test_batches_do_not_depend_on_input_order() -> None:
    ids = [f"I{i}|L1" for i in range(40)]
    shuffled = ids[:]
    random.Random(3).shuffle(shuffled)
    assert batches.split_series(shuffled, 7) == batches.split_series(ids, 7)


def test_a_batch_size_below_one_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="NIGHTCAST_FORECAST_BATCH_SERIES"):
        batches.split_series(["a"], 0)


def test_parts_beyond_the_new_batch_count_are_removed(store_root: Location) -> None:
    for k in range(5):
        batches.part_path(store_root, k).write_bytes(b"x")
    (store_root / "_plan.json").write_text("{}")
    removed = batches.remove_stale_parts(store_root, keep=2)
    assert sorted(p.name for p in removed) == [
        "part-00002.parquet",
        "part-00003.parquet",
        "part-00004.parquet",
    ]
    assert [p.name for p in store_root.files()] == [
        "_plan.json",
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    assert batches.remove_stale_parts(store_root / "absent", keep=0) == []


def _plan(folder: Path | Location, cut: list[list[str]]) -> batches.ForecastPlan:
    return batches.ForecastPlan(
        run_date=RUN.isoformat(),
        model_version="v1",
        artifact_path=str(folder / "model"),
        artifact_checksum="",
        horizon_days=2,
        history_path="",
        future_path="",
        batches=cut,
    )


def _part(keys: list[str], rows: int, version: str = "v1") -> pa.Table:
    items = [k.split("|")[0] for k in keys for _ in range(rows)]
    locs = [k.split("|")[1] for k in keys for _ in range(rows)]
    return pa.table(
        {"item_id": items, "location_id": locs, "model_version": [version] * len(items)}
    )


def test_load_check_names_the_missing_batch(store_root: Location) -> None:
    tmp_path = store_root
    plan = _plan(tmp_path, [["a|1", "b|1"], ["c|1"]])
    batches.write_part(_part(["a|1", "b|1"], 2), batches.part_path(tmp_path, 0), 1.5)
    with pytest.raises(FileNotFoundError, match="batch 1 of 2"):
        batches.read_parts(tmp_path, plan, "v1")
    batches.write_part(_part(["c|1"], 2), batches.part_path(tmp_path, 1), 2.0)
    table, seconds = batches.read_parts(tmp_path, plan, "v1")
    assert table.num_rows == 6 and seconds == pytest.approx(3.5)


@pytest.mark.parametrize(
    ("part", "problem"),
    [
        (_part(["c|1", "a|1"], 2), "1 unplanned"),  # a series in two batches
        (_part([], 2), "1 missing"),
        (_part(["c|1"], 3), "1 without 2 rows"),
        (_part(["c|1"], 2, version="v0"), "plan pins v1"),
    ],
)
def test_load_check_refuses_parts_that_do_not_match_the_plan(
    store_root: Location, part: pa.Table, problem: str
) -> None:
    tmp_path = store_root
    plan = _plan(tmp_path, [["a|1", "b|1"], ["c|1"]])
    batches.write_part(_part(["a|1", "b|1"], 2), batches.part_path(tmp_path, 0), 0.0)
    batches.write_part(part, batches.part_path(tmp_path, 1), 0.0)
    with pytest.raises(ValueError, match=f"batch 1 of 2 .*{problem}"):
        batches.read_parts(tmp_path, plan, "v1")


def _history(n_series: int = 9, n_days: int = 120) -> pd.DataFrame:
    """One row per series and day: Poisson demand with a weekly pattern."""
    rng = np.random.default_rng(0)
    days = pd.date_range(end=pd.Timestamp(RUN), periods=n_days, freq="D")
    weekly = np.array([0.6, 0.7, 0.8, 1.0, 1.3, 1.8, 0.8])[days.dayofweek]
    frames = []
    for i in range(n_series):
        item, loc = f"I{i}", f"L{i % 2}"
        frames.append(
            pd.DataFrame(
                {
                    "unique_id": f"{item}|{loc}",
                    "ds": days,
                    "y": rng.poisson((1 + i) * weekly).astype(float),
                    "on_promo": 0.0,
                    "is_stockout": 0.0,
                    "item_id": item,
                    "location_id": loc,
                    "department": f"D{i % 2}",
                    "category": f"C{i % 3}",
                    "location_type": "store",
                    "country": "DE",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _run_batches(
    root: Path | Location, history: pd.DataFrame, model_dir: Path | str, size: int
) -> pa.Table:
    lake = location(root)
    settings = get_settings().model_copy(update={"lake_url": lake.url, "horizon_days": H})
    snap = batches.input_dir(lake, RUN)
    batches.write_snapshot(history, snap / "history.parquet")
    days = pd.date_range(pd.Timestamp(RUN) + pd.Timedelta(days=1), periods=H, freq="D")
    future = history[["unique_id"]].drop_duplicates().merge(pd.DataFrame({"ds": days}), "cross")
    batches.write_snapshot(future.assign(on_promo=0.0), snap / "future.parquet")
    cut = batches.split_series(history["unique_id"], size)
    plan = dataclasses.replace(
        _plan(lake, cut),
        artifact_path=str(model_dir),
        artifact_checksum=artifact_checksum(model_dir),
        horizon_days=H,
        history_path=str(snap / "history.parquet"),
        future_path=str(snap / "future.parquet"),
    )
    batches.write_plan(batches.plan_path(lake, RUN), plan)
    for k in range(len(cut)):
        forecast_batch(settings, RUN, k)
    table, _ = batches.read_parts(batches.forecast_dir(lake, RUN), plan, "v1")
    return table


def test_forecasting_in_batches_gives_the_same_rows_as_one_batch(tmp_path: Path) -> None:
    history = _history()
    model = ForecastModel({"num_iterations": 30, "num_leaves": 7, "seed": 7}, horizon=H)
    model.fit(history, static_cols=STATIC_COLS, exog_cols=["on_promo"])
    model.save(tmp_path / "model")

    one = _run_batches(tmp_path / "one", history, tmp_path / "model", size=100)
    four = _run_batches(tmp_path / "four", history, tmp_path / "model", size=2)

    assert len(batches.forecast_dir(location(tmp_path / "four"), RUN).files("part-*")) == 5
    assert one.num_rows == 9 * H
    keys = ["item_id", "location_id", "forecast_date"]
    a = one.to_pandas().sort_values(keys).reset_index(drop=True)
    b = four.to_pandas().sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert (a["p10"] <= a["p50"]).all() and (a["p50"] <= a["p90"]).all()


def test_a_batch_refuses_a_model_changed_since_the_plan(tmp_path: Path) -> None:
    history = _history(n_series=2, n_days=60)
    model = ForecastModel({"num_iterations": 5, "num_leaves": 4}, horizon=H)
    model.fit(history, static_cols=STATIC_COLS, exog_cols=["on_promo"]).save(tmp_path / "model")
    _run_batches(tmp_path / "lake", history, tmp_path / "model", size=1)
    next(p for p in (tmp_path / "model").iterdir() if p.is_file()).write_bytes(b"tampered")
    settings = get_settings().model_copy(
        update={"lake_url": str(tmp_path / "lake"), "horizon_days": H}
    )
    with pytest.raises(RuntimeError, match="changed since forecast_plan"):
        forecast_batch(settings, RUN, 0)


def test_rerunning_one_batch_rewrites_only_its_part(tmp_path: Path) -> None:
    history = _history(n_series=3, n_days=60)
    model = ForecastModel({"num_iterations": 5, "num_leaves": 4}, horizon=H)
    model.fit(history, static_cols=STATIC_COLS, exog_cols=["on_promo"]).save(tmp_path / "model")
    first = _run_batches(tmp_path / "lake", history, tmp_path / "model", size=1)
    folder = batches.forecast_dir(location(tmp_path / "lake"), RUN)
    before = {p.name: p.local_path().stat().st_mtime_ns for p in folder.files("part-*")}
    settings = get_settings().model_copy(
        update={"lake_url": str(tmp_path / "lake"), "horizon_days": H}
    )

    forecast_batch(settings, RUN, 1)

    after = {p.name: p.local_path().stat().st_mtime_ns for p in folder.files("part-*")}
    assert before.keys() == after.keys() and len(after) == 3
    assert {n for n in after if after[n] != before[n]} == {"part-00001.parquet"}
    plan = batches.read_plan(batches.plan_path(location(tmp_path / "lake"), RUN))
    assert batches.read_parts(folder, plan, "v1")[0].equals(first)


def test_batches_load_a_model_pinned_on_an_object_store(tmp_path: Path, s3_root: str) -> None:
    """A forecasting worker on another host reads the pinned artifact from S3 (checksum too)."""
    history = _history()
    model = ForecastModel({"num_iterations": 30, "num_leaves": 7, "seed": 7}, horizon=H)
    model.fit(history, static_cols=STATIC_COLS, exog_cols=["on_promo"])
    model.save(tmp_path / "model")
    remote = f"{s3_root}/models/v1"
    model.save(remote)
    assert artifact_checksum(remote) == artifact_checksum(tmp_path / "model")
    local = _run_batches(tmp_path / "local", history, tmp_path / "model", size=4)
    on_s3 = _run_batches(tmp_path / "s3", history, remote, size=4)
    assert on_s3.equals(local)
