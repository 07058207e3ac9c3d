"""The weekly retrain: a challenger is trained, scored against the champion on the same
holdout, and promoted only if it wins (see ``nightcast.forecasting.registry``)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import pandas as pd

from nightcast.config import Settings
from nightcast.forecasting import ForecastModel
from nightcast.forecasting.backtest import baseline_forecasts
from nightcast.forecasting.lifecycle import (
    HoldoutMetrics,
    PromotionPolicy,
    apply_decision,
    decide_promotion,
    sanity_problems,
)
from nightcast.forecasting.metrics import (
    bias,
    coverage,
    segment_versus,
    versus_baselines,
    wape,
)
from nightcast.forecasting.panel import build_panel, freq_spec
from nightcast.forecasting.registry import (
    challenger_for,
    champion,
    ensure_registry,
    load_version,
    register,
)
from nightcast.pipeline.forecast import history_frame, train
from nightcast.pipeline.runs import warehouse
from nightcast.warehouse.base import Warehouse

log = logging.getLogger("nightcast.pipeline")

# The holdout: ``HOLDOUT_WINDOWS`` forecast windows of ``horizon_days`` days whose
# cutoffs are ``HOLDOUT_STEP_DAYS`` apart, the last one ending on the run date. The
# challenger is fitted on the data up to the first cutoff (the holdout start), so it
# never sees the holdout; the champion predicts from the same cutoffs. A champion
# trained last week has seen part of the holdout: the comparison favours it, so a
# challenger is only promoted when it is clearly better. The promoted model is the
# one that was evaluated (no refit on the holdout afterwards).
HOLDOUT_STEP_DAYS = 7


def holdout_windows() -> int:
    """NIGHTCAST_HOLDOUT_WINDOWS (default 2)."""
    from nightcast.config import get_settings

    return get_settings().holdout_windows


def holdout_cutoffs(data_end: date, horizon: int, windows: int | None = None) -> list[date]:
    """Forecast origins of the holdout, oldest first; the last window ends on ``data_end``."""
    n = windows or holdout_windows()
    last = data_end - timedelta(days=horizon)
    return [last - timedelta(days=HOLDOUT_STEP_DAYS * (n - 1 - i)) for i in range(n)]


def cutoffs_from(holdout_start: date, windows: int | None = None) -> list[date]:
    """The holdout's cutoffs from its start (as registered with the challenger)."""
    n = windows or holdout_windows()
    return [holdout_start + timedelta(days=HOLDOUT_STEP_DAYS * i) for i in range(n)]


def holdout_forecasts(
    model: ForecastModel, history: pd.DataFrame, cutoffs: list[date]
) -> pd.DataFrame:
    """``model``'s P10/P50/P90 from each cutoff, joined to the actuals (no sale = 0)."""
    parts = []
    for cutoff in cutoffs:
        cut = pd.Timestamp(cutoff)
        end = cut + pd.Timedelta(days=model.horizon)
        past = history[history["ds"] <= cut]
        future = None
        if model.exog_cols:
            window = history[(history["ds"] > cut) & (history["ds"] <= end)]
            future = window[["unique_id", "ds", *model.exog_cols]]
        pred = model.predict(past, future, cutoff=cut)
        pred["cutoff"] = cut
        parts.append(pred)
    pred = pd.concat(parts, ignore_index=True)
    actual = history[["unique_id", "ds", "y", "is_stockout"]]
    out = pred.merge(actual, on=["unique_id", "ds"], how="left")
    out["y"] = out["y"].fillna(0.0)
    out["is_stockout"] = out["is_stockout"].fillna(0.0) > 0
    return out


def holdout_metrics(frame: pd.DataFrame) -> HoldoutMetrics:
    """WAPE/bias of P50 and P10-P90 coverage; stock-out days (censored demand) left out."""
    quantiles = frame[["p10", "p50", "p90"]]
    scored = frame[~frame["is_stockout"]]
    return HoldoutMetrics(
        rows=len(scored),
        wape=wape(scored["y"], scored["p50"]),
        bias=bias(scored["y"], scored["p50"]),
        coverage=coverage(scored["y"], scored["p10"], scored["p90"]),
        nan_values=int(quantiles.isna().to_numpy().sum()),
        negative_p50=int((frame["p50"] < 0).sum()),
    )


BASELINE_PREFIX = "baseline:"
BASELINES = ("seasonal_naive", "moving_average")


def holdout_baseline_frame(
    history: pd.DataFrame, cutoffs: list[date], horizon: int
) -> pd.DataFrame:
    """Seasonal naive and moving average from each cutoff, joined to the actuals."""
    spec = freq_spec("D")
    parts = []
    for cutoff in cutoffs:
        cut = pd.Timestamp(cutoff)
        panel = build_panel(history[history["ds"] <= cut], spec, cut, [], [], "is_stockout")
        parts.append(baseline_forecasts(panel, spec, horizon).assign(cutoff=cut))
    pred = pd.concat(parts, ignore_index=True)
    pred["unique_id"] = pred["unique_id"].astype(str)
    actual = history[["unique_id", "ds", "y", "is_stockout"]].assign(
        unique_id=lambda d: d["unique_id"].astype(str)
    )
    out = pred.merge(actual, on=["unique_id", "ds"], how="left")
    out["y"] = out["y"].fillna(0.0)
    out["is_stockout"] = out["is_stockout"].fillna(0.0) > 0
    return out[["unique_id", "ds", "cutoff", *BASELINES, "y", "is_stockout"]]


def baseline_metrics(frame: pd.DataFrame) -> dict[str, HoldoutMetrics]:
    """Each baseline's holdout metrics, stock-out days left out as for the models."""
    scored = frame[~frame["is_stockout"]]
    return {
        name: HoldoutMetrics(
            rows=len(scored),
            wape=wape(scored["y"], scored[name]),
            bias=bias(scored["y"], scored[name]),
            coverage=float("nan"),
            nan_values=int(frame[name].isna().sum()),
            negative_p50=0,
        )
        for name in BASELINES
    }


def _history(settings: Settings, run_date: date) -> pd.DataFrame:
    with warehouse(settings) as wh:
        history = history_frame(wh, run_date)
    if history.empty:
        raise ValueError(f"no sales history up to {run_date}: run the nightly DAG first")
    return history


def _train_dask(history: pd.DataFrame, settings: Settings, address: str) -> ForecastModel:
    """As ``train``, boosting on the Dask cluster at NIGHTCAST_DASK_ADDRESS."""
    from nightcast.forecasting.distributed import DaskTrainer
    from nightcast.pipeline.forecast import STATIC_COLS, model_params

    trainer = DaskTrainer(address, settings.dask_timeout_s)
    model = ForecastModel(model_params(), horizon=settings.horizon_days, trainer=trainer)
    return model.fit(history, static_cols=STATIC_COLS, exog_cols=["on_promo"])


def train_challenger(settings: Settings, run_date: date) -> dict[str, Any]:
    """Fit a challenger on the data up to the holdout start and register it as ``challenger``.

    Idempotent: a rerun for the same run date returns the challenger registered before.
    """
    started = time.monotonic()
    with warehouse(settings) as wh:
        ensure_registry(wh)
        found = challenger_for(wh, run_date)
    if found is not None:
        log.info("train_challenger %s: %s registered already (%s)", run_date, *found)
        return {"model_version": found[0], "status": found[1]}
    history = _history(settings, run_date)
    # Days after the last loaded one are not known yet: they are not "no demand".
    data_end = min(run_date, pd.Timestamp(history["ds"].max()).date())
    cutoffs = holdout_cutoffs(data_end, settings.horizon_days)
    train_part = history[history["ds"] <= pd.Timestamp(cutoffs[0])]
    if settings.dask_address:
        model = _train_dask(train_part, settings, settings.dask_address)
    else:
        model = train(train_part, settings)
    with warehouse(settings) as wh:
        version = register(
            wh,
            model,
            settings.models_location,
            run_date,
            "challenger",
            holdout_start=cutoffs[0],
            reason=f"trained on data up to {cutoffs[0]}",
        )
    log.info(
        "train_challenger %s: %s on %d rows up to %s (%.1fs)",
        run_date,
        version,
        len(train_part),
        cutoffs[0],
        time.monotonic() - started,
    )
    return {
        "model_version": version,
        "status": "challenger",
        "holdout_start": cutoffs[0].isoformat(),
    }


def _metrics_row(
    run_date: date,
    version: str,
    role: str,
    cutoffs: list[date],
    horizon: int,
    m: HoldoutMetrics,
    sane: bool | None,
) -> list[Any]:
    j = m.as_json()
    return [
        run_date,
        version,
        role,
        cutoffs[0],
        cutoffs[-1] + timedelta(days=horizon),
        ",".join(c.isoformat() for c in cutoffs),
        m.rows,
        j["wape"],
        j["bias"],
        j["coverage"],
        m.nan_values,
        m.negative_p50,
        sane,
        None,
        None,
    ]


def evaluate(settings: Settings, run_date: date, version: str) -> dict[str, Any]:
    """Forecast the holdout with the challenger and the champion from the same cutoffs.

    Stores both metric sets in ``forecast.model_evaluations`` and the challenger's
    registry row. Once the run's decision is made, a rerun returns the stored metrics.
    """

    started = time.monotonic()
    policy = PromotionPolicy.from_env()
    with warehouse(settings) as wh:
        ensure_registry(wh)
        status = wh.fetchone(
            "select status, holdout_start from forecast.model_registry where model_version = ?",
            [version],
        )
        if status is None or status[1] is None:
            raise ValueError(f"challenger {version} is not registered: rerun train_challenger")
        cutoffs = cutoffs_from(pd.Timestamp(status[1]).date())
        if status[0] != "challenger":
            stored = _stored_evaluation(wh, run_date)
            if stored:
                log.info("evaluate %s: %s decided already (%s)", run_date, version, status[0])
                return stored
        champ = champion(wh)
        challenger_model = load_version(wh, version)
        champion_model = None
        if champ is not None and champ[0] != version:
            try:
                champion_model = load_version(wh, champ[0])
            except FileNotFoundError as err:
                log.warning(
                    "evaluate: champion cannot be loaded, judging the challenger alone: %s", err
                )
    history = _history(settings, run_date)
    challenger_frame = holdout_forecasts(challenger_model, history, cutoffs)
    results: dict[str, tuple[str, HoldoutMetrics]] = {
        "challenger": (version, holdout_metrics(challenger_frame))
    }
    if champion_model is not None and champ is not None:
        results["champion"] = (
            champ[0],
            holdout_metrics(holdout_forecasts(champion_model, history, cutoffs)),
        )
    base_frame = holdout_baseline_frame(history, cutoffs, settings.horizon_days)
    for name, m in baseline_metrics(base_frame).items():
        results[f"{BASELINE_PREFIX}{name}"] = (f"{BASELINE_PREFIX}{name}", m)
    joined = challenger_frame.assign(unique_id=challenger_frame["unique_id"].astype(str)).merge(
        base_frame[["unique_id", "ds", "cutoff", *BASELINES]],
        on=["unique_id", "ds", "cutoff"],
        how="left",
    )
    past = history[history["ds"] <= pd.Timestamp(cutoffs[0])].assign(
        unique_id=lambda d: d["unique_id"].astype(str)
    )
    baselines = {v.removeprefix(BASELINE_PREFIX): m.wape for v, m in _baseline_rows(results)}
    challenger_wape = results["challenger"][1].wape
    summary: dict[str, Any] = {
        "cutoffs": [c.isoformat() for c in cutoffs],
        "horizon": settings.horizon_days,
        "baselines": {k: _json_float(v) for k, v in baselines.items()},
        "versus": versus_baselines(challenger_wape, baselines),
        "segments": segment_versus(joined[~joined["is_stockout"]], past, "p50", BASELINES),
        "recipe": challenger_model.train_info.get("selection"),
        "model": results["challenger"][1].as_json(),
        "champion": (
            {"model_version": results["champion"][0], **results["champion"][1].as_json()}
            if "champion" in results
            else None
        ),
    }
    with warehouse(settings) as wh, wh.transaction():
        wh.execute("delete from forecast.model_evaluations where run_date = ?", [run_date])
        for role, (v, m) in results.items():
            is_baseline = role.startswith(BASELINE_PREFIX)
            wh.execute(
                "insert into forecast.model_evaluations values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _metrics_row(
                    run_date,
                    v,
                    "baseline" if is_baseline else role,
                    cutoffs,
                    settings.horizon_days,
                    m,
                    # a baseline has no quantiles: the sanity checks are the models'
                    None if is_baseline else not sanity_problems(m, policy),
                ),
            )
        wh.execute(
            "update forecast.model_registry set metrics = ? where model_version = ?",
            [json.dumps({"backtest": summary}, sort_keys=True), version],
        )
    log.info(
        "evaluate %s: challenger WAPE %s (%s), champion WAPE %s over %s (%.1fs)",
        run_date,
        summary["model"]["wape"],
        summary["versus"],
        summary["champion"]["wape"] if summary["champion"] else None,
        summary["cutoffs"],
        time.monotonic() - started,
    )
    return summary


def _json_float(v: float) -> float | None:
    return None if v != v else v  # NaN -> None (strict JSON)


def _baseline_rows(
    results: dict[str, tuple[str, HoldoutMetrics]],
) -> list[tuple[str, HoldoutMetrics]]:
    return [(v, m) for role, (v, m) in results.items() if role.startswith(BASELINE_PREFIX)]


def _to_metrics(row: Sequence[Any]) -> HoldoutMetrics:
    def num(v: Any) -> float:
        return float("nan") if v is None else float(v)

    return HoldoutMetrics(
        rows=int(row[0]),
        wape=num(row[1]),
        bias=num(row[2]),
        coverage=num(row[3]),
        nan_values=int(row[4]),
        negative_p50=int(row[5]),
    )


def _stored_evaluation(wh: Warehouse, run_date: date) -> dict[str, Any] | None:
    rows = wh.fetchall(
        "select role, model_version, rows_evaluated, wape, bias, coverage_p10_p90, nan_values, negative_p50, "
        "cutoffs from forecast.model_evaluations where run_date = ?",
        [run_date],
    )
    if not rows:
        return None
    by_role = {r[0]: r for r in rows if r[0] != "baseline"}
    ch = by_role.get("challenger")
    if ch is None:
        return None
    champ = by_role.get("champion")
    baselines = {
        str(r[1]).removeprefix(BASELINE_PREFIX): _to_metrics(r[2:8]).wape
        for r in rows
        if r[0] == "baseline"
    }
    return {
        "cutoffs": str(ch[8]).split(","),
        "baselines": {k: _json_float(v) for k, v in baselines.items()},
        "versus": versus_baselines(_to_metrics(ch[2:8]).wape, baselines),
        "model": _to_metrics(ch[2:8]).as_json(),
        "champion": (
            {"model_version": champ[1], **_to_metrics(champ[2:8]).as_json()} if champ else None
        ),
    }


def decide(settings: Settings, run_date: date, version: str) -> dict[str, Any]:
    """Promote the challenger or reject it (see :func:`decide_promotion`), in one transaction.

    A rerun after the decision returns the recorded outcome and changes nothing.
    """
    policy = PromotionPolicy.from_env()
    with warehouse(settings) as wh, wh.transaction():
        ensure_registry(wh)
        row = wh.fetchone(
            "select status, status_reason from forecast.model_registry where model_version = ?",
            [version],
        )
        if row is None:
            raise ValueError(f"challenger {version} is not registered: rerun train_challenger")
        if row[0] != "challenger":
            log.info("decide %s: %s decided already: %s (%s)", run_date, version, row[0], row[1])
            return {"model_version": version, "status": row[0], "reason": row[1], "rerun": True}
        rows = wh.fetchall(
            "select role, model_version, rows_evaluated, wape, bias, coverage_p10_p90, nan_values, "
            "negative_p50 from forecast.model_evaluations where run_date = ?",
            [run_date],
        )
        evals = {r[0]: (r[1], _to_metrics(r[2:])) for r in rows if r[0] != "baseline"}
        baselines = {
            str(r[1]).removeprefix(BASELINE_PREFIX): _to_metrics(r[2:]).wape
            for r in rows
            if r[0] == "baseline"
        }
        if "challenger" not in evals or evals["challenger"][0] != version:
            raise ValueError(f"no evaluation of {version} for {run_date}: rerun the evaluate task")
        incumbent = evals.get("champion")
        current = champion(wh)
        if incumbent is not None and (current is None or current[0] != incumbent[0]):
            raise RuntimeError(
                f"the champion changed since the evaluation ({incumbent[0]} → "
                f"{current[0] if current else 'none'}): rerun the evaluate task"
            )
        decision = decide_promotion(
            evals["challenger"][1], incumbent[1] if incumbent else None, policy, baselines
        )
        outcome = apply_decision(wh, run_date, version, decision)
        wh.execute(
            "update forecast.model_evaluations set decision = ?, reason = ? where run_date = ?",
            ["promoted" if decision.promote else "rejected", decision.reason, run_date],
        )
    status = "champion" if decision.promote else "rejected"
    log.info("decide %s: %s %s: %s", run_date, version, status, decision.reason)
    return {**outcome, "status": status, "reason": decision.reason, "rerun": False}


def retrain(settings: Settings, run_date: date) -> dict[str, Any]:
    """The weekly chain in one call: train_challenger → evaluate → decide."""
    started = time.monotonic()
    version = train_challenger(settings, run_date)["model_version"]
    metrics = evaluate(settings, run_date, version)
    outcome = decide(settings, run_date, version)
    return {**outcome, "backtest": metrics, "seconds": round(time.monotonic() - started, 1)}
