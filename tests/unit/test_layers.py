"""The layering, bottom up: ``schemas`` → ``infra`` → the services → ``modelgate`` (the roof).

``make lint`` checks it with import-linter (contracts in pyproject.toml); these tests hold the
repository to the contracts and show that the contracts catch an upward import of each kind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
ROOT_PACKAGES = [
    "schemas",
    "infra",
    "ingress",
    "predictor",
    "metrics_consumer",
    "management_api",
    "modelgate",
    "bench",
    "tests",
]


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_repository_keeps_every_layer_contract() -> None:
    """The model store is in infra, the CLI/supervisor/demo in modelgate: nothing is broken."""
    out = lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 kept, 0 broken" in out.stdout


def test_an_upward_or_sideways_import_of_each_kind_breaks_its_contract(tmp_path: Path) -> None:
    """The same contracts, on a skeleton of the packages with one bad import per contract:
    schemas → infra, infra → the roof, a service → another, a service → the roof."""
    for package in ROOT_PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "schemas" / "bad.py").write_text("import infra\n")
    (tmp_path / "infra" / "bad.py").write_text("import modelgate\n")
    (tmp_path / "management_api" / "bad.py").write_text("import predictor\n")
    (tmp_path / "ingress" / "bad.py").write_text("import modelgate\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")

    out = lint_imports(tmp_path)

    assert out.returncode != 0
    assert "0 kept, 4 broken" in out.stdout, out.stdout + out.stderr
    for line in (
        "schemas.bad -> infra",
        "infra.bad -> modelgate",
        "management_api.bad -> predictor",
        "ingress.bad -> modelgate",
    ):
        assert line in out.stdout, out.stdout
