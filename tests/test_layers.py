"""The layer contract (`[tool.importlinter]` in pyproject.toml) holds, and it can fail: a copy of
the packages with one import that points up the layers breaks it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("platesift", "actors", "fsm", "models", "journal", "sim", "training")
LINT = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    if not LINT.exists():
        pytest.skip("import-linter is not installed (the dev extra)")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("*.tflite"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_layers_hold(tree: Path) -> None:
    result = lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong"),
    [
        ("models/proposer.py", "import platesift.app.doctor"),  # a model reaching for the app
        ("platesift/artifacts.py", "import actors.messages"),  # the base reaching up
        ("sim/scenes.py", "import actors.nas"),  # two independent siblings
    ],
)
def test_an_import_up_the_layers_breaks_the_contract(tree: Path, module: str, wrong: str) -> None:
    path = tree / module
    path.write_text(path.read_text() + f"\n{wrong}  # noqa\n")
    result = lint(tree)
    assert result.returncode == 1, result.stdout
    assert "BROKEN" in result.stdout and wrong.split()[1] in result.stdout
