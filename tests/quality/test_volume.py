"""Volume check: tonight's row count against the band learned from the last N runs."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from nightcast.quality.gate import load_suite, suite_settings
from nightcast.quality.volume import VolumeRule, check_volume, volume_band

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2025, 5, 1)
HISTORY = [1000, 1040, 980, 1010, 995, 1020, 970, 1005, 990, 1030, 1000, 1015, 985, 1010]


def test_band_is_median_plus_minus_k_mad_with_a_relative_floor() -> None:
    low, high = volume_band([100, 100, 100], k=5, min_tolerance=0.5)
    assert (low, high) == (50.0, 150.0)  # MAD 0: the relative floor keeps a band
    low, high = volume_band([100, 110, 90, 100, 100], k=5, min_tolerance=0.0)
    assert low == pytest.approx(100 - 5 * 1.4826 * 0) and high == pytest.approx(100.0)
    low, high = volume_band([100, 120, 80, 110, 90], k=2, min_tolerance=0.0)
    assert (low, high) == pytest.approx((100 - 2 * 10 * 1.4826, 100 + 2 * 10 * 1.4826))


def test_normal_night_passes_and_a_collapse_or_spike_fails() -> None:
    rule = VolumeRule(runs=14, min_runs=14, k=5, min_tolerance=0.5)
    ok = check_volume(1003, HISTORY, rule, table="order_lines", source="demo", run_date=DAY)
    assert ok.success and ok.severity == "warning" and ok.expectation == "nightcast_volume"
    low = check_volume(12, HISTORY, rule, table="order_lines", source="demo", run_date=DAY)
    assert not low.success
    assert "demo.order_lines: 12 rows tonight, fewer than the band" in low.details
    assert "source demo: 12 rows (band 501..1504, median 1002.5" in low.observed_value
    high = check_volume(5000, HISTORY, rule, table="order_lines", source="demo", run_date=DAY)
    assert not high.success and "more than the band" in high.details


def test_skipped_until_enough_history() -> None:
    rule = VolumeRule(runs=14, min_runs=14)
    res = check_volume(0, HISTORY[:5], rule, table="items", source="demo", run_date=DAY)
    assert res.success and "not learned yet" in res.details and "5 of 14" in res.observed_value


def test_only_the_last_n_runs_count() -> None:
    rule = VolumeRule(runs=3, min_runs=3, k=1, min_tolerance=0.1)
    # newest first: the band comes from the last 3 runs (about 100), not the old 10000s
    res = check_volume(100, [100, 101, 99, 10000, 10000], rule, table="t", source="s")
    assert res.success


def test_rule_from_suite_meta_and_validation() -> None:
    rule = VolumeRule.from_meta({"runs": 7, "severity": "critical", "k": 3})
    assert (rule.runs, rule.min_runs, rule.k, rule.severity) == (7, 7, 3.0, "critical")
    assert VolumeRule.from_meta(None) == VolumeRule()
    with pytest.raises(ValueError, match="severity"):
        VolumeRule.from_meta({"severity": "fatal"})
    with pytest.raises(ValueError, match="unknown keys"):
        VolumeRule.from_meta({"window": 3})
    with pytest.raises(ValueError, match="min_runs"):
        VolumeRule.from_meta({"runs": 3, "min_runs": 5})


@pytest.mark.parametrize("path", sorted((ROOT / "expectations").glob("*.json")))
def test_every_suite_declares_a_valid_volume_rule(path: Path) -> None:
    meta = suite_settings(load_suite(path)).get("volume")
    assert meta is not None, path.name
    rule = VolumeRule.from_meta(meta, where=path.name)
    assert rule.severity == "warning" and rule.runs == 14
    assert json.loads(path.read_text())["meta"]["version"] >= 2
