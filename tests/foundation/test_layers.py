"""The layer rules hold, and `make lint` would fail the day one of them is broken.

Each case copies the code into a temporary tree, adds one import that breaks one contract, and runs
import-linter there: it must name that contract as broken. The real tree must keep every contract."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from api.kit.config import PROJECT_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

BREAKS = {
    "kit knows no area": ("api/kit/clock.py", "import api.identity.service"),
    "models import no api area": ("models/catalog.py", "import api.applications.states"),
    "integrations import only kit": ("integrations/sms/base.py", "import models.identity"),
    "only models and kit.db import tortoise": ("api/catalog/handlers.py", "import tortoise"),
    "areas talk to other areas only through their service modules": (
        "api/stats/handlers.py",
        "import api.applications.schemas",
    ),
}


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy(tmp: Path) -> Path:
    root = tmp / "tree"
    for name in ("api", "models", "integrations"):
        shutil.copytree(PROJECT_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "tests").mkdir()
    (root / "tests" / "__init__.py").write_text("")
    shutil.copy(PROJECT_ROOT / "tests" / "lint_contracts.py", root / "tests" / "lint_contracts.py")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_tree_keeps_every_contract():
    run = _lint(PROJECT_ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    for name in BREAKS:
        assert f"{name} KEPT" in run.stdout


@pytest.mark.parametrize("contract", sorted(BREAKS))
def test_one_bad_import_breaks_its_contract(tmp_path, contract):
    root = _copy(tmp_path)
    module, line = BREAKS[contract]
    path = root / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    run = _lint(root)
    assert run.returncode != 0
    assert f"{contract} BROKEN" in run.stdout, run.stdout
