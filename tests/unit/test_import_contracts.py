"""The layer contracts in pyproject.toml hold today, and a deliberate violation breaks them.

`make lint` runs `lint-imports`; these tests show the contracts are real: a copy of the tree is
linted as it is (kept) and with one forbidden import planted (broken), so a contract that
silently matched nothing (a mistyped wildcard, a renamed package) would fail here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "services", "caseshare", "bench", "tests", "examples")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the packages and the contracts, outside the installed tree."""
    copy = tmp_path_factory.mktemp("tree")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tree_keeps_every_contract(pristine: Path) -> None:
    result = lint(pristine)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        ("shared/db.py", "import services.registry.tables", "shared is plumbing"),
        ("services/registry/cases/rules.py", "import sqlalchemy", "rules are pure"),
        ("services/registry/standing/rules.py", "import httpx", "rules are pure"),
        ("services/intake/app.py", "import services.router.relay", "intake and router"),
        ("bench/stats.py", "import tests.factories", "bench and tests"),
        ("services/router/app.py", "import caseshare.cli", "services never import"),
    ],
)
def test_a_planted_violation_breaks_its_contract(
    pristine: Path, tmp_path: Path, module: str, planted: str, contract: str
) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(pristine, tree)
    target = tree / module
    target.write_text(target.read_text() + f"\n{planted}  # planted\n")
    result = lint(tree)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout
