"""The data-quality gate on small hand-built canonical tables."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nightcast.quality import (
    DQ_RESULT_COLUMNS,
    CheckResult,
    DataQualityError,
    GateReport,
    check_freshness,
    check_quarantine_rate,
    check_referential_integrity,
    load_suite,
    results_frame,
    severity_of,
    validate_table,
    write_html_report,
)
from nightcast.warehouse.schema import CANONICAL_TABLES, OPS_TABLES

EXPECTATIONS = Path(__file__).resolve().parents[2] / "expectations"
RUN = date(2024, 3, 10)
UPDATED = datetime(2024, 3, 10, 18, 30)
KNOWN = {"items": {"demo:I1", "demo:I2"}, "locations": {"demo:S1", "demo:W1"}}


def order_lines() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": ["demo"] * 4,
            "order_line_id": ["demo:L1", "demo:L2", "demo:L3", "demo:L4"],
            "order_id": ["demo:O1", "demo:O1", "demo:O2", "demo:O3"],
            "order_date": [RUN, RUN, RUN - timedelta(days=1), RUN],
            "item_id": ["demo:I1", "demo:I2", "demo:I1", "demo:I2"],
            "location_id": ["demo:S1", "demo:S1", "demo:W1", "demo:S1"],
            "quantity": [2.0, 1.0, -1.0, 0.0],
            "unit_price": [9.99, 4.5, 9.99, 4.5],
            "amount": [19.98, 4.5, -9.99, 0.0],
            "currency": ["EUR"] * 4,
            "status": ["shipped", "open", "returned", "cancelled"],
            "updated_at": [UPDATED] * 4,
            "_run_date": [RUN] * 4,
        }
    )


def items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": ["demo", "demo"],
            "item_id": ["demo:I1", "demo:I2"],
            "sku": ["SKU-1", "SKU-2"],
            "name": ["Mug", "Tea"],
            "department": ["Home", "Food"],
            "category": ["Kitchen", "Drinks"],
            "subcategory": ["Mugs", "Tea"],
            "list_price": [9.99, 4.5],
            "launch_date": [date(2022, 1, 1), date(2023, 6, 1)],
            "discontinue_date": [None, date(2025, 1, 1)],
            "updated_at": [UPDATED, UPDATED],
            "_run_date": [RUN, RUN],
        }
    )


def locations() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": ["demo", "demo", "demo"],
            "location_id": ["demo:S1", "demo:W1", "demo:WEB"],
            "name": ["Main St", "Depot", "Web shop"],
            "location_type": ["store", "warehouse", "online"],
            "country": ["DE", "DE", "FR"],
            "region": ["Berlin", "Berlin", None],
            "updated_at": [UPDATED] * 3,
            "_run_date": [RUN] * 3,
        }
    )


def promotions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": ["demo", "demo"],
            "promotion_id": ["demo:P1", "demo:P2"],
            "item_id": ["demo:I1", "demo:I2"],
            "location_id": ["demo:S1", None],
            "start_date": [date(2024, 3, 1), date(2024, 3, 10)],
            "end_date": [date(2024, 3, 14), date(2024, 3, 10)],
            "discount_pct": [0.2, 0.0],
            "updated_at": [UPDATED, UPDATED],
            "_run_date": [RUN, RUN],
        }
    )


def stockouts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": ["demo"],
            "stockout_id": ["demo:X1"],
            "item_id": ["demo:I1"],
            "location_id": ["demo:S1"],
            "stockout_date": [RUN],
            "updated_at": [UPDATED],
            "_run_date": [RUN],
        }
    )


CLEAN: dict[str, Callable[[], pd.DataFrame]] = {
    "order_lines": order_lines,
    "items": items,
    "locations": locations,
    "promotions": promotions,
    "stockouts": stockouts,
}


def run(table: str, df: pd.DataFrame, **kwargs: object) -> list[CheckResult]:
    return validate_table(table, df, RUN, expectations_dir=EXPECTATIONS, **kwargs)  # type: ignore[arg-type]


def only_failure(results: list[CheckResult]) -> CheckResult:
    failed = [r for r in results if not r.success]
    assert len(failed) == 1, [r.describe() for r in failed]
    return failed[0]


@pytest.mark.parametrize("table", sorted(CLEAN))
def test_clean_tables_pass_every_check(table: str) -> None:
    results = run(table, CLEAN[table](), known_ids=KNOWN, rows_in=100, rows_quarantined=0)
    assert [r.describe() for r in results if not r.success] == []
    assert len(results) >= 8
    assert {r.run_date for r in results} == {RUN}
    assert {r.suite for r in results} == {table}


@pytest.mark.parametrize("table", sorted(CLEAN))
def test_empty_frames_pass(table: str) -> None:
    typed_empty = CLEAN[table]().iloc[0:0]
    for df in (typed_empty, pd.DataFrame()):
        results = run(table, df, known_ids=KNOWN, rows_in=0, rows_quarantined=0)
        assert results and all(r.success for r in results), [r.describe() for r in results]


def _null_key(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[1, "order_line_id"] = None
    return df


def _duplicate_key(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[2, "order_line_id"] = "demo:L1"
    return df


def _unknown_status(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[1, "status"] = "lost"
    return df


def _negative_shipped(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[0, "quantity"] = -4.0
    return df


def _negative_price(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[3, "unit_price"] = -1.5
    return df


@pytest.mark.parametrize(
    ("mutate", "expectation", "column", "example"),
    [
        (_null_key, "expect_column_values_to_not_be_null", "order_line_id", "row 1"),
        (_duplicate_key, "expect_column_values_to_be_unique", "order_line_id", "demo:L1"),
        (_unknown_status, "expect_column_values_to_be_in_set", "status", "status=lost"),
        (_negative_shipped, "expect_column_values_to_be_between", "quantity", "quantity=-4.0"),
        (_negative_price, "expect_column_values_to_be_between", "unit_price", "unit_price=-1.5"),
    ],
)
def test_injected_order_line_problems_fail_critically(
    mutate: Callable[[pd.DataFrame], pd.DataFrame], expectation: str, column: str, example: str
) -> None:
    failure = only_failure(run("order_lines", mutate(order_lines()), known_ids=KNOWN))
    assert (failure.expectation, failure.column_name, failure.severity) == (
        expectation,
        column,
        "critical",
    )
    assert "order_lines" in failure.details and column in failure.details
    assert example in failure.details
    with pytest.raises(DataQualityError) as err:
        GateReport([failure]).raise_if_critical()
    assert example in str(err.value) and "table order_lines, column " + column in str(err.value)


def test_negative_quantity_on_return_is_allowed_but_not_on_shipped() -> None:
    df = order_lines()
    df.loc[0, "quantity"] = -4.0
    failure = only_failure(run("order_lines", df))
    assert "status=shipped" in failure.details
    assert "row 0 order_line_id=demo:L1" in failure.details
    assert failure.observed_value.startswith("1 unexpected of 3")  # returns are excluded


def test_unknown_item_fails_referential_integrity() -> None:
    df = order_lines()
    df.loc[2, "item_id"] = "demo:GHOST"
    failure = only_failure(run("order_lines", df, known_ids=KNOWN))
    assert failure.expectation == "nightcast_referential_integrity_items"
    assert (failure.column_name, failure.severity) == ("item_id", "critical")
    assert "demo:GHOST" in failure.details and "order_line_id=demo:L3" in failure.details


def test_top_offending_values_count_every_failing_row_not_the_first_few() -> None:
    # 25 lines at -1 come first, then 30 at -5: GX's summary counts only the first 20.
    quantities = [-1.0] * 25 + [-5.0] * 30 + [3.0]
    df = pd.concat([order_lines().iloc[[0]]] * len(quantities), ignore_index=True)
    df["order_line_id"] = [f"demo:L{i}" for i in range(len(df))]
    df["quantity"] = quantities
    df["amount"] = df["quantity"] * df["unit_price"]
    failure = only_failure(run("order_lines", df, known_ids=KNOWN))
    assert [(o.value, o.rows) for o in failure.offending] == [("-5.0", 30), ("-1.0", 25)]
    assert failure.headline().endswith(
        "55 unexpected of 56 (98.21%); top offending values -5.0 x30, -1.0 x25"
    )


def test_unknown_references_are_counted_per_value() -> None:
    df = pd.concat([order_lines()] * 3, ignore_index=True)
    df["order_line_id"] = [f"demo:L{i}" for i in range(len(df))]
    df.loc[[0, 4, 8], "item_id"] = "demo:GHOST"
    df.loc[[1], "item_id"] = "demo:ELF"
    failure = only_failure(run("order_lines", df, known_ids=KNOWN))
    assert failure.headline() == (
        "order_lines: nightcast_referential_integrity_items on item_id (every item_id exists "
        "in items): 4 unknown of 12; top offending values demo:GHOST x3, demo:ELF x1"
    )


def test_referential_integrity_ignores_nulls_and_accepts_any_collection() -> None:
    df = promotions()
    result = check_referential_integrity(df, "location_id", ["demo:S1"], "promotions")
    assert result.success and result.run_date == RUN  # taken from _run_date
    with pytest.raises(ValueError, match="locations"):
        run("order_lines", order_lines(), known_ids={"items": KNOWN["items"]})


def test_stale_order_lines_fail_freshness() -> None:
    df = order_lines()
    df["updated_at"] = datetime(2024, 2, 1, 9, 0)
    failure = only_failure(run("order_lines", df))
    assert (failure.expectation, failure.column_name) == ("nightcast_freshness", "updated_at")
    assert failure.severity == "critical"
    assert "2024-02-01T09:00:00" in failure.details and "order_lines" in failure.details


def test_freshness_handles_timezones_and_boundaries() -> None:
    df = pd.DataFrame({"updated_at": pd.to_datetime(["2024-03-07 23:00"]).tz_localize("UTC")})
    assert check_freshness(df, "updated_at", RUN, 3, table="t").success
    assert not check_freshness(df, "updated_at", RUN, 2, table="t").success


def test_promotion_ending_before_it_starts_fails() -> None:
    df = promotions()
    df.loc[1, "end_date"] = date(2024, 3, 5)
    failure = only_failure(run("promotions", df, known_ids=KNOWN))
    assert failure.expectation == "expect_column_pair_values_a_to_be_greater_than_b"
    assert (failure.column_name, failure.severity) == ("end_date,start_date", "critical")
    assert "promotion_id=demo:P2" in failure.details and "end_date=2024-03-05" in failure.details


def test_discount_must_be_a_fraction() -> None:
    df = promotions()
    df.loc[0, "discount_pct"] = 20.0
    failure = only_failure(run("promotions", df))
    assert (failure.column_name, failure.severity) == ("discount_pct", "critical")
    assert "discount_pct=20.0" in failure.details


def test_location_type_outside_set_fails() -> None:
    df = locations()
    df.loc[0, "location_type"] = "kiosk"
    failure = only_failure(run("locations", df))
    assert (failure.column_name, failure.severity) == ("location_type", "critical")
    assert "location_id=demo:S1 location_type=kiosk" in failure.details


def test_quarantine_rate_levels() -> None:
    results = run("order_lines", order_lines(), rows_in=100, rows_quarantined=3)
    failure = only_failure(results)
    assert failure.expectation == "nightcast_quarantine_rate" and failure.severity == "warning"
    results = run("order_lines", order_lines(), rows_in=100, rows_quarantined=10)
    report = GateReport(results)
    assert [r.severity for r in report.critical_failures] == ["critical"]
    assert "10 of 100 order_lines rows quarantined" in report.critical_failures[0].details
    assert check_quarantine_rate(0, 0, 0.05).success


def test_warning_only_does_not_raise() -> None:
    df = items()
    df.loc[0, "sku"] = None
    report = GateReport(run("items", df))
    assert [(r.column_name, r.severity) for r in report.warnings] == [("sku", "warning")]
    assert report.critical_failures == [] and report.passed
    report.raise_if_critical()


def test_raise_message_is_actionable() -> None:
    df = order_lines()
    df.loc[0, "quantity"] = -4.0
    df.loc[1, "item_id"] = "demo:GHOST"
    report = GateReport(run("order_lines", df, known_ids=KNOWN))
    with pytest.raises(DataQualityError) as err:
        report.raise_if_critical()
    message = str(err.value)
    assert "2 critical check(s) failed" in message
    assert "table order_lines, column quantity" in message
    assert "table order_lines, column item_id" in message
    assert "demo:GHOST" in message and "quantity=-4.0" in message
    # Clearing validate alone would re-check the same rows: the hint starts at the extract.
    assert "clear the extract_<source> task with downstream" in message
    assert "clearing validate alone re-checks the same cleaned rows" in message
    assert "last published forecast" in message
    assert len(err.value.failures) == 2


def test_raise_names_the_sources_that_fed_the_failed_tables() -> None:
    df = order_lines()
    df.loc[0, "quantity"] = -4.0
    report = GateReport(run("order_lines", df))
    with pytest.raises(DataQualityError) as err:
        report.raise_if_critical({"order_lines": ["erp_eu", "demo"], "items": ["pim"]})
    first, second, *_ = str(err.value).splitlines()
    # What a page shows: table, check, column, rule, the values and the sources, in one line.
    assert first == (
        "Data-quality gate failed: order_lines: expect_column_values_to_be_between on quantity "
        "(quantity >= 0 unless status is 'returned'): 1 unexpected of 3 (33.33%); "
        "top offending values -4.0 x1 (source demo, erp_eu)."
    )
    assert second == "1 critical check(s) failed in order_lines (source demo, erp_eu):"
    assert err.value.sources == ("demo", "erp_eu")
    assert "clear extract_demo, extract_erp_eu with downstream" in str(err.value)


def test_results_frame_matches_ops_dq_results(tmp_path: Path) -> None:
    results = run("order_lines", order_lines(), known_ids=KNOWN)
    results.append(check_quarantine_rate(10, 0, 0.05, table="order_lines"))
    frame = results_frame(results, run_date=RUN)
    ddl_columns = [
        line.strip().split()[0] for line in OPS_TABLES["dq_results"].strip().splitlines()
    ]
    assert list(frame.columns) == ddl_columns == list(DQ_RESULT_COLUMNS)
    assert len(frame) == len(results) and frame["success"].dtype == bool
    assert frame["run_date"].eq(RUN).all() and frame["severity"].notna().all()
    assert list(results_frame([]).columns) == ddl_columns
    with pytest.raises(ValueError, match="run_date"):
        results_frame([check_quarantine_rate(10, 0, 0.05)])
    page = write_html_report(results, tmp_path / "dq_docs" / f"date={RUN}", RUN)
    assert "PASSED" in page.read_text()


def test_every_suite_loads_with_severities() -> None:
    files = sorted(EXPECTATIONS.glob("*.json"))
    assert {f.stem for f in files} == set(CANONICAL_TABLES)
    for path in files:
        suite = load_suite(path)
        raw = json.loads(path.read_text())
        assert suite.name == path.stem
        assert len(suite.expectations) == len(raw["expectations"])
        assert {severity_of(e) for e in suite.expectations} <= {"critical", "warning"}
        for check in raw["meta"]["nightcast"].get("referential_integrity", []):
            assert check["severity"] in {"critical", "warning"}


def test_suite_without_severity_is_rejected(tmp_path: Path) -> None:
    bad = {
        "name": "x",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}, "meta": {}}
        ],
    }
    (tmp_path / "x.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="severity"):
        load_suite(tmp_path / "x.json")


def test_100k_order_lines_timing() -> None:
    n = 100_000
    rng = np.random.default_rng(7)
    status = rng.choice(["open", "shipped", "cancelled", "returned"], n)
    quantity = rng.integers(1, 10, n).astype(float)
    quantity[status == "returned"] *= -1
    df = pd.DataFrame(
        {
            "source": "demo",
            "order_line_id": [f"demo:L{i}" for i in range(n)],
            "order_id": [f"demo:O{i // 3}" for i in range(n)],
            "order_date": RUN,
            "item_id": np.where(rng.random(n) < 0.5, "demo:I1", "demo:I2"),
            "location_id": "demo:S1",
            "quantity": quantity,
            "unit_price": rng.uniform(1, 100, n).round(2),
            "amount": 0.0,
            "currency": "EUR",
            "status": status,
            "updated_at": UPDATED,
            "_run_date": RUN,
        }
    )
    started = time.perf_counter()
    results = run("order_lines", df, known_ids=KNOWN, rows_in=n, rows_quarantined=0)
    seconds = time.perf_counter() - started
    print(f"validated {n} order_lines in {seconds:.2f}s")
    assert all(r.success for r in results)
    assert seconds < 20


def test_missing_column_fails_with_a_clear_message() -> None:
    results = run("locations", locations().drop(columns=["location_type"]))
    failed = [r for r in results if not r.success]
    assert {r.column_name for r in failed} == {"location_type"}
    assert all(r.observed_value == "column missing" for r in failed)
    assert "locations has no column location_type" in failed[0].details


def test_caller_context_is_reused() -> None:
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    for _ in range(2):
        results = validate_table(
            "stockouts", stockouts(), RUN, expectations_dir=EXPECTATIONS, context=context
        )
        assert all(r.success for r in results)
    assert list(context.data_sources.all()) == ["nightcast_gate"]
