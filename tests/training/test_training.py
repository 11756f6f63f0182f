"""`make model` end to end on a tiny dataset made here (a few steps, not a useful model): the
stages run in order and write a model that loads, runs, passes the Edge TPU op check, and a
metrics file and card with a row per source."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from models.edgetpu_ops import edgetpu_problems
from models.manifest import load_manifest
from models.tflite_detector import open_cpu
from models.tflite_runtime import require_runtime
from sim.plates import render_plate

from ..conftest import textured

pytestmark = pytest.mark.slow  # `make check` leaves it out; `make test` runs it

pytest.importorskip("tensorflow")


def tiny_dataset(root: Path) -> Path:
    for source, size in (("street", (320, 180)), ("square", (200, 200))):
        folder = root / source
        (folder / "images").mkdir(parents=True)
        rows = []
        for i, split in enumerate(("train", "train", "train", "valid", "test")):
            w, h = size
            image = textured(h, w, seed=i)
            plate = render_plate(f"AB {i}23 CD", 14 + 2 * i)
            ph, pw = plate.shape[:2]
            x, y = 20 + 10 * i, h // 2
            image[y : y + ph, x : x + pw] = plate
            name = f"images/{split}_{i}.jpg"
            cv2.imwrite(str(folder / name), image)
            rows.append(
                {
                    "image": name,
                    "split": split,
                    "width": w,
                    "height": h,
                    "plates": [[x, y, x + pw, y + ph]],
                }
            )
        (folder / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_make_model_stages_write_a_usable_model(tmp_path: Path) -> None:
    from training.__main__ import main

    data = tiny_dataset(tmp_path / "data")
    out = tmp_path / "model"
    code = main(
        [
            "--data",
            str(data),
            "--out",
            str(out),
            "--work",
            str(tmp_path / "w"),
            "--steps",
            "3",
            "--batch",
            "2",
            "--synthetic",
            "2",
        ]
    )
    assert code == 0
    manifest = load_manifest(out / "plates.toml")
    assert manifest.output_layout == "centernet" and manifest.input_channels == 1
    assert edgetpu_problems(out / "plates.tflite") == []
    detector = open_cpu(manifest, require_runtime())
    assert isinstance(detector.propose(cv2.imread(str(next(data.rglob("*.jpg"))), 0), ()), list)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["report"]) == {"street", "square", "all"}
    assert metrics["report"]["all"]["plates"] == 2  # the two test/valid-as-report images
    assert "street" in (out / "MODEL_CARD.md").read_text()
