"""The package's layering (pyproject.toml [tool.importlinter]): nothing imports upward.

monitoring never imports pipeline, forecasting never imports monitoring, the
storage and settings modules import no domain package, and so on. `lint-imports`
checks every import, lazy ones inside functions included.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(package_parent: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_no_package_imports_upward() -> None:
    proc = _lint(ROOT / "include")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "Contracts: 1 kept, 0 broken" in proc.stdout, proc.stdout[-2000:]


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    """The check can fail: a copy of the package where monitoring imports pipeline."""
    copy = tmp_path / "nightcast"
    shutil.copytree(
        ROOT / "include" / "nightcast", copy, ignore=shutil.ignore_patterns("__pycache__")
    )
    drift = copy / "monitoring" / "drift.py"
    drift.write_text(
        drift.read_text()
        + "\n\ndef _upward() -> None:\n    from nightcast.pipeline import stages  # noqa\n"
    )
    proc = _lint(tmp_path)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "nightcast.monitoring.drift -> nightcast.pipeline.stages" in proc.stdout, proc.stdout[
        -2000:
    ]
