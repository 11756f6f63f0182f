"""Model manifests: every mistake is one clear error naming the file, at load time."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from models.manifest import load_manifest
from platesift.errors import ModelError
from sim.detector_model import CPU_MODEL, EDGETPU_MODEL


@pytest.fixture
def model_dir(plate_model: Path, tmp_path: Path) -> Path:
    for name in (CPU_MODEL, EDGETPU_MODEL, plate_model.name):
        shutil.copy(plate_model.parent / name, tmp_path / name)
    return tmp_path


def write(model_dir: Path, text: str) -> Path:
    path = model_dir / "m.toml"
    path.write_text(text)
    return path


BASE = f'''[model]
cpu_file = "{CPU_MODEL}"
edgetpu_file = "{EDGETPU_MODEL}"
labels = ["car", "plate"]
plate_label = "plate"
input_size = [160, 160]
'''


def test_a_good_manifest_loads(model_dir: Path) -> None:
    m = load_manifest(write(model_dir, BASE))
    assert m.plate_index == 1
    assert (m.input_width, m.input_height, m.input_channels, m.input_type) == (160, 160, 3, "uint8")
    assert m.cpu_file == (model_dir / CPU_MODEL).resolve()
    assert m.output_order == ("boxes", "classes", "scores", "count")
    assert m.describe("tflite").startswith(f"m ({CPU_MODEL}, sha256 ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[model\n", "is not valid TOML"),
        ("[other]\n", "needs a [model] table"),
        (BASE + "colour = 1\n", "unknown key(s) in [model]: colour"),
        (BASE.replace(CPU_MODEL, "gone.tflite"), "gone.tflite does not exist"),
        (BASE.replace('plate_label = "plate"', 'plate_label = "lorry"'), "plate_label 'lorry'"),
        (BASE.replace("[160, 160]", "[160]"), "input_size must be [width, height]"),
        (BASE + 'input_type = "int4"\n', "input_type must be one of uint8, int8, float32"),
        (BASE + 'output_order = ["boxes"]\n', "output_order must list each of"),
        (
            BASE.replace(f'cpu_file = "{CPU_MODEL}"', f'cpu_file = "{EDGETPU_MODEL}"'),
            "is compiled for the Edge TPU, but it is the manifest's cpu_file",
        ),
        (
            BASE.replace(f'edgetpu_file = "{EDGETPU_MODEL}"', f'edgetpu_file = "{CPU_MODEL}"'),
            "is not compiled for the Edge TPU",
        ),
    ],
)
def test_bad_manifests_name_the_file_and_the_problem(
    model_dir: Path, text: str, message: str
) -> None:
    path = write(model_dir, text)
    with pytest.raises(ModelError) as info:
        load_manifest(path)
    assert message in info.value.message
    assert str(model_dir) in info.value.message
    assert "\n" not in info.value.message


def test_a_missing_manifest_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_manifest(tmp_path / "none.toml")


def test_an_empty_model_file_is_refused(model_dir: Path) -> None:
    (model_dir / CPU_MODEL).write_bytes(b"")
    with pytest.raises(ModelError, match="is empty"):
        load_manifest(write(model_dir, BASE))
