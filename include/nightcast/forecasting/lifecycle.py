"""Champion/challenger decisions, rollback and manual promotion over the registry.

The decision (:func:`decide_promotion`) is a pure function of two models' holdout
metrics and a :class:`PromotionPolicy`; applying it, rolling back and promoting each
change statuses in one transaction (see ``registry.py`` for the statuses)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from nightcast.audit import record_override
from nightcast.forecasting.metrics import BASELINE_LABELS, best_baseline
from nightcast.forecasting.registry import (
    RegistryError,
    as_date,
    backtest_of,
    champion,
    ensure_registry,
    load_version,
    record_status,
)
from nightcast.warehouse.base import Warehouse

log = logging.getLogger("nightcast.forecasting")

FALLBACK_DAYS = 14
DEFAULT_MARGIN = 0.02
DEFAULT_COVERAGE_BAND = (0.6, 0.95)
DEFAULT_BASELINE_MARGIN = 0.0


@dataclass(frozen=True)
class HoldoutMetrics:
    """A model's forecasts over the holdout windows, against the actuals."""

    rows: int
    wape: float
    bias: float
    coverage: float
    nan_values: int
    negative_p50: int

    def as_json(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


@dataclass(frozen=True)
class PromotionPolicy:
    margin: float = DEFAULT_MARGIN
    coverage_low: float = DEFAULT_COVERAGE_BAND[0]
    coverage_high: float = DEFAULT_COVERAGE_BAND[1]
    # The challenger's WAPE must be below the best simple baseline's x (1 - this).
    baseline_margin: float = DEFAULT_BASELINE_MARGIN

    @classmethod
    def from_env(cls) -> PromotionPolicy:
        """NIGHTCAST_PROMOTION_MARGIN (0.02), NIGHTCAST_COVERAGE_MIN (0.6),
        NIGHTCAST_COVERAGE_MAX (0.95), NIGHTCAST_BASELINE_MARGIN (0), checked by
        :func:`nightcast.config.get_settings`."""
        from nightcast.config import get_settings

        s = get_settings()
        return cls(
            margin=s.promotion_margin,
            coverage_low=s.coverage_min,
            coverage_high=s.coverage_max,
            baseline_margin=s.baseline_margin,
        )


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def sanity_problems(m: HoldoutMetrics, policy: PromotionPolicy) -> list[str]:
    """Why a model's holdout forecasts are not fit for production (empty: sane)."""
    problems = []
    if m.rows == 0:
        problems.append("no holdout rows")
    if m.nan_values:
        problems.append(f"{m.nan_values} NaN forecast values")
    if m.negative_p50:
        problems.append(f"{m.negative_p50} negative P50 values")
    if math.isnan(m.wape):
        problems.append("WAPE is undefined (no demand in the holdout)")
    if math.isnan(m.coverage) or not policy.coverage_low <= m.coverage <= policy.coverage_high:
        problems.append(
            f"P10-P90 coverage {m.coverage:.3f} outside [{policy.coverage_low}, {policy.coverage_high}]"
        )
    return problems


def decide_promotion(
    challenger: HoldoutMetrics,
    incumbent: HoldoutMetrics | None,
    policy: PromotionPolicy,
    baselines: dict[str, float] | None = None,
) -> Decision:
    """Promote a sane challenger that beats the best simple baseline's WAPE and the
    champion's by ``policy.margin`` (or has no champion to beat).

    ``baselines`` are the simple baselines' WAPE on the same holdout rows (e.g.
    seasonal naive, a moving average): a model no better than the best of them
    is not worth serving, whatever the champion does.
    """
    problems = sanity_problems(challenger, policy)
    if problems:
        return Decision(False, "failed sanity checks: " + "; ".join(problems))
    best = best_baseline(baselines or {})
    if best is not None and not challenger.wape < best[1] * (1 - policy.baseline_margin):
        label = BASELINE_LABELS.get(best[0], best[0])
        return Decision(
            False,
            f"WAPE {challenger.wape:.4f} does not beat the best simple baseline, "
            f"{label} ({best[1]:.4f}), on the holdout",
        )
    if incumbent is None or math.isnan(incumbent.wape):
        return Decision(True, f"no comparable champion; sane (WAPE {challenger.wape:.4f})")
    bar = incumbent.wape * (1 - policy.margin)
    if challenger.wape <= bar:
        return Decision(
            True,
            f"WAPE {challenger.wape:.4f} <= champion {incumbent.wape:.4f} x (1 - {policy.margin}) = {bar:.4f}",
        )
    return Decision(
        False,
        f"WAPE {challenger.wape:.4f} > champion {incumbent.wape:.4f} x (1 - {policy.margin}) = {bar:.4f}",
    )


def apply_decision(
    wh: Warehouse, run_date: date, version: str, decision: Decision, now: datetime | None = None
) -> dict[str, Any]:
    """Set the statuses for the weekly decision on ``version`` (call inside a transaction).

    Promotion: the challenger becomes champion, the champion becomes fallback until
    ``run_date + 14 days``. Either way, fallbacks past their date are retired.
    """
    now = now or datetime.now()
    row = wh.fetchone(
        "select status from forecast.model_registry where model_version = ?", [version]
    )
    if row is None:
        raise RegistryError(f"model {version} is not in forecast.model_registry")
    result: dict[str, Any] = {"model_version": version, "promoted": decision.promote}
    if decision.promote:
        old = champion(wh)
        if old is not None and old[0] != version:
            until = run_date + timedelta(days=FALLBACK_DAYS)
            record_status(
                wh,
                run_date,
                "decide",
                old[0],
                "champion",
                "fallback",
                f"replaced by {version}",
                now,
            )
            wh.execute(
                "update forecast.model_registry set fallback_until = ? where model_version = ?",
                [until, old[0]],
            )
            result |= {"fallback": old[0], "fallback_until": until.isoformat()}
        record_status(wh, run_date, "decide", version, row[0], "champion", decision.reason, now)
    else:
        record_status(wh, run_date, "decide", version, row[0], "rejected", decision.reason, now)
    for (expired,) in wh.fetchall(
        "select model_version from forecast.model_registry where status = 'fallback' "
        "and (fallback_until is null or fallback_until < ?)",
        [run_date],
    ):
        record_status(
            wh, run_date, "decide", expired, "fallback", "retired", "fallback period over", now
        )
    return result


# ---------------------------------------------------------------------- manual operations
def rollback(wh: Warehouse, to: str | None = None, today: date | None = None) -> dict[str, Any]:
    """Make the fallback (or ``to``) champion again; the champion is retired ('rolled back')."""
    today = today or date.today()
    now = datetime.now()
    with wh.transaction():
        ensure_registry(wh)
        current = champion(wh)
        if to is None:
            row = wh.fetchone(
                "select model_version, fallback_until from forecast.model_registry where status = 'fallback' "
                "order by fallback_until desc nulls last, registered_at desc limit 1"
            )
            if row is None:
                raise RegistryError(
                    "no fallback model to roll back to (forecast.model_registry has no 'fallback' row); "
                    "use `nightcast model promote VERSION` to choose a model by hand"
                )
        else:
            row = wh.fetchone(
                "select model_version, fallback_until, status from forecast.model_registry where model_version = ?",
                [to],
            )
            if row is None:
                raise RegistryError(f"model {to} is not in forecast.model_registry")
            if row[2] != "fallback":
                raise RegistryError(
                    f"model {to} is {row[2]!r}, not a fallback: rollback only goes back to a fallback "
                    "(use `nightcast model promote` to override by hand)"
                )
        target, until = row[0], as_date(row[1])
        if until is None or until < today:
            raise RegistryError(
                f"fallback {target} expired on {until} (kept {FALLBACK_DAYS} days): not rolling back; "
                "use `nightcast model promote VERSION` to override by hand"
            )
        load_version(wh, target)  # its artifact must load before it serves the nightly run
        if current is not None:
            record_status(
                wh, today, "rollback", current[0], "champion", "retired", "rolled back", now
            )
        record_status(
            wh,
            today,
            "rollback",
            target,
            "fallback",
            "champion",
            f"rolled back from {current[0] if current else 'no champion'}",
            now,
        )
        wh.execute(
            "update forecast.model_registry set fallback_until = null where model_version = ?",
            [target],
        )
        record_override(
            wh,
            "rollback",
            model_version=target,
            run_date=today,
            reason=f"rolled back from {current[0] if current else 'no champion'}",
            now=now,
        )
    log.info("rollback: %s is champion again (was %s)", target, current[0] if current else None)
    return {"champion": target, "retired": current[0] if current else None}


def promote(
    wh: Warehouse, version: str, reason: str | None = None, today: date | None = None
) -> dict[str, Any]:
    """Manual override: ``version`` becomes champion, the champion becomes fallback for 14 days."""
    today = today or date.today()
    now = datetime.now()
    with wh.transaction():
        ensure_registry(wh)
        row = wh.fetchone(
            "select status from forecast.model_registry where model_version = ?", [version]
        )
        if row is None:
            raise RegistryError(f"model {version} is not in forecast.model_registry")
        if row[0] == "champion":
            raise RegistryError(f"model {version} is champion already")
        load_version(wh, version)
        current = champion(wh)
        why = f"manual promotion{': ' + reason if reason else ''}"
        if current is not None:
            record_status(
                wh,
                today,
                "promote",
                current[0],
                "champion",
                "fallback",
                f"replaced by {version} ({why})",
                now,
            )
            wh.execute(
                "update forecast.model_registry set fallback_until = ? where model_version = ?",
                [today + timedelta(days=FALLBACK_DAYS), current[0]],
            )
        record_status(wh, today, "promote", version, row[0], "champion", why, now)
        wh.execute(
            "update forecast.model_registry set fallback_until = null where model_version = ?",
            [version],
        )
        record_override(wh, "promote", model_version=version, run_date=today, reason=why, now=now)
    log.info("promote: %s is champion (was %s)", version, current[0] if current else None)
    return {"champion": version, "fallback": current[0] if current else None}


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The registry as a text table (``nightcast model list``)."""
    head = (
        "version",
        "status",
        "trained_for",
        "train_end",
        "holdout_wape",
        "vs_best_baseline",
        "fallback_until",
        "reason",
    )
    lines = []
    for r in rows:
        bt = backtest_of(r.get("metrics"))
        wape = bt.wape if bt else None
        versus = bt.versus.split(", ")[0] if bt and bt.baselines else ""  # the best first
        lines.append(
            (
                str(r["model_version"]),
                str(r["status"]),
                str(r["trained_for_run"] or ""),
                str(r["train_end"] or ""),
                "" if wape is None else f"{wape:.4f}",
                versus,
                str(r["fallback_until"] or ""),
                str(r["status_reason"] or ""),
            )
        )
    widths = [max([len(h)] + [len(line[i]) for line in lines]) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)
