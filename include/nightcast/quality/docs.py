"""GX Data Docs of one night's gate: ``<lake>/dq_docs/date=D/gx/index.html``.

The gate validates on a process-wide ephemeral context (in-memory stores). For the
docs, a second ephemeral context with a filesystem docs site is built per night (a few
ms), the night's GX validation results are put into its in-memory results store, and
``build_data_docs()`` renders them (~0.3 s). GX's ~4 MB of static assets are kept
once per GX version under ``dq_docs/`` and linked from each night's site. The custom Nightcast checks (freshness, referential integrity, quarantine rate,
volume) are not GX expectations and are in the run's own ``index.html`` one level up.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import great_expectations as gx
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)

from nightcast.storage import Location, location

log = logging.getLogger("nightcast.quality")

SITE = "nightcast_night"


def write_gx_data_docs(
    validations: Sequence[Any], folder: Location | Path, run_date: date
) -> Location:
    """Render ``validations`` (GX suite validation results) as a Data Docs site in ``folder``.

    The folder is replaced, so a rerun of the night leaves only its own pages. GX
    renders to a local folder: on a local lake that is ``folder`` itself (the static
    assets shared between nights by a symlink), on S3 a scratch folder whose files
    are then uploaded, static assets included (~4 MB per night; S3 has no links).
    """
    target = location(folder)
    if target.is_local:
        local = target.local_path()
        if local.exists():
            shutil.rmtree(local)
        local.mkdir(parents=True)
        _render(validations, local, run_date)
        _share_static_assets(local)
        return target / "index.html"
    with tempfile.TemporaryDirectory(prefix="nightcast-gx-") as tmp:
        _render(validations, Path(tmp), run_date)
        target.delete_tree()
        target.upload_tree(Path(tmp))
    return target / "index.html"


def _render(validations: Sequence[Any], folder: Path, run_date: date) -> None:
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={
            SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(folder),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    run_id = RunIdentifier(run_name=run_date.isoformat())
    for validation in validations:
        suite = str(validation.suite_name)
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite),
            run_id=run_id,
            batch_identifier=suite,
        )
        context.validation_results_store.set(key, validation)
    context.build_data_docs(site_names=[SITE])


def _share_static_assets(folder: Path) -> None:
    """Keep one copy of GX's ~4 MB of static assets for all nights (a relative symlink per night)."""
    static = folder / "static"
    if not static.is_dir() or static.is_symlink():
        return
    shared = folder.parent.parent / f"_gx_static-{gx.__version__}"
    if shared.is_dir():
        shutil.rmtree(static)
    else:
        static.rename(shared)
    static.symlink_to(Path("..") / ".." / shared.name, target_is_directory=True)
