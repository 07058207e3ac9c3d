"""Run the versioned GX suites in ``expectations/`` on tonight's canonical tables.

GX Core validates each DataFrame in an ephemeral context; the custom checks declared
under ``meta.nightcast`` of a suite (freshness, referential integrity, quarantine rate)
run alongside, so one call gives the table's complete result list.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Collection, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd
from great_expectations.core.batch_definition import BatchDefinition
from great_expectations.data_context import AbstractDataContext
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.datasource.fluent import PandasDatasource
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

from nightcast.quality.checks import (
    MAX_EXAMPLES,
    check_freshness,
    check_quarantine_rate,
    check_referential_integrity,
    format_examples,
    format_value,
)
from nightcast.quality.results import CRITICAL, SEVERITIES, CheckResult, Offending

log = logging.getLogger("nightcast.quality")

DATASOURCE = "nightcast_gate"
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}

_lock = threading.Lock()
_default_context: AbstractDataContext | None = None
_suite_cache: dict[tuple[Path, float], gx.ExpectationSuite] = {}


def get_context() -> AbstractDataContext:
    """The process-wide ephemeral context, with its datasource and assets kept.

    Measured on the dev box: ``import great_expectations`` ~2.1 s, building the context
    ~3 ms, each validation 0.1-0.3 s; reusing the context avoids re-registering assets.
    """
    global _default_context
    with _lock:
        if _default_context is None:
            config = DataContextConfig(
                store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
                # Workers have no internet access; don't try to send usage statistics.
                analytics_enabled=False,
                progress_bars=ProgressBarsConfig(globally=False),
            )
            _default_context = gx.get_context(mode="ephemeral", project_config=config)
        return _default_context


def _batch_definition(context: AbstractDataContext, table: str) -> BatchDefinition:
    with _lock:
        try:
            found = context.data_sources.get(DATASOURCE)
        except KeyError:
            found = context.data_sources.add_pandas(DATASOURCE)
        if not isinstance(found, PandasDatasource):
            raise TypeError(f"datasource {DATASOURCE!r} exists but is not a pandas datasource")
        source = found
        try:
            asset = source.get_asset(table)
        except LookupError:
            asset = source.add_dataframe_asset(table)
        try:
            return asset.get_batch_definition("whole")
        except KeyError:
            return asset.add_batch_definition_whole_dataframe("whole")


def load_suite(path: Path) -> gx.ExpectationSuite:
    """Read one suite file; every expectation must carry ``meta.severity``.

    Unlike ``ExpectationSuite(expectations=[dict, ...])``, which logs and drops an invalid
    expectation, this raises, naming the file and entry, so a typo cannot weaken the gate.
    """
    path = Path(path)
    key = (path.resolve(), path.stat().st_mtime)
    if key in _suite_cache:
        return _suite_cache[key]
    raw = json.loads(path.read_text())
    expectations: list[Expectation] = []
    for i, entry in enumerate(raw.get("expectations", [])):
        where = f"{path.name} expectation #{i} ({entry.get('type')})"
        meta = dict(entry.get("meta") or {})
        if meta.get("severity") not in SEVERITIES:
            raise ValueError(f"{where}: meta.severity must be one of {SEVERITIES}")
        try:
            config = ExpectationConfiguration(type=entry["type"], kwargs=entry["kwargs"], meta=meta)
            expectations.append(config.to_domain_obj())
        except Exception as exc:
            raise ValueError(f"{where}: invalid expectation: {exc}") from exc
    suite = gx.ExpectationSuite(
        name=raw.get("name") or path.stem, expectations=expectations, meta=raw.get("meta") or {}
    )
    _suite_cache[key] = suite
    return suite


def severity_of(expectation: Expectation) -> str:
    return str((expectation.meta or {})["severity"])


def suite_settings(suite: gx.ExpectationSuite) -> dict[str, Any]:
    """The ``meta.nightcast`` block: key column and custom checks of the suite."""
    return dict((suite.meta or {}).get("nightcast") or {})


def _involved_columns(kwargs: Mapping[str, Any]) -> list[str]:
    cols = [kwargs[k] for k in ("column", "column_A", "column_B") if kwargs.get(k)]
    cols += list(kwargs.get("column_list") or [])
    cols += _condition_columns(kwargs.get("row_condition"))
    return cols


def _condition_columns(cond: Any) -> list[str]:
    # Row conditions come back as dicts from the configuration, as objects from the suite.
    if cond is None:
        return []
    if not isinstance(cond, Mapping):
        cond = cond.dict() if hasattr(cond, "dict") else {}
    cols = [
        str(c["name"]) for c in [cond.get("column")] if isinstance(c, Mapping) and c.get("name")
    ]
    for sub in cond.get("conditions") or []:
        cols += _condition_columns(sub)
    return cols


def _rule(type_: str, kwargs: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    if meta.get("description"):
        return str(meta["description"])
    col = kwargs.get("column")
    rules = {
        "expect_column_values_to_not_be_null": f"{col} not null",
        "expect_column_values_to_be_unique": f"{col} unique",
        "expect_column_values_to_be_in_set": f"{col} in {list(kwargs.get('value_set') or [])}",
        "expect_column_values_to_match_regex": f"{col} matches {kwargs.get('regex')}",
    }
    if type_ == "expect_column_values_to_be_between":
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        low = "" if lo is None else f"{lo} {'<' if kwargs.get('strict_min') else '<='} "
        high = "" if hi is None else f" {'<' if kwargs.get('strict_max') else '<='} {hi}"
        return f"{low}{col}{high}"
    if type_ == "expect_column_pair_values_a_to_be_greater_than_b":
        op = ">=" if kwargs.get("or_equal") else ">"
        return f"{kwargs.get('column_A')} {op} {kwargs.get('column_B')}"
    return rules.get(type_, type_)


def _to_check_result(
    res: Any, table: str, run_date: date, df: pd.DataFrame, key: str | None
) -> CheckResult:
    config = res.expectation_config
    kwargs = dict(config.kwargs)
    meta = dict(config.meta or {})
    severity = str(meta.get("severity"))
    column = (
        kwargs.get("column")
        or ",".join(c for c in (kwargs.get("column_A"), kwargs.get("column_B")) if c)
        or ",".join(kwargs.get("column_list") or [])
        or None
    )
    rule = _rule(config.type, kwargs, meta)
    missing = [c for c in _involved_columns(kwargs) if c not in df.columns]
    if missing:
        return CheckResult(
            run_date=run_date,
            suite=table,
            expectation=config.type,
            column_name=column,
            severity=severity,
            success=False,
            observed_value="column missing",
            details=f"{table} has no column {', '.join(missing)} (needed for: {rule}); "
            "check the mapping",
        )
    info = res.exception_info or {}
    if info.get("raised_exception"):
        message = str(info.get("exception_message") or "").splitlines()[0:1]
        return CheckResult(
            run_date=run_date,
            suite=table,
            expectation=config.type,
            column_name=column,
            severity=severity,
            success=False,
            observed_value="error",
            details=f"could not evaluate '{rule}' on {table}: {message[0] if message else 'error'}",
        )
    result = res.result or {}
    if "unexpected_count" in result:
        n_bad = int(result["unexpected_count"] or 0)
        n_all = int(result.get("element_count") or 0)
        pct = result.get("unexpected_percent")
        observed = f"{n_bad} unexpected of {n_all}" + (f" ({pct:.2f}%)" if pct else "")
        if res.success:
            details = f"{rule}: ok" + (f" ({n_bad} rows tolerated by mostly)" if n_bad else "")
        else:
            positions = [int(p) for p in result.get("partial_unexpected_index_list") or []]
            examples = format_examples(df, positions, _involved_columns(kwargs), key)
            if not examples:
                values = result.get("partial_unexpected_list") or []
                examples = ", ".join(format_value(v) for v in values[:3])
            details = f"{n_bad} of {n_all} {table} rows fail: {rule}; e.g. {examples}"
    else:
        observed = format_value(result.get("observed_value"))
        details = f"{rule}: {'ok' if res.success else 'failed'}"
    return CheckResult(
        run_date=run_date,
        suite=table,
        expectation=config.type,
        column_name=column,
        severity=severity,
        success=bool(res.success),
        observed_value=observed,
        details=details,
        rule=rule,
    )


def _offending(batch: Any, config: Any, column: str | None) -> tuple[Offending, ...]:
    """The most frequent failing values of one failed expectation, over ALL its failing rows.

    SUMMARY results count only the first few failures, so the expectation runs again with
    COMPLETE results; only for a failed critical check, which stops the night anyway.
    """
    try:
        again = batch.validate(config.to_domain_obj(), result_format={"result_format": "COMPLETE"})
        values = again.result.get("unexpected_list") or []
    except Exception:  # the counts decorate the message; never let them break the gate
        log.warning("could not count the failing values of %s", config.type, exc_info=True)
        return ()
    counts = Counter(_hashable(v) for v in values)
    return tuple(Offending(column, v, n) for v, n in counts.most_common(MAX_EXAMPLES))


def _hashable(value: Any) -> str:
    if isinstance(value, Mapping):
        return " ".join(f"{k}={format_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "/".join(format_value(v) for v in value)
    return format_value(value)


def _with_columns(df: pd.DataFrame, suite: gx.ExpectationSuite) -> pd.DataFrame:
    """An empty batch may come without columns; give it the suite's so checks pass vacuously."""
    if len(df):
        return df
    needed: list[str] = []
    for exp in suite.expectations:
        needed += _involved_columns(exp.configuration.kwargs)
    settings = suite_settings(suite)
    needed += [c["column"] for c in settings.get("referential_integrity") or []]
    needed += [settings["freshness"]["column"]] if settings.get("freshness") else []
    missing = [c for c in dict.fromkeys(needed) if c not in df.columns]
    return df.assign(**{c: pd.Series([], dtype=object) for c in missing}) if missing else df


def validate_table(
    table: str,
    df: pd.DataFrame,
    run_date: date,
    *,
    expectations_dir: Path,
    context: AbstractDataContext | None = None,
    known_ids: Mapping[str, Collection[str]] | None = None,
    rows_in: int | None = None,
    rows_quarantined: int | None = None,
    validations: list[Any] | None = None,
) -> list[CheckResult]:
    """Run ``expectations/<table>.json`` and the suite's custom checks on ``df``.

    ``known_ids`` maps a referenced table (``items``, ``locations``) to the ids known in
    the warehouse plus tonight's batch; without it referential integrity is skipped.
    ``rows_in``/``rows_quarantined`` (the cleaner's counts) enable the quarantine-rate check.
    ``validations``, when given, receives the GX validation result (for Data Docs).
    """
    started = time.perf_counter()
    suite = load_suite(Path(expectations_dir) / f"{table}.json")
    settings = suite_settings(suite)
    key = settings.get("key")
    # GX reports row labels; a RangeIndex makes them row positions of tonight's frame.
    frame = _with_columns(df.reset_index(drop=True), suite)
    batch = _batch_definition(context or get_context(), table).get_batch(
        batch_parameters={"dataframe": frame}
    )
    validation = batch.validate(suite, result_format=RESULT_FORMAT)
    if validations is not None:  # kept for the GX Data Docs of the run
        validations.append(validation)
    results = [_to_check_result(r, table, run_date, frame, key) for r in validation.results]
    for i, (res, result) in enumerate(zip(validation.results, results, strict=True)):
        if (
            not result.success
            and result.severity == CRITICAL
            and (res.result or {}).get("unexpected_count")
        ):
            offending = _offending(batch, res.expectation_config, result.column_name)
            results[i] = dataclasses.replace(result, offending=offending)

    fresh = settings.get("freshness")
    if fresh:
        results.append(
            check_freshness(
                frame,
                fresh["column"],
                run_date,
                int(fresh["max_age_days"]),
                table=table,
                severity=fresh.get("severity", "critical"),
            )
        )
    for ri in settings.get("referential_integrity") or []:
        if known_ids is None:
            log.debug(
                "%s: no known_ids given, skipping %s -> %s", table, ri["column"], ri["references"]
            )
            continue
        if ri["references"] not in known_ids:
            raise ValueError(f"{table}: known_ids has no entry for {ri['references']!r}")
        results.append(
            check_referential_integrity(
                frame,
                ri["column"],
                known_ids[ri["references"]],
                table,
                references=ri["references"],
                run_date=run_date,
                severity=ri.get("severity", "critical"),
                key=key,
            )
        )
    if rows_in is not None and rows_quarantined is not None:
        for level in settings.get("quarantine_rate") or []:
            results.append(
                check_quarantine_rate(
                    rows_in,
                    rows_quarantined,
                    float(level["threshold"]),
                    table=table,
                    run_date=run_date,
                    severity=level.get("severity", "critical"),
                )
            )

    failed_critical = sum(1 for r in results if not r.success and r.severity == "critical")
    failed_warning = sum(1 for r in results if not r.success and r.severity == "warning")
    log.info(
        "dq %s run_date=%s rows=%d: %d checks, %d passed, %d critical failed, "
        "%d warnings failed, %.2fs",
        table,
        run_date,
        len(frame),
        len(results),
        sum(r.success for r in results),
        failed_critical,
        failed_warning,
        time.perf_counter() - started,
    )
    return results
