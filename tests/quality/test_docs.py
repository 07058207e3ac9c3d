"""GX Data Docs per night: one shared copy of GX's static assets on disk, whole sites on S3."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from nightcast.quality.docs import write_gx_data_docs
from nightcast.storage import location


def test_nights_share_static_assets_and_reruns_rebuild(tmp_path: Path) -> None:
    docs = tmp_path / "dq_docs"
    pages = [
        write_gx_data_docs([], docs / f"date={d.isoformat()}" / "gx", d)
        for d in (date(2025, 5, 1), date(2025, 5, 2), date(2025, 5, 1))  # the last is a rerun
    ]
    assert all(p.is_file() for p in pages)
    statics = [p.local_path().parent / "static" for p in pages[:2]]
    assert all(s.is_symlink() for s in statics)
    assert statics[0].resolve() == statics[1].resolve()
    shared = statics[0].resolve()
    assert shared.parent == docs.resolve() and any(shared.rglob("*.css"))
    assert [p.name for p in docs.iterdir() if p.name.startswith("_gx_static")] == [shared.name]


def test_docs_on_object_storage_are_a_whole_site_replaced_on_rerun(s3_root: str) -> None:
    docs = location(s3_root) / "dq_docs"
    night = docs / "date=2025-05-01" / "gx"
    (night / "stale.html").write_text("an earlier attempt's page")
    page = write_gx_data_docs([], night, date(2025, 5, 1))
    assert page == night / "index.html" and "<html" in page.read_text().lower()
    names = [f.relative_to(night) for f in night.files(recursive=True)]
    assert "stale.html" not in names
    assert any(n.startswith("static/") and n.endswith(".css") for n in names)
