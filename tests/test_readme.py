"""The README is a short reference that documents every command; the full settings table and
the state diagram in docs/ are the code's own; every document the README names exists."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from fsm.diagram import mermaid
from platesift.app.cli import build_parser
from platesift.config import describe

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()


def _commands(parser: argparse.ArgumentParser, prefix: str = "platesift") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(f"{prefix} {name}")
                found.extend(_commands(sub, f"{prefix} {name}"))
    return found


def test_every_command_is_documented() -> None:
    commands = _commands(build_parser())
    assert "platesift journal show" in commands
    for command in commands:
        assert f"`{command}" in README, f"{command} is not documented in README.md"


def _documented_commands() -> list[list[str]]:
    """The command words of each row of the README's command table."""
    rows = re.findall(r"^\| `(platesift [^`]*)` \|", README, flags=re.MULTILINE)
    assert len(rows) > 10
    return [[w for w in row.split()[1:] if re.fullmatch(r"[a-z]+", w)][:2] for row in rows]


@pytest.mark.parametrize("words", _documented_commands(), ids=" ".join)
def test_every_documented_command_runs(
    words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    parser = build_parser()
    try:
        parser.parse_args([*words, "--help"])
    except SystemExit as done:
        assert done.code == 0, f"platesift {' '.join(words)} --help failed"
    assert "usage: platesift" in capsys.readouterr().out


def test_every_setting_is_documented_with_its_default() -> None:
    for key, default, _ in describe():
        assert f"| `{key}` | `{default}` |" in CONFIGURATION, f"{key} is not in the settings table"


def test_state_diagram_is_generated_from_the_code() -> None:
    assert f"```mermaid\n{mermaid()}```" in ARCHITECTURE


def test_the_two_setup_commands_are_shown() -> None:
    assert "make demo" in README and "make test" in README


def test_the_readme_is_short_and_every_document_it_names_exists() -> None:
    assert README.count("\n") < 250
    named = set(re.findall(r"\b(docs/[\w.-]+|deploy/[\w.-]+)", README))
    assert "docs/failures.md" in named
    for name in named:
        assert (ROOT / name).exists(), f"README names {name}, which does not exist"
