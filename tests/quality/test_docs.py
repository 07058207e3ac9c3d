"""GX Data Docs per night share one copy of GX's static assets."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from nightcast.quality.docs import write_gx_data_docs


def test_nights_share_static_assets_and_reruns_rebuild(tmp_path: Path) -> None:
    docs = tmp_path / "dq_docs"
    pages = [
        write_gx_data_docs([], docs / f"date={d.isoformat()}" / "gx", d)
        for d in (date(2025, 5, 1), date(2025, 5, 2), date(2025, 5, 1))  # the last is a rerun
    ]
    assert all(p.is_file() for p in pages)
    statics = [p.parent / "static" for p in pages[:2]]
    assert all(s.is_symlink() for s in statics)
    assert statics[0].resolve() == statics[1].resolve()
    shared = statics[0].resolve()
    assert shared.parent == docs.resolve() and any(shared.rglob("*.css"))
    assert [p.name for p in docs.iterdir() if p.name.startswith("_gx_static")] == [shared.name]
