"""The TFLite backends with a real model on the real runtime: detections land on the plate in
crop pixels, bad models fail at open with a clear error."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.manifest import load_manifest
from models.tflite_detector import open_cpu, open_edgetpu
from models.tflite_runtime import require_runtime
from platesift.errors import ConfigError, ModelError, ProposerUnavailableError
from sim.detector_model import CPU_MODEL, EDGETPU_MODEL
from sim.plates import render_plate

from ..conftest import textured


def scene_with_plate(w: int, h: int, x: int, y: int, plate_h: int) -> tuple[np.ndarray, tuple]:
    grey = cv2.cvtColor(textured(h, w, seed=3), cv2.COLOR_BGR2GRAY) // 2 + 40
    plate = cv2.cvtColor(render_plate("AB 123 CD", plate_h), cv2.COLOR_BGR2GRAY)
    ph, pw = plate.shape
    grey[y : y + ph, x : x + pw] = plate
    return grey, (x, y, x + pw, y + ph)


def contains_centre(box: tuple, plate: tuple) -> bool:
    cx, cy = (plate[0] + plate[2]) / 2, (plate[1] + plate[3]) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


@pytest.mark.parametrize(
    ("size", "at", "plate_h"),
    [((400, 180), (150, 100), 22), ((160, 160), (20, 60), 12), ((180, 420), (40, 300), 26)],
)
def test_the_best_detection_is_on_the_plate_in_crop_pixels(
    plate_model: Path, size: tuple, at: tuple, plate_h: int
) -> None:
    detector = open_cpu(load_manifest(plate_model), require_runtime())
    image, plate = scene_with_plate(*size, *at, plate_h)
    found = detector.propose(image, ())
    assert found, "no detection"
    best = found[0]
    assert contains_centre(best.box, plate), (best, plate)
    x1, y1, x2, y2 = best.box
    assert 0 <= x1 < x2 <= size[0] and 0 <= y1 < y2 <= size[1]
    assert all(p.score >= 0.5 for p in found)  # the manifest's score_threshold
    assert found == sorted(found, key=lambda p: (-p.score, p.box))
    assert detector.propose(image, ()) == found  # deterministic


def test_a_flat_image_gives_nothing(plate_model: Path) -> None:
    detector = open_cpu(load_manifest(plate_model), require_runtime())
    assert detector.propose(np.full((120, 300), 128, np.uint8), ()) == []


def test_rois_are_searched_and_mapped_back_to_frame_pixels(plate_model: Path) -> None:
    detector = open_cpu(load_manifest(plate_model), require_runtime())
    image, plate = scene_with_plate(640, 360, 400, 250, 22)
    found = detector.propose(image, [(300, 180, 640, 360)])
    assert found and contains_centre(found[0].box, plate)
    assert detector.propose(image, [(0, 0, 200, 150)]) == []


def test_a_manifest_that_does_not_match_the_model_fails_at_open(
    plate_model: Path, tmp_path: Path
) -> None:
    for name in (CPU_MODEL, EDGETPU_MODEL):
        shutil.copy(plate_model.parent / name, tmp_path / name)
    manifest = tmp_path / "m.toml"
    manifest.write_text(plate_model.read_text().replace("[160, 160]", "[320, 320]"))
    with pytest.raises(ModelError) as info:
        open_cpu(load_manifest(manifest), require_runtime())
    assert "input shape is [1, 160, 160, 3], the manifest says [1, 320, 320, 3]" in str(info.value)
    assert CPU_MODEL in info.value.message


def test_garbage_instead_of_a_model_is_a_model_error(plate_model: Path, tmp_path: Path) -> None:
    shutil.copy(plate_model.parent / EDGETPU_MODEL, tmp_path / EDGETPU_MODEL)
    (tmp_path / CPU_MODEL).write_bytes(b"not a flatbuffer at all" * 10)
    manifest = tmp_path / "m.toml"
    manifest.write_text(plate_model.read_text())
    with pytest.raises(ModelError, match="is not a usable TFLite model"):
        open_cpu(load_manifest(manifest), require_runtime())


def test_an_edge_tpu_model_on_the_cpu_says_so(plate_model: Path) -> None:
    """The runtime's real refusal ("unresolved custom op: edgetpu-custom-op") becomes a clear
    ModelError, even when the manifest check is bypassed."""
    from models.tflite_detector import _interpreter

    with pytest.raises(ModelError, match="compiled for the Edge TPU and cannot run on the CPU"):
        _interpreter(require_runtime(), plate_model.parent / EDGETPU_MODEL, None)


def test_no_libedgetpu_is_a_config_error_with_the_fix(plate_model: Path) -> None:
    def missing(library: str, options: dict) -> object:
        raise OSError(f"{library}: cannot open shared object file: No such file or directory")

    with pytest.raises(ConfigError) as info:
        open_edgetpu(load_manifest(plate_model), require_runtime(), "", loader=missing)
    assert "libedgetpu.so.1 cannot be loaded" in info.value.message
    assert "libedgetpu1-std" in info.value.message


def test_no_device_is_transient(plate_model: Path) -> None:
    def absent(library: str, options: dict) -> object:
        assert options == {"device": "usb:1"}
        raise ValueError("Failed to load delegate from libedgetpu.so.1")

    with pytest.raises(ProposerUnavailableError, match="is the Coral plugged in"):
        open_edgetpu(load_manifest(plate_model), require_runtime(), "usb:1", loader=absent)
