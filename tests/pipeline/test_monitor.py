"""The nightly monitor stage: drift and accuracy breaches alert and recommend a retrain."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from nightcast.config import Settings, get_settings
from nightcast.forecasting import ForecastModel
from nightcast.forecasting.registry import artifact_checksum, champion, save_and_register
from nightcast.pipeline.forecast import STATIC_COLS, history_frame
from nightcast.pipeline.monitor import monitor, retrain_recommended
from nightcast.warehouse.base import Warehouse, open_warehouse

TRAINED = date(2025, 5, 20)
SHIFTED = TRAINED + timedelta(days=14)
N_ITEMS = 50  # 100 series: enough for a drift breach (MIN_SERIES_FOR_BREACH)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("NIGHTCAST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_PATH", str(tmp_path / "wh.duckdb"))
    monkeypatch.delenv("NIGHTCAST_WAREHOUSE_URL", raising=False)
    for var in ("NIGHTCAST_ALERT_WEBHOOK_URL", "NIGHTCAST_ALERT_EMAIL_TO", "NIGHTCAST_SMTP_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NIGHTCAST_DRIFT_PSI_MAX", "0.25")
    monkeypatch.setenv("NIGHTCAST_ACCURACY_WAPE_MAX", "0.8")
    return get_settings()


def sales(start: date, days: int, factor: float, seed: int) -> pd.DataFrame:
    """Poisson demand of N_ITEMS items at 2 locations: one row per series and day."""
    rng = np.random.default_rng(seed)
    rows = [
        (
            f"demo:I{i}",
            f"demo:L{loc}",
            start + timedelta(days=d),
            float(rng.poisson(factor * (2 + i))),
        )
        for i in range(N_ITEMS)
        for loc in (1, 2)
        for d in range(days)
    ]
    df = pd.DataFrame(rows, columns=["item_id", "location_id", "sales_date", "quantity"])
    return df.assign(on_promo=False, is_stockout=False)


def build_marts(wh: Warehouse, frame: pd.DataFrame) -> None:
    wh.execute("create schema if not exists marts")
    wh.execute(
        "create table marts.fct_sales_daily (item_id varchar, location_id varchar, "
        "sales_date date, quantity double, on_promo boolean, is_stockout boolean)"
    )
    wh.insert_arrow("marts.fct_sales_daily", pa.Table.from_pandas(frame, preserve_index=False))
    wh.execute(
        "create table marts.dim_item as select distinct item_id, 'D' as department, "
        "'cat' || (cast(substr(item_id, 7) as integer) % 3) as category, "
        "cast(null as date) as discontinue_date from marts.fct_sales_daily"
    )
    wh.execute(
        "create table marts.dim_location as select distinct location_id, 'store' as location_type, "
        "'DE' as country from marts.fct_sales_daily"
    )


def register_champion(settings: Settings, wh: Warehouse) -> ForecastModel:
    history = history_frame(wh, TRAINED)
    model = ForecastModel(params={"num_iterations": 5}, horizon=7)
    model.fit(history, static_cols=STATIC_COLS, exog_cols=["on_promo"])
    save_and_register(wh, model, settings.models_dir, TRAINED)
    return model


def alerts(settings: Settings) -> pd.DataFrame:
    with open_warehouse(settings.warehouse_url) as wh:
        return wh.df("select kind, task_id, severity, message from ops.alerts order by raised_at")


def drift_rows(settings: Settings, day: date) -> dict[str, tuple[float, str]]:
    with open_warehouse(settings.warehouse_url) as wh:
        rows = wh.fetchall(
            "select feature, psi, status from ops.feature_drift where run_date = ?", [day]
        )
    return {r[0]: (r[1], r[2]) for r in rows}


def test_drift_breach_alerts_once_and_recommends_a_retrain(settings: Settings) -> None:
    history = sales(TRAINED - timedelta(days=104), 105, 1.0, seed=1)
    # Two weeks after training, every series sells 8 times as much.
    shifted = sales(TRAINED + timedelta(days=1), 14, 8.0, seed=2)
    with open_warehouse(settings.warehouse_url) as wh:
        build_marts(wh, pd.concat([history, shifted]))
        register_champion(settings, wh)

    # The training night itself: only sampling noise, no breach, no alert.
    calm = monitor(settings, TRAINED)
    assert calm["drift_features"] > 5 and calm["drift_breaches"] == 0
    assert not retrain_recommended(calm) and alerts(settings).empty

    result = monitor(settings, SHIFTED)
    psi, status = drift_rows(settings, SHIFTED)["log_scale"]
    assert status == "breach" and psi > 1.0
    assert result["drift_breaches"] >= 1 and retrain_recommended(result)
    raised = alerts(settings)
    drift = raised[raised["kind"] == "feature_drift"]
    msg = next(m for m in drift["message"] if "'log_scale'" in m)
    assert f"PSI {psi:.3f} > threshold " in msg and "NIGHTCAST_DRIFT_PSI_MAX=0.25" in msg
    assert "airflow dags trigger forecast_retrain_weekly" in msg
    assert set(drift["task_id"]) == {"monitor"} and set(drift["severity"]) == {"warning"}

    again = monitor(settings, SHIFTED)  # a rerun of the task pages nobody again
    assert retrain_recommended(again) and again["alerts_raised"] == 0
    assert len(alerts(settings)) == len(raised)


def test_accuracy_breach_alerts_and_old_models_skip_drift(settings: Settings) -> None:
    frame = sales(TRAINED - timedelta(days=104), 112, 1.0, seed=3)
    with open_warehouse(settings.warehouse_url) as wh:
        build_marts(wh, frame)
        register_champion(settings, wh)
        found = champion(wh)
        assert found is not None
        # A model saved before drift monitoring: no reference bins in its artifact.
        meta = json.loads((Path(found[1]) / "model.json").read_text())
        del meta["reference_bins"]
        (Path(found[1]) / "model.json").write_text(json.dumps(meta))
        wh.execute(  # registered as it was then: the checksum matches the old artifact
            "update forecast.model_registry set checksum = ? where model_version = ?",
            [artifact_checksum(found[1]), found[0]],
        )
        # A published run whose P50 is ten times the demand: WAPE far above 0.8.
        wh.execute(
            "insert into forecast.runs (run_date, status) values (?, 'published')", [TRAINED]
        )
        wh.execute(
            "insert into forecast.forecasts select ?, item_id, location_id, sales_date, "
            "cast(sales_date - cast(? as date) as integer), 0, 10 * quantity + 10, 20 * quantity + 20, ? "
            "from marts.fct_sales_daily where sales_date > ?",
            [TRAINED, TRAINED, found[0], TRAINED],
        )

    result = monitor(settings, TRAINED + timedelta(days=7))
    assert result["drift_features"] == 0 and result["forecasts_scored"] == 2 * N_ITEMS * 7
    assert result["wape_1_7"] > 0.8 and retrain_recommended(result)
    raised = alerts(settings)
    assert list(raised["kind"]) == ["accuracy_degraded"]
    assert (
        "segment 'all' at horizon 1-7 days exceeds NIGHTCAST_ACCURACY_WAPE_MAX=0.8"
        in (raised["message"][0])
    )
