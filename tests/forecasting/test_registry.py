"""Model registry: the promotion decision, status transitions, rollback and manual promotion."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from _demand import make_demand

from nightcast.forecasting import ForecastModel
from nightcast.forecasting.lifecycle import (
    Decision,
    HoldoutMetrics,
    PromotionPolicy,
    apply_decision,
    decide_promotion,
    format_table,
    promote,
    rollback,
)
from nightcast.forecasting.registry import (
    ArtifactError,
    RegistryError,
    backtest_of,
    champion,
    load_serving_model,
    load_version,
    register,
    registry_rows,
    save_and_register,
)
from nightcast.warehouse.base import Warehouse, open_warehouse

POLICY = PromotionPolicy(margin=0.02, coverage_low=0.6, coverage_high=0.95)
D1, D2, D3 = date(2025, 5, 4), date(2025, 5, 11), date(2025, 5, 18)


def metrics(wape: float, coverage: float = 0.8, nan: int = 0, negative: int = 0) -> HoldoutMetrics:
    return HoldoutMetrics(
        rows=100, wape=wape, bias=0.0, coverage=coverage, nan_values=nan, negative_p50=negative
    )


# ---------------------------------------------------------------------- decision logic
def test_wins_by_the_margin_is_promoted() -> None:
    d = decide_promotion(metrics(0.40), metrics(0.50), POLICY)
    assert d.promote and "<=" in d.reason
    # exactly at the bar (0.5 x 0.98 = 0.49) still wins
    assert decide_promotion(metrics(0.49), metrics(0.50), POLICY).promote


def test_wins_by_less_than_the_margin_is_rejected() -> None:
    d = decide_promotion(metrics(0.495), metrics(0.50), POLICY)
    assert not d.promote and "champion 0.5000" in d.reason
    assert not decide_promotion(metrics(0.60), metrics(0.50), POLICY).promote


@pytest.mark.parametrize(
    ("challenger", "why"),
    [
        (metrics(0.1, nan=3), "NaN"),
        (metrics(0.1, negative=1), "negative P50"),
        (metrics(0.1, coverage=0.4), "coverage"),
        (metrics(0.1, coverage=0.99), "coverage"),
        (metrics(0.1, coverage=math.nan), "coverage"),
        (metrics(math.nan), "WAPE is undefined"),
    ],
)
def test_insane_challenger_is_rejected_even_when_it_wins(
    challenger: HoldoutMetrics, why: str
) -> None:
    for incumbent in (metrics(0.9), None):
        d = decide_promotion(challenger, incumbent, POLICY)
        assert not d.promote and why in d.reason and "sanity" in d.reason


def test_a_challenger_no_better_than_the_best_simple_baseline_is_refused() -> None:
    baselines = {"seasonal_naive": 0.45, "moving_average": 0.52}
    for incumbent in (metrics(0.9), None):
        d = decide_promotion(metrics(0.46), incumbent, POLICY, baselines)
        assert not d.promote
        assert "does not beat the best simple baseline, seasonal naive (0.4500)" in d.reason
        # a tie does not beat it either; winning does (then the champion rule applies)
        assert not decide_promotion(metrics(0.45), incumbent, POLICY, baselines).promote
    assert decide_promotion(metrics(0.40), None, POLICY, baselines).promote
    assert decide_promotion(metrics(0.40), metrics(0.5), POLICY, baselines).promote
    # a baseline that cannot be scored (NaN) does not block
    assert decide_promotion(metrics(0.40), None, POLICY, {"seasonal_naive": math.nan}).promote


def test_versus_baselines_in_words() -> None:
    from nightcast.forecasting.metrics import versus_baselines

    text = versus_baselines(0.44, {"moving_average": 0.4583, "seasonal_naive": 0.50})
    assert text == "4% better than a moving average, 12% better than seasonal naive"
    assert versus_baselines(0.55, {"seasonal_naive": 0.50}) == "10% worse than seasonal naive"
    assert versus_baselines(0.5, {"seasonal_naive": 0.5}) == "as good as seasonal naive"


def test_no_champion_promotes_a_sane_challenger() -> None:
    d = decide_promotion(metrics(0.9), None, POLICY)
    assert d.promote and "no comparable champion" in d.reason


def test_policy_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert PromotionPolicy.from_env() == POLICY
    monkeypatch.setenv("NIGHTCAST_PROMOTION_MARGIN", "0.5")
    monkeypatch.setenv("NIGHTCAST_COVERAGE_MIN", "0.7")
    monkeypatch.setenv("NIGHTCAST_COVERAGE_MAX", "0.9")
    assert PromotionPolicy.from_env() == PromotionPolicy(0.5, 0.7, 0.9)
    assert not decide_promotion(metrics(0.4), metrics(0.5), PromotionPolicy.from_env()).promote
    # a baseline margin: the challenger must beat the best baseline by that much
    monkeypatch.setenv("NIGHTCAST_BASELINE_MARGIN", "0.1")
    policy = PromotionPolicy.from_env()
    assert policy.baseline_margin == 0.1
    assert not decide_promotion(metrics(0.44), None, policy, {"seasonal_naive": 0.48}).promote
    assert decide_promotion(metrics(0.43), None, policy, {"seasonal_naive": 0.48}).promote


# ---------------------------------------------------------------------- statuses in the warehouse
@pytest.fixture(scope="module")
def model() -> ForecastModel:
    df = make_demand(n_series=4, n_days=120)
    return ForecastModel(params={"num_iterations": 5}, horizon=7).fit(df)


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[Warehouse]:
    with open_warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}") as w:
        yield w


def statuses(wh: Warehouse) -> dict[str, str]:
    return dict(wh.fetchall("select model_version, status from forecast.model_registry"))


def fallback_until(wh: Warehouse, version: str) -> date | None:
    row = wh.fetchone(
        "select fallback_until from forecast.model_registry where model_version = ?", [version]
    )
    assert row is not None
    return row[0]


def challenger(wh: Warehouse, model: ForecastModel, tmp_path: Path, day: date) -> str:
    return register(
        wh, model, tmp_path / "models", day, "challenger", holdout_start=day - timedelta(days=35)
    )


def decide(wh: Warehouse, day: date, version: str, promote_it: bool) -> None:
    with wh.transaction():
        apply_decision(wh, day, version, Decision(promote_it, "test"))


def test_promotion_keeps_the_old_champion_as_fallback_for_14_days(
    wh: Warehouse, model: ForecastModel, tmp_path: Path
) -> None:
    first = save_and_register(wh, model, tmp_path / "models", date(2025, 5, 1))
    with pytest.raises(RegistryError, match="champion is registered already"):
        save_and_register(wh, model, tmp_path / "models", date(2025, 5, 2))
    c1 = challenger(wh, model, tmp_path, D1)
    assert statuses(wh) == {first: "champion", c1: "challenger"}
    decide(wh, D1, c1, True)
    assert statuses(wh) == {first: "fallback", c1: "champion"}
    assert fallback_until(wh, first) == D1 + timedelta(days=14)

    c2 = challenger(wh, model, tmp_path, D2)
    decide(wh, D2, c2, False)
    assert statuses(wh) == {first: "fallback", c1: "champion", c2: "rejected"}

    c3 = challenger(wh, model, tmp_path, D3 + timedelta(days=1))
    decide(wh, D3 + timedelta(days=1), c3, True)  # 15 days after D1: the first fallback expired
    assert statuses(wh) == {first: "retired", c1: "fallback", c2: "rejected", c3: "champion"}
    events = wh.fetchall(
        "select action, model_version, from_status, to_status from forecast.model_events "
        "where model_version = ? order by event_at",
        [first],
    )
    assert [e[3] for e in events] == ["champion", "fallback", "retired"]
    table = format_table(registry_rows(wh))
    assert c3 in table and "retired" in table


def test_rollback_makes_the_fallback_champion_and_retires_the_champion(
    wh: Warehouse, model: ForecastModel, tmp_path: Path
) -> None:
    first = save_and_register(wh, model, tmp_path / "models", date(2025, 5, 1))
    c1 = challenger(wh, model, tmp_path, D1)
    decide(wh, D1, c1, True)
    done = rollback(wh, today=D1 + timedelta(days=3))
    assert done == {"champion": first, "retired": c1}
    assert statuses(wh) == {first: "champion", c1: "retired"}
    (reason,) = wh.fetchone(
        "select status_reason from forecast.model_registry where model_version = ?", [c1]
    ) or ("",)
    assert reason == "rolled back"
    assert champion(wh) is not None and champion(wh)[0] == first  # type: ignore[index]
    with pytest.raises(RegistryError, match="no fallback"):
        rollback(wh, today=D1 + timedelta(days=3))


def test_rollback_refuses_without_a_fallback_or_after_14_days(
    wh: Warehouse, model: ForecastModel, tmp_path: Path
) -> None:
    first = save_and_register(wh, model, tmp_path / "models", date(2025, 5, 1))
    with pytest.raises(RegistryError, match="no fallback"):
        rollback(wh, today=D1)
    c1 = challenger(wh, model, tmp_path, D1)
    decide(wh, D1, c1, True)
    with pytest.raises(RegistryError, match="expired"):
        rollback(wh, today=D1 + timedelta(days=15))
    with pytest.raises(RegistryError, match="not a fallback"):
        rollback(wh, to=c1, today=D1)
    assert statuses(wh) == {first: "fallback", c1: "champion"}  # nothing changed
    assert rollback(wh, to=first, today=D1 + timedelta(days=14))["champion"] == first


def _artifact(wh: Warehouse, version: str) -> Path:
    row = wh.fetchone(
        "select artifact_path from forecast.model_registry where model_version = ?", [version]
    )
    assert row is not None
    return Path(row[0])


def test_a_tampered_champion_is_refused_and_the_fallback_serves(
    wh: Warehouse, model: ForecastModel, tmp_path: Path
) -> None:
    first = save_and_register(wh, model, tmp_path / "models", date(2025, 5, 1))
    c1 = challenger(wh, model, tmp_path, D1)
    decide(wh, D1, c1, True)
    serving = load_serving_model(wh, D1 + timedelta(days=1))
    assert serving is not None and serving[0] == c1 and serving[2] is None

    # Same size, different bytes: only the checksum can tell.
    victim = next(p for p in sorted(_artifact(wh, c1).rglob("*")) if p.is_file())
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=f"model {c1}: the artifact .* sha256"):
        load_version(wh, c1)

    night = D1 + timedelta(days=2)
    for _ in range(2):  # the forecast and the monitor task both ask; one event
        found = load_serving_model(wh, night)
        assert found is not None
        version, served, reason = found
        assert version == first and reason is not None and c1 in reason and "sha256" in reason
    assert served.predict(make_demand(n_series=4, n_days=120)).shape[0] > 0
    events = wh.fetchall(
        "select model_version, reason from forecast.model_events where action = 'serve_fallback'"
    )
    assert [e[0] for e in events] == [first]
    assert statuses(wh) == {first: "fallback", c1: "champion"}  # on-call decides, not the night

    # A missing champion artifact with an expired fallback: a clear error, no silent forecast.
    shutil.rmtree(_artifact(wh, c1))
    with pytest.raises(RegistryError, match=r"folder is missing.*no fallback model"):
        load_serving_model(wh, D1 + timedelta(days=15))


def test_manual_promotion_is_recorded(wh: Warehouse, model: ForecastModel, tmp_path: Path) -> None:
    first = save_and_register(wh, model, tmp_path / "models", date(2025, 5, 1))
    c1 = challenger(wh, model, tmp_path, D1)
    decide(wh, D1, c1, False)
    promote(wh, c1, reason="ops override", today=D2)
    assert statuses(wh) == {first: "fallback", c1: "champion"}
    assert fallback_until(wh, first) == D2 + timedelta(days=14)
    (action, reason) = wh.fetchall(
        "select action, reason from forecast.model_events where model_version = ? "
        "order by event_at desc limit 1",
        [c1],
    )[0]
    assert action == "promote" and "ops override" in reason
    with pytest.raises(RegistryError, match="champion already"):
        promote(wh, c1, today=D2)
    with pytest.raises(RegistryError, match="not in"):
        promote(wh, "m-nope", today=D2)


def test_old_registry_gets_the_new_columns(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'old.duckdb'}"
    with open_warehouse(url, ensure=False) as w:
        w.execute("create schema forecast")
        w.execute(
            "create table forecast.model_registry (model_version varchar primary key, "
            "trained_for_run date, train_start date, train_end date, rows_trained bigint, "
            "series_count integer, params varchar, features varchar, metrics varchar, "
            "artifact_path varchar, checksum varchar, code_version varchar, status varchar, "
            "registered_at timestamp)"
        )
    with open_warehouse(url) as w:
        rows = registry_rows(w)
        assert rows == []
        assert "fallback_until" in w.columns("forecast.model_registry")


def test_segments_demand_patterns_and_volume_classes() -> None:
    import numpy as np
    import pandas as pd

    from nightcast.forecasting.metrics import demand_pattern, volume_class

    assert demand_pattern(np.array([5, 6, 5, 4, 6.0])) == "smooth"
    assert demand_pattern(np.array([1, 20, 2, 30, 1.0])) == "erratic"
    assert demand_pattern(np.array([0, 0, 5, 0, 0, 5, 0, 5.0])) == "intermittent"
    assert demand_pattern(np.array([0, 0, 1, 0, 0, 40, 0, 3.0])) == "lumpy"
    assert demand_pattern(np.array([0, 0.0])) == "no demand"
    # a sparse history (days without demand have no row) counts its missing days
    assert demand_pattern(np.array([5, 5, 5.0]), periods=12) == "intermittent"
    vol = pd.Series({"a": 70.0, "b": 20.0, "c": 6.0, "d": 4.0})
    # A = the largest series making the first 80% of the volume, B the next 15%
    assert volume_class(vol).to_dict() == {"a": "A", "b": "A", "c": "B", "d": "C"}


def test_segments_of_a_sparse_history_count_the_days_without_rows() -> None:
    import pandas as pd

    from nightcast.forecasting.metrics import segment_versus

    days = pd.date_range("2025-01-01", periods=28, freq="D")
    past = pd.concat(
        [
            pd.DataFrame({"unique_id": "daily", "ds": days, "y": 5.0}),
            pd.DataFrame({"unique_id": "weekly", "ds": days[::7], "y": 5.0}),  # 3 in 4 weeks
        ]
    )
    frame = pd.DataFrame(
        {"unique_id": ["daily", "weekly"], "y": [5.0, 0.0], "p50": [5.0, 1.0], "naive": 4.0}
    )
    seg = segment_versus(frame, past, "p50", ("naive",))
    patterns = {s["segment"]: s["series"] for s in seg if s["segment_type"] == "demand pattern"}
    assert patterns == {"smooth": 1, "intermittent": 1}


def test_models_on_an_object_store(wh: Warehouse, model: ForecastModel, s3_root: str) -> None:
    """The registry writes, checks (sha256) and loads artifacts on S3 as it does on disk."""
    from nightcast.storage import location

    models = location(s3_root) / "models"
    first = save_and_register(wh, model, models, date(2025, 5, 1))
    found = champion(wh)
    assert found is not None and found[0] == first
    assert found[1] == f"{models.url}/{first}"
    artifact = location(found[1])
    assert sorted(f.name for f in artifact.files()) == ["booster_p50.txt", "model.json"]
    df = make_demand(n_series=4, n_days=120)
    assert load_version(wh, first).predict(df).equals(model.predict(df))
    # Registering the same model again writes the same folder, byte for byte.
    again = register(wh, model, models, date(2025, 5, 1), "challenger")
    assert again == first and len(models.files(recursive=True)) == 2

    # Same size, different bytes on the store: the checksum refuses it.
    booster = artifact / "booster_p50.txt"
    data = bytearray(booster.read_bytes())
    data[len(data) // 2] ^= 0x01
    booster.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=rf"model {first}: the artifact at s3://.* sha256"):
        load_version(wh, first)
    (artifact / "model.json").delete()
    with pytest.raises(ArtifactError, match=r"s3://.*folder is missing"):
        load_version(wh, first)


def test_backtest_of_reads_the_weekly_evaluation_and_says_how_it_compares() -> None:
    metrics = json.dumps(
        {
            "backtest": {
                "model": {"wape": 0.2, "bias": 0.01},
                "baselines": {"seasonal_naive": 0.25, "moving_average": 0.4, "naive": None},
            }
        }
    )
    bt = backtest_of(metrics)
    assert bt is not None and bt.wape == 0.2
    assert bt.best_baseline == ("seasonal_naive", 0.25)
    assert bt.versus == "20% better than seasonal naive, 50% better than a moving average"
    # The nightly run's first model was never evaluated; junk is not an evaluation either.
    assert backtest_of("{}") is None and backtest_of(None) is None and backtest_of("x") is None
    row = {
        "model_version": "m1",
        "status": "champion",
        "trained_for_run": None,
        "train_end": None,
        "fallback_until": None,
        "status_reason": "",
        "metrics": metrics,
    }
    line = format_table([row]).splitlines()[2]
    assert "0.2000" in line and "20% better than seasonal naive" in line
    assert "moving average" not in line  # only the best baseline fits the table
