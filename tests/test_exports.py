"""Every module's `__all__` is honoured: a public name imported from one of our modules is in
that module's `__all__` (names with a leading underscore are private on purpose and exempt;
tests may reach for them)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("platesift", "actors", "fsm", "models", "journal", "sim", "training")


def _imports() -> list[tuple[str, str, str]]:
    """(importing file, module, name) for every `from <ours> import <name>`."""
    found = []
    for package in (*PACKAGES, "tests"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                ours = isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                if ours and node.module.split(".")[0] in PACKAGES:  # type: ignore[union-attr]
                    rel = str(path.relative_to(ROOT))
                    found.extend((rel, node.module, a.name) for a in node.names)  # type: ignore[union-attr]
    return found


def test_public_names_are_imported_only_from_modules_that_export_them() -> None:
    wrong = []
    for where, module_name, name in _imports():
        if name.startswith("_") or name == "*":
            continue
        module = importlib.import_module(module_name)
        exported = getattr(module, "__all__", None)
        if exported is None:
            continue
        is_submodule = hasattr(module, "__path__") and (
            importlib.util.find_spec(f"{module_name}.{name}") is not None
        )
        if name not in exported and not is_submodule:
            wrong.append(f"{where}: {name} is not in {module_name}.__all__")
    assert not wrong, "\n".join(wrong)


def test_every_module_of_ours_declares_all() -> None:
    missing = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name not in ("__init__.py", "__main__.py") and "__all__" not in path.read_text()
    ]
    assert not missing, missing
