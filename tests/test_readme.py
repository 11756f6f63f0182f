"""The README documents every command and setting, and its state diagram is the code's."""

from __future__ import annotations

import argparse
from pathlib import Path

from fsm.diagram import mermaid
from platesift.app.cli import build_parser
from platesift.config import describe

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


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


def test_every_setting_is_documented_with_its_default() -> None:
    for key, default, _ in describe():
        assert f"| `{key}` | `{default}` |" in README, f"{key} missing from the settings table"


def test_state_diagram_is_generated_from_the_code() -> None:
    assert f"```mermaid\n{mermaid()}```" in README


def test_the_two_setup_commands_are_shown() -> None:
    assert "make demo" in README and "make test" in README
