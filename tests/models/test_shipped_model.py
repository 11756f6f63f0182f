"""The plate model shipped in the package: Edge-TPU-compatible by construction, the default on
the CPU, and it finds the plates of real photographs (a few kept in tests/data/plates, with
their attribution)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models import tflite_runtime
from models.edgetpu_ops import edgetpu_problems
from models.manifest import load_manifest
from models.plate_geometry import iou
from models.registry import SHIPPED_MANIFEST, make_proposer, resolve_backend
from models.tflite_detector import open_cpu
from platesift.app.stills import read_luma
from platesift.config import ProposerSettings

PHOTOS = Path(__file__).resolve().parent.parent / "data" / "plates"
MAX_MODEL_BYTES = 6 << 20


def shipped_models() -> list[Path]:
    root = SHIPPED_MANIFEST.parent.parent
    files = []
    for manifest in sorted(root.glob("*/*.toml")):
        m = load_manifest(manifest)
        files += [f for f in (m.cpu_file, m.edgetpu_file) if f is not None]
    return files


def test_the_package_ships_a_model_with_its_card() -> None:
    manifest = load_manifest(SHIPPED_MANIFEST)
    assert manifest.cpu_file is not None and manifest.cpu_file.stat().st_size <= MAX_MODEL_BYTES
    assert manifest.input_channels == 1 and manifest.input_type == "uint8"
    card = (SHIPPED_MANIFEST.parent / "MODEL_CARD.md").read_text()
    for source in ("ro-dashcam", "us-roboflow", "intl-web", "openimages", "ru-street"):
        assert source in card
    assert "CC BY 4.0" in card  # the attribution the CC BY sources require


@pytest.mark.parametrize("model", shipped_models(), ids=lambda p: p.name)
def test_every_shipped_model_maps_whole_onto_the_edge_tpu(model: Path) -> None:
    assert edgetpu_problems(model) == []


def test_the_op_check_catches_a_float_model(plate_model: Path) -> None:
    # The synthetic test model dequantises its input: float tensors the Edge TPU cannot run.
    problems = edgetpu_problems(plate_model.parent / "plates-cpu.tflite")
    assert any("not integer" in p for p in problems), problems


def photos() -> list[dict]:
    return [json.loads(line) for line in (PHOTOS / "index.jsonl").read_text().splitlines()]


def test_it_finds_the_plates_of_real_photographs() -> None:
    settings = ProposerSettings()
    detector = open_cpu(load_manifest(SHIPPED_MANIFEST), tflite_runtime.require_runtime())
    missed = []
    for photo in photos():
        luma = read_luma(PHOTOS / photo["image"])
        assert luma is not None
        found = detector.propose(luma, ())[: settings.max_regions]
        for plate in photo["plates"]:
            if not any(iou(plate, p.box) >= 0.5 for p in found):
                missed.append((photo["image"], plate, [p.box for p in found]))
    assert not missed


def test_auto_runs_the_shipped_model_on_the_cpu_here() -> None:
    assert resolve_backend(ProposerSettings()) == "tflite"
    proposer = make_proposer(ProposerSettings())
    try:
        proposer.ensure_ready()
        assert proposer.backend == "tflite"
        luma = read_luma(PHOTOS / photos()[0]["image"])
        assert luma is not None and proposer.propose(luma, ())
    finally:
        proposer.close()


def test_without_a_runtime_auto_falls_back_to_opencv_loudly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tflite_runtime, "RUNTIME_MODULES", ("no_such_tflite_runtime",))
    assert resolve_backend(ProposerSettings()) == "opencv"
    assert "FALLING BACK to the OpenCV proposer" in caplog.text
    assert "no TFLite runtime" in caplog.text


def test_a_far_plate_in_a_big_crop_is_found_at_the_models_scale() -> None:
    # A real photo's plate, small in a 4K-sized crop: letterboxed whole into the model's input
    # it would be ~3 px wide; tiled at proposer.min_plate_px it keeps its pixels.
    import numpy as np

    photo = photos()[0]
    luma = read_luma(PHOTOS / photo["image"])
    assert luma is not None
    x1, y1, x2, y2 = (round(v) for v in photo["plates"][0])
    pad = 3 * (x2 - x1)
    patch = luma[max(0, y1 - pad) : y2 + pad, max(0, x1 - pad) : x2 + pad]
    canvas = np.full((2160, 3840), 90, np.uint8)
    oy, ox = 1500, 2900
    canvas[oy : oy + patch.shape[0], ox : ox + patch.shape[1]] = patch
    plate = (ox + x1 - max(0, x1 - pad), oy + y1 - max(0, y1 - pad))
    plate_box = (*plate, plate[0] + x2 - x1, plate[1] + y2 - y1)
    manifest = load_manifest(SHIPPED_MANIFEST)
    runtime = tflite_runtime.require_runtime()
    tiled = open_cpu(manifest, runtime, min_plate_px=20).propose(canvas, ())
    assert any(iou(plate_box, p.box) >= 0.5 for p in tiled[:4]), (plate_box, tiled[:4])
    whole = open_cpu(manifest, runtime, min_plate_px=4000).propose(canvas, ())
    assert not any(iou(plate_box, p.box) >= 0.5 for p in whole)


def test_a_plate_filling_a_close_up_photo_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test plate cut out with a small margin and enlarged to 520 px: at the whole-image
    # scale it is wider than the model was trained on; the close-up view sees it.
    import cv2

    from models import plate_geometry

    detector = open_cpu(load_manifest(SHIPPED_MANIFEST), tflite_runtime.require_runtime())

    def best_iou() -> list[float]:
        found = []
        for photo in photos():
            luma = read_luma(PHOTOS / photo["image"])
            assert luma is not None
            for x1, y1, x2, y2 in ((round(v) for v in p) for p in photo["plates"]):
                mx, my = (x2 - x1) // 12, (x2 - x1) // 4
                left, top = max(0, x1 - mx), max(0, y1 - my)
                f = 520 / (x2 - x1)
                big = cv2.resize(luma[top : y2 + my, left : x2 + mx], None, fx=f, fy=f)
                plate = ((x1 - left) * f, (y1 - top) * f, (x2 - left) * f, (y2 - top) * f)
                boxes = [p.box for p in detector.propose(big, ())[:4]]
                found.append(max([iou(plate, b) for b in boxes], default=0.0))
        return found

    assert min(best_iou()) >= 0.5
    whole_only = plate_geometry.tile_plan
    monkeypatch.setattr(
        plate_geometry, "tile_plan", lambda *a, **k: whole_only(*a, **k, close_up=False)
    )
    assert min(best_iou()) < 0.5


def test_the_card_states_the_models_cost_as_counted_from_the_file() -> None:
    from models.edgetpu_ops import conv_macs

    metrics = json.loads((SHIPPED_MANIFEST.parent / "metrics.json").read_text())
    macs = conv_macs(SHIPPED_MANIFEST.parent / "plates.tflite")
    # The first layer alone: a 3 x 3 convolution to 16 channels at 128 x 128.
    assert macs > 128 * 128 * 16 * 9
    assert macs == metrics["macs_per_inference"]
    card = (SHIPPED_MANIFEST.parent / "MODEL_CARD.md").read_text()
    assert f"{macs / 1e6:.0f} M multiply-accumulates" in card
