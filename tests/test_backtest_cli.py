"""``nightcast backtest``: the engine and the baselines on a user's CSV/Parquet file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nightcast.cli import main

MODELS = ("engine", "naive", "seasonal_naive", "moving_average")


def _demand(n_series: int = 6, n_periods: int = 90, freq: str = "D", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-01", periods=n_periods, freq="D" if freq == "D" else "W-MON")
    level = rng.lognormal(1.5, 0.5, size=n_series)
    weekly = np.array([0.6, 0.8, 1.0, 1.0, 1.2, 1.6, 0.8])[dates.dayofweek.to_numpy()]
    season = weekly if freq == "D" else 1 + 0.3 * np.sin(np.arange(n_periods) / 8)
    y = rng.poisson(level[:, None] * season[None, :])
    return pd.DataFrame(
        {
            "sku": np.repeat([f"SKU-{i}" for i in range(n_series)], n_periods),
            "day": np.tile(dates, n_series),
            "qty": y.ravel().astype(float),
            "store": "S1",  # an extra column the backtest ignores
        }
    )


def _run(path: Path, *extra: str) -> int:
    cols = ["--id-col", "sku", "--date-col", "day", "--target-col", "qty"]
    return main(["backtest", "--input", str(path), *cols, *extra])


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("nightcast backtest: error:")
    assert "Traceback" not in err and len(err.splitlines()) == 1
    return err


def test_csv_prints_engine_and_baselines_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sales.csv"
    _demand().to_csv(path, index=False)
    out_json = tmp_path / "out" / "metrics.json"
    assert _run(path, "--horizon", "14", "--windows", "2", "--output", str(out_json)) == 0
    out = capsys.readouterr().out
    for name in MODELS:
        assert f"\n{name} " in out
    for col in ("WAPE", "MASE", "bias", "pinball50", "cov10-90", "fit+pred s"):
        assert col in out
    rep = json.loads(out_json.read_text())
    assert rep["windows"] == 2 and rep["horizon"] == 14 and rep["freq"] == "D"
    assert rep["series"] == 6 and len(rep["cutoffs"]) == 2 and len(rep["per_window"]) == 2
    assert set(rep["metrics"]) == set(MODELS)
    engine = rep["metrics"]["engine"]
    for key in ("wape", "mase", "bias", "pinball_p10", "pinball_p50", "pinball_p90"):
        assert isinstance(engine[key], float)
    assert 0.0 <= engine["coverage_p10_p90"] <= 1.0
    assert engine["fit_predict_seconds"] > 0
    for name in MODELS[1:]:
        assert isinstance(rep["metrics"][name]["wape"], float)
        assert isinstance(rep["metrics"][name]["pinball_p50"], float)
    # In the analysts' terms: against each baseline in words, overall and per segment.
    vs = rep["versus"]
    best = min(MODELS[1:], key=lambda n: rep["metrics"][n]["wape"])
    assert vs["best_baseline"] == best and vs["engine_wape"] == engine["wape"]
    gain = 1 - engine["wape"] / rep["metrics"][best]["wape"]
    assert vs["text"].startswith(f"{abs(gain):.0%} {'better' if gain > 0 else 'worse'} than")
    assert f"engine vs the baselines: {vs['text']}" in out
    kinds = {(sg["segment_type"], sg["segment"]) for sg in rep["segments"]}
    assert ("volume class", "A (top 80% of volume)") in kinds
    assert any(k == "demand pattern" for k, _ in kinds)
    per_class = [sg for sg in rep["segments"] if sg["segment_type"] == "volume class"]
    assert sum(sg["series"] for sg in per_class) == 6
    assert "by segment" in out


def test_parquet_weekly_defaults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "weekly.parquet"
    _demand(n_periods=40, freq="W").to_parquet(path)
    out_json = tmp_path / "m.json"
    assert _run(path, "--freq", "W", "--output", str(out_json)) == 0
    out = capsys.readouterr().out
    rep = json.loads(out_json.read_text())
    assert rep["freq"] == "W" and rep["horizon"] == 8 and rep["windows"] == 3
    assert rep["season"] == 52
    # Less than a year of history: seasonal naive falls back to naive, and says so.
    assert rep["seasonal_naive_fallback_share"] == 1.0
    assert "fell back to naive" in out
    assert rep["metrics"]["seasonal_naive"]["wape"] == rep["metrics"]["naive"]["wape"]
    assert rep["metrics"]["engine"]["mase"] is not None  # lag-1 MASE scale


def test_windows_default_shrinks_to_what_fits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "short.csv"
    _demand(n_periods=26, freq="W").to_csv(path, index=False)
    assert _run(path, "--freq", "W") == 0
    assert "2 window(s) of 8 weeks" in capsys.readouterr().out


def test_too_short(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "short.csv"
    _demand(n_periods=10).to_csv(path, index=False)
    assert _run(path, "--horizon", "14") == 2
    err = _error(capsys)
    assert "history too short" in err and "10 days" in err
    _demand(n_periods=40).to_csv(path, index=False)
    assert _run(path, "--horizon", "3", "--windows", "5") == 2
    assert "too short for 5 windows" in (err := _error(capsys)) and "at most 3" in err


def test_duplicated_keys_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    df = _demand()
    df = pd.concat([df, df.iloc[[5]]], ignore_index=True)
    path = tmp_path / "dup.csv"
    df.to_csv(path, index=False)
    assert _run(path) == 2
    err = _error(capsys)
    assert "duplicated (sku, day)" in err and "'SKU-0', 2024-01-06" in err


def test_non_numeric_target_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    df = _demand().astype({"qty": object})
    df.loc[7, "qty"] = "12 units"
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    assert _run(path) == 2
    err = _error(capsys)
    assert "'qty' must be numeric" in err and "'12 units'" in err and "SKU-0" in err


def test_missing_column_and_bad_dates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "d.csv"
    _demand().to_csv(path, index=False)
    assert main(["backtest", "--input", str(path), "--id-col", "sku"]) == 2
    err = _error(capsys)
    assert "['ds', 'y'] not in the input" in err and "'qty'" in err
    df = _demand()
    df["day"] = df["day"].astype(str)
    df.loc[3, "day"] = "yesterday"
    df.to_csv(path, index=False)
    assert _run(path) == 2
    assert "'yesterday'" in _error(capsys)


def test_unusable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path / "nope.csv") == 2
    assert "not found" in _error(capsys)
    path = tmp_path / "d.xlsx"
    path.write_text("x")
    assert _run(path) == 2
    assert "unsupported input format" in _error(capsys)


def test_weekly_dates_off_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "d.csv"
    _demand(n_periods=90).to_csv(path, index=False)  # daily dates, --freq W
    assert _run(path, "--freq", "W") == 2
    assert "not on a regular weekly grid" in _error(capsys)
