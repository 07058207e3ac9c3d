"""``catch_up``: the demo ERP simulated up to a day, as if advanced night by night."""

from __future__ import annotations

import logging
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from nightcast.demo_erp import advance, catch_up, generate, last_simulated_day
from nightcast.demo_erp.schema import DATA_TABLES, erp_meta

END = date(2024, 2, 10)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("catch_up") / "erp.sqlite"
    generate(f"sqlite:///{path}", size="tiny", start=date(2024, 1, 1), end=END, seed=11)
    return path


def _dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every data table by primary key, and the metadata."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            out = {
                t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key)).all()]
                for t in DATA_TABLES
            }
            out["erp_meta"] = sorted(tuple(r) for r in conn.execute(select(erp_meta)).all())
            return out
    finally:
        engine.dispose()


def _copy(seeded: Path, tmp_path: Path, name: str) -> str:
    shutil.copy(seeded, tmp_path / name)
    return f"sqlite:///{tmp_path / name}"


def test_catch_up_equals_advancing_night_by_night(seeded: Path, tmp_path: Path) -> None:
    nightly, caught_up = (
        _copy(seeded, tmp_path, "nightly.sqlite"),
        _copy(seeded, tmp_path, "c.sqlite"),
    )
    target = END + timedelta(days=4)
    for k in range(1, 5):
        advance(nightly, END + timedelta(days=k))

    assert catch_up(caught_up, target) == 4
    assert last_simulated_day(caught_up) == target
    assert _dump(caught_up) == _dump(nightly)


def test_catch_up_never_rewrites_or_moves_back(seeded: Path, tmp_path: Path) -> None:
    url = _copy(seeded, tmp_path, "erp.sqlite")
    assert catch_up(url, END + timedelta(days=2)) == 2
    before = _dump(url)

    assert catch_up(url, END + timedelta(days=2)) == 0  # a rerun of the same night
    assert catch_up(url, END - timedelta(days=30)) == 0  # a backfill of an older night
    assert _dump(url) == before
    assert last_simulated_day(url) == END + timedelta(days=2)


def test_catch_up_logs_progress_with_time_left(
    seeded: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = _copy(seeded, tmp_path, "erp.sqlite")
    with caplog.at_level(logging.INFO, logger="nightcast.demo_erp"):
        catch_up(url, END + timedelta(days=3), progress_every_s=0)
    messages = [r.getMessage() for r in caplog.records]
    assert f"demo ERP holds business days up to {END}: simulating 3 day(s)" in messages[0]
    progress = [m for m in messages if m.startswith("demo ERP catch-up: ")]
    assert [m.split(" (")[0] for m in progress] == [
        "demo ERP catch-up: 1/3 days",
        "demo ERP catch-up: 2/3 days",
    ]
    assert all("days/s, about " in m and m.endswith(" left") for m in progress)
    assert messages[-1].startswith(
        f"demo ERP caught up: 3 day(s) simulated up to {END + timedelta(days=3)} in "
    )


def test_catch_up_needs_a_demo_erp(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no demo ERP at"):
        catch_up(f"sqlite:///{tmp_path / 'empty.sqlite'}", END)
