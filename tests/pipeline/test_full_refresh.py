"""A full refresh never replaces a table on thin evidence (issue 11, finding 1).

An empty or sharply shrunk full export stops the night naming the file from the first
night on, by comparing with the table's current rows; the mapping can say a table may
be empty or shrink, and on-call can allow one night with the command the error prints
(recorded in ``audit.overrides``).
"""

from __future__ import annotations

import re
import shlex
from datetime import timedelta

import pytest
from _acme import ITEMS, LINES, RUN_DATE, STORES, Acme

from nightcast import cli
from nightcast.pipeline import stages
from nightcast.pipeline.intake import FullRefreshError
from nightcast.warehouse.base import open_warehouse

DAY2 = RUN_DATE + timedelta(days=1)
# Ten items tonight; tomorrow's export keeps only the first two (80% fewer).
TEN_ITEMS = "ITEM,NAME,CHANGED\n" + "".join(
    f"{i},Item {i},2025-04-01 10:00:00\n" for i in range(1, 11)
)
LINES_DAY2 = LINES.replace("2025-05-01", str(DAY2))


def night(acme: Acme, day: object) -> None:
    stages.extract(acme.settings, "acme", day)  # type: ignore[arg-type]
    cleaned = [stages.clean(acme.settings, "acme", day)]  # type: ignore[arg-type]
    stages.load(acme.settings, day, cleaned)  # type: ignore[arg-type]


def items(acme: Acme) -> int:
    with open_warehouse(acme.settings.warehouse_url) as wh:
        row = wh.fetchone("select count(*) from raw.items where source = 'acme'")
    return int(row[0]) if row else 0


@pytest.fixture
def ten(acme: Acme) -> Acme:
    acme.write_mapping("{S: shipped, R: returned}")
    acme.drop_files(RUN_DATE, items_csv=TEN_ITEMS, stores_csv=STORES, lines_csv=LINES)
    night(acme, RUN_DATE)
    assert items(acme) == 10
    acme.drop_files(DAY2, items_csv=ITEMS, stores_csv=STORES, lines_csv=LINES_DAY2)
    return acme


def set_table_option(acme: Acme, option: str) -> None:
    path = acme.settings.sources_dir / "acme.yaml"
    text = path.read_text()
    path.write_text(text.replace("    file: items.csv\n", f"    file: items.csv\n    {option}\n"))


def test_a_sharply_shrunk_full_export_stops_the_night_on_the_first_night(ten: Acme) -> None:
    with pytest.raises(FullRefreshError) as err:
        night(ten, DAY2)
    message = str(err.value)
    for part in ("'acme'", "'items'", "items.csv", "80%", "max_shrink", "10 row(s)", "with 2"):
        assert part in message, message
    assert items(ten) == 10


def test_the_mapping_may_allow_the_shrink(ten: Acme) -> None:
    set_table_option(ten, "max_shrink: 0.9")
    night(ten, DAY2)
    assert items(ten) == 2


def test_the_mapping_may_allow_an_empty_export(ten: Acme) -> None:
    set_table_option(ten, "allow_empty: true")
    (ten.drop / str(DAY2) / "items.csv").write_text("ITEM,NAME,CHANGED\n")
    night(ten, DAY2)
    assert items(ten) == 0


def test_the_printed_override_command_allows_that_night_only_and_is_audited(
    ten: Acme, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(FullRefreshError) as err:
        night(ten, DAY2)
    printed = re.search(r"nightcast (allow-refresh .*?'<why>')", str(err.value))
    assert printed, str(err.value)
    argv = shlex.split(printed.group(1).replace("<why>", "the catalogue was pruned"))
    assert cli.main(argv) == 0
    assert "audit.overrides" in capsys.readouterr().out
    night(ten, DAY2)
    assert items(ten) == 2
    with open_warehouse(ten.settings.warehouse_url) as wh:
        rows = wh.fetchall("select action, run_date, reason from audit.overrides")
    assert rows == [("allow_full_refresh acme.items", DAY2, "the catalogue was pruned")]
    # The next night is not covered by that permission.
    day3 = DAY2 + timedelta(days=1)
    ten.drop_files(day3, items_csv="ITEM,NAME,CHANGED\n", stores_csv=STORES, lines_csv=LINES_DAY2)
    with pytest.raises(FullRefreshError):
        night(ten, day3)
    assert items(ten) == 2


def test_allow_refresh_refuses_an_unknown_or_incremental_table(
    ten: Acme, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["allow-refresh", "acme", "order_lines", "--run-date", str(DAY2), "--reason", "x"]
    assert cli.main(argv) == 2
    assert "full-refresh tables: items, locations" in capsys.readouterr().err


def test_an_empty_export_into_a_table_without_rows_of_the_source_destroys_nothing(
    acme: Acme,
) -> None:
    # e.g. an optional file the source never exports: nothing to protect, nothing refused.
    acme.write_mapping("{S: shipped, R: returned}")
    acme.drop_files(RUN_DATE, items_csv="ITEM,NAME,CHANGED\n")
    night(acme, RUN_DATE)
    assert items(acme) == 0
