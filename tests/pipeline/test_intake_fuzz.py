"""Fuzzed exports through the real stages: every record loaded, quarantined, or the night stops.

Hypothesis generates messy ``order_lines`` exports (:mod:`_csv_fuzz`: dialects, encodings,
line endings, header noise, edge numbers and dates, NUL and control characters, ragged
rows, unterminated quotes...) and runs each as one night (extract → clean → load) on
DuckDB and on a fresh PostgreSQL database. Each night either stops with an error naming
source, table and file, leaving ``raw.order_lines`` and the watermark as they were, or
loaded + quarantined equals the records Python's strict ``csv`` reader finds in the file,
and every loaded value is the file's value.

About 200 examples in all (profile ``intake-fuzz``, ``NIGHTCAST_FUZZ_EXAMPLES`` to change);
``bench/fuzz_intake.py`` runs the same check over thousands of files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _csv_fuzz import Export, FuzzWorld, exports
from _services import fresh_postgres_database
from hypothesis import HealthCheck, Phase, given, settings

settings.register_profile(
    "intake-fuzz",
    max_examples=int(os.environ.get("NIGHTCAST_FUZZ_EXAMPLES", "100")),  # per warehouse
    deadline=None,
    database=None,
    derandomize=True,  # the same files every run: a red build is reproducible
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=(HealthCheck.too_slow, HealthCheck.data_too_large),
)

HEADER = "LINE,ORDER,DAY,ITEM,STORE,QTY,PRICE,CUR,STATUS,CHANGED\n"
ROW = "{line},1,2025-05-01,1,10,{qty},1.5,EUR,S,2025-05-01 09:00:00\n"

# Regressions the fuzzer found, kept as explicit examples of the same property.
REGRESSIONS: list[Export] = [
    # "-0" loaded as 0.0: the plain-number path read it as the integer 0 (sign lost).
    Export(
        (HEADER + ROW.format(line=1, qty="-0") + ROW.format(line=2, qty="-0.0")).encode(),
        ",",
        '"',
        "utf-8",
        "incremental",
    ),
    # A mapped column missing from the header: the schema-drift error named only the
    # landed Parquet file, not the export file it came from.
    Export(
        (HEADER.replace("DAY,", "") + "1,1,1,10,2,1.5,EUR,S,2025-05-01 09:00:00\n").encode(),
        ",",
        '"',
        "utf-8",
        "incremental",
    ),
]


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_every_fuzzed_record_is_loaded_quarantined_or_the_night_stops(
    backend: str, tmp_path: Path
) -> None:
    url = fresh_postgres_database("nightcast_intake_fuzz") if backend == "postgres" else None
    world = FuzzWorld(tmp_path, url)

    @settings(settings.get_profile("intake-fuzz"))
    @given(exports())
    def one_night(export: Export) -> None:
        problems = world.night(export)
        assert not problems, "\n".join(problems)

    try:
        for export in REGRESSIONS:
            assert not world.night(export), export.describe()
        one_night()
    finally:
        world.close()
    # The generator reaches every outcome, not only refusals.
    t = world.tally
    assert t.loaded and t.quarantined and t.refused, t
