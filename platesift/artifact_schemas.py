"""The artifacts' JSON Schemas (`platesift/schemas/`, draft 2020-12) and checking a directory
against them: `manifest.json`, `heavy_task.json`, and every line of `frames.jsonl`,
`rejections.jsonl` and `tracks.jsonl`. The schemas are the GPU box's contract; `platesift
verify` and the tests use them, and a reader may copy them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
SCHEMAS = {
    "manifest.json": "manifest.schema.json",
    "heavy_task.json": "heavy_task.schema.json",
    "frames.jsonl": "frame.schema.json",
    "rejections.jsonl": "rejection.schema.json",
    "tracks.jsonl": "track.schema.json",
}
"""Artifact file -> the schema of the file (`.json`) or of each of its lines (`.jsonl`)."""

MAX_PROBLEMS = 20


@cache
def _validators() -> dict[str, Any]:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    schemas = {
        name: json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
        for name in sorted(set(SCHEMAS.values()))
    }
    registry: Registry[Any] = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas.values()
    )
    return {
        name: Draft202012Validator(schema, registry=registry) for name, schema in schemas.items()
    }


def schema_problems(directory: Path | str) -> list[str]:
    """What in `directory`'s artifacts breaks their schemas (at most MAX_PROBLEMS); empty when
    everything conforms. A missing file is left to `verify_artifact_dir` to report."""
    directory = Path(directory)
    validators = _validators()
    problems: list[str] = []
    for file, schema in SCHEMAS.items():
        path = directory / file
        if not path.is_file():
            continue
        for where, document in _documents(path):
            if document is None:
                problems.append(f"{where}: not valid JSON")
                continue
            for error in validators[schema].iter_errors(document):
                at = "/".join(str(p) for p in error.absolute_path) or "(top)"
                problems.append(f"{where}: {at}: {error.message[:200]}")
            if len(problems) >= MAX_PROBLEMS:
                return problems[:MAX_PROBLEMS]
    return problems


def _documents(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, parsed JSON or None) of a `.json` file, or of each line of a `.jsonl` file."""
    if path.suffix == ".json":
        yield path.name, _parse(path.read_text(encoding="utf-8"))
        return
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            yield f"{path.name} line {number}", _parse(line)


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


__all__ = ["SCHEMAS", "SCHEMA_DIR", "schema_problems"]
