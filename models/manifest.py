"""Model manifests: a small TOML file that says what a detection model is and how to use it.

    [model]
    name = "plates-ssd-mobilenet-v2"
    cpu_file = "plates.tflite"                # for the `tflite` backend (optional)
    edgetpu_file = "plates_edgetpu.tflite"    # for the `edgetpu` backend (optional)
    labels = ["plate"]                        # or labels_file = "labels.txt", one per line
    plate_label = "plate"                     # which label is a plate (name or index)
    input_size = [320, 320]                   # width, height the model expects
    input_channels = 3                        # 3: grey frames are given as grey RGB; or 1
    input_type = "uint8"                      # uint8, int8 or float32 (quantisation is read
                                              # from the model itself)
    output_layout = "ssd_postprocess"         # TFLite_Detection_PostProcess outputs
    output_order = ["boxes", "classes", "scores", "count"]
    score_threshold = 0.5                     # lowest detection score kept

The shipped plate model (`models/plates/plates.toml`) uses `output_layout = "centernet"`: two
outputs, a heat map [1, G, G, 1] and boxes [1, G, G, 4], decoded in numpy
(`models.plate_geometry`), and `min_plate_px`, the narrowest plate in input pixels it finds;
images are looked at in tiles so that no plate worth finding is shrunk below it.

Paths are relative to the manifest. `load_manifest` checks the file itself; `check_tensors`
checks that a loaded model's tensors match what the manifest says, so a mismatch is a clear
error at start, not a wrong answer in the middle of a task.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platesift.errors import ModelError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

INPUT_TYPES = ("uint8", "int8", "float32")
OUTPUT_LAYOUTS = ("ssd_postprocess", "centernet")
OUTPUT_ROLES = ("boxes", "classes", "scores", "count")
EDGETPU_OP = b"edgetpu-custom-op"
_KNOWN_KEYS = {
    "name",
    "cpu_file",
    "edgetpu_file",
    "labels",
    "labels_file",
    "plate_label",
    "input_size",
    "input_channels",
    "input_type",
    "output_layout",
    "output_order",
    "score_threshold",
    "min_plate_px",
}


@dataclass(frozen=True)
class ModelManifest:
    """What one detection model is, read from its manifest."""

    path: Path
    name: str
    cpu_file: Path | None
    edgetpu_file: Path | None
    labels: tuple[str, ...]
    plate_index: int
    input_width: int
    input_height: int
    input_channels: int
    input_type: str
    output_layout: str
    output_order: tuple[str, ...]
    score_threshold: float
    min_plate_px: float = 12.0

    def model_file(self, backend: str) -> Path:
        """The model file the backend runs (`edgetpu` or `tflite`); ModelError if none."""
        file = self.edgetpu_file if backend == "edgetpu" else self.cpu_file
        key = "edgetpu_file" if backend == "edgetpu" else "cpu_file"
        if file is None:
            raise ModelError(f"{self.path}: the {backend} backend needs `{key}` in [model]")
        return file

    def describe(self, backend: str) -> str:
        """`name (file, sha256 prefix)`: what the artifacts' manifest records as the model."""
        file = self.model_file(backend)
        return f"{self.name} ({file.name}, sha256 {file_digest(file)[:12]})"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_edgetpu_model(path: Path) -> bool:
    """True when `path` was compiled by edgetpu_compiler (it holds the Edge TPU custom op)."""
    return EDGETPU_OP in path.read_bytes()


def load_manifest(path: Path) -> ModelManifest:
    """Read and check a manifest; ModelError naming the file and the problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model manifest {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"model manifest {path} cannot be read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"model manifest {path} is not valid TOML ({exc})") from None
    section = raw.get("model")
    if not isinstance(section, dict):
        raise ModelError(f"model manifest {path} needs a [model] table")
    unknown = sorted(set(section) - _KNOWN_KEYS)
    if unknown:
        raise ModelError(f"{path}: unknown key(s) in [model]: {', '.join(unknown)}")
    m = _Reader(path, section)
    base = path.parent
    cpu = m.optional_file(base, "cpu_file")
    edgetpu = m.optional_file(base, "edgetpu_file")
    if cpu is None and edgetpu is None:
        raise ModelError(f"{path}: [model] needs cpu_file, edgetpu_file or both")
    labels = m.labels(base)
    plate = section.get("plate_label", 0)
    if isinstance(plate, str) and not isinstance(plate, bool) and plate in labels:
        plate_index = labels.index(plate)
    elif isinstance(plate, int) and not isinstance(plate, bool) and 0 <= plate < len(labels):
        plate_index = plate
    else:
        raise ModelError(f"{path}: plate_label {plate!r} is not one of the labels {labels}")
    size = section.get("input_size")
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 8 <= v <= 4096 for v in size)
    ):
        raise ModelError(f"{path}: input_size must be [width, height] in pixels, got {size!r}")
    order = section.get("output_order", list(OUTPUT_ROLES))
    if not isinstance(order, list) or sorted(order) != sorted(OUTPUT_ROLES):
        raise ModelError(
            f"{path}: output_order must list each of {', '.join(OUTPUT_ROLES)} once, got {order!r}"
        )
    if cpu is not None and is_edgetpu_model(cpu):
        raise ModelError(
            f"{cpu} is compiled for the Edge TPU, but it is the manifest's cpu_file: "
            "point cpu_file at the model before edgetpu_compiler"
        )
    if edgetpu is not None and not is_edgetpu_model(edgetpu):
        raise ModelError(
            f"{edgetpu} is not compiled for the Edge TPU (no edgetpu-custom-op), but it is the "
            "manifest's edgetpu_file: compile it with edgetpu_compiler"
        )
    return ModelManifest(
        path=path,
        name=m.text("name", path.stem),
        cpu_file=cpu,
        edgetpu_file=edgetpu,
        labels=tuple(labels),
        plate_index=plate_index,
        input_width=size[0],
        input_height=size[1],
        input_channels=m.choice_int("input_channels", (1, 3), 3),
        input_type=m.choice("input_type", INPUT_TYPES, "uint8"),
        output_layout=m.choice("output_layout", OUTPUT_LAYOUTS, "ssd_postprocess"),
        output_order=tuple(order),
        score_threshold=m.number("score_threshold", 0.5, 0.0, 1.0),
        min_plate_px=m.number("min_plate_px", 12.0, 1.0, 4096.0),
    )


def check_tensors(
    manifest: ModelManifest,
    model_file: Path,
    inputs: Sequence[dict[str, Any]],
    outputs: Sequence[dict[str, Any]],
) -> None:
    """ModelError unless the interpreter's tensor details match the manifest."""
    where = f"{model_file} does not match its manifest {manifest.path}"
    if len(inputs) != 1:
        raise ModelError(f"{where}: the model has {len(inputs)} inputs, expected 1 image")
    shape = [int(v) for v in inputs[0]["shape"]]
    want = [1, manifest.input_height, manifest.input_width, manifest.input_channels]
    if shape != want:
        raise ModelError(f"{where}: input shape is {shape}, the manifest says {want}")
    dtype = getattr(inputs[0]["dtype"], "__name__", str(inputs[0]["dtype"]))
    if dtype != manifest.input_type:
        raise ModelError(f"{where}: input type is {dtype}, the manifest says {manifest.input_type}")
    if manifest.output_layout == "centernet":
        _check_centernet(manifest, where, outputs)
        return
    if len(outputs) != len(OUTPUT_ROLES):
        raise ModelError(
            f"{where}: the model has {len(outputs)} outputs; output_layout "
            f"{manifest.output_layout} needs 4 (boxes, classes, scores, count)"
        )
    shapes = {
        role: [int(v) for v in outputs[i]["shape"]] for i, role in enumerate(manifest.output_order)
    }
    n = shapes["boxes"][1] if len(shapes["boxes"]) == 3 else -1
    if shapes["boxes"] != [1, n, 4] or shapes["classes"] != [1, n] or shapes["scores"] != [1, n]:
        raise ModelError(
            f"{where}: outputs in output_order {list(manifest.output_order)} have shapes "
            f"{[shapes[r] for r in manifest.output_order]}, not SSD post-process outputs"
        )


def centernet_outputs(outputs: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """Positions of the heat map (1 channel) and box (4 channels) outputs, or (-1, -1)."""
    channels = [int(o["shape"][-1]) if len(o["shape"]) == 4 else 0 for o in outputs]
    if len(outputs) != 2 or sorted(channels) != [1, 4]:
        return -1, -1
    return channels.index(1), channels.index(4)


def _check_centernet(
    manifest: ModelManifest, where: str, outputs: Sequence[dict[str, Any]]
) -> None:
    heat, box = centernet_outputs(outputs)
    if heat < 0:
        raise ModelError(
            f"{where}: output_layout centernet needs two outputs, a heat map [1, G, G, 1] and "
            f"boxes [1, G, G, 4]; the model has {[list(o['shape']) for o in outputs]}"
        )
    hs, bs = [int(v) for v in outputs[heat]["shape"]], [int(v) for v in outputs[box]["shape"]]
    if hs[1:3] != bs[1:3] or manifest.input_width % hs[2] or manifest.input_height % hs[1]:
        raise ModelError(f"{where}: heat map {hs} and boxes {bs} do not tile the input")


class _Reader:
    """Typed access to the [model] table with errors that name the file and the key."""

    def __init__(self, path: Path, section: dict[str, Any]) -> None:
        self.path, self.section = path, section

    def _bad(self, key: str, want: str) -> ModelError:
        return ModelError(f"{self.path}: {key} must be {want}, got {self.section[key]!r}")

    def text(self, key: str, default: str) -> str:
        value = self.section.get(key, default)
        if not isinstance(value, str) or not value:
            raise self._bad(key, "a non-empty string")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.section.get(key, default)
        if value not in choices:
            raise self._bad(key, f"one of {', '.join(choices)}")
        return str(value)

    def choice_int(self, key: str, choices: tuple[int, ...], default: int) -> int:
        value = self.section.get(key, default)
        if isinstance(value, bool) or value not in choices:
            raise self._bad(key, f"one of {', '.join(map(str, choices))}")
        return int(value)

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self.section.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._bad(key, "a number")
        if not low <= value <= high:
            raise self._bad(key, f"between {low} and {high}")
        return float(value)

    def optional_file(self, base: Path, key: str) -> Path | None:
        value = self.section.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self._bad(key, "a file name")
        file = (base / value).resolve()
        if not file.is_file():
            raise ModelError(f"{self.path}: {key} {file} does not exist")
        if file.stat().st_size == 0:
            raise ModelError(f"{self.path}: {key} {file} is empty")
        return file

    def labels(self, base: Path) -> list[str]:
        if "labels" in self.section and "labels_file" in self.section:
            raise ModelError(f"{self.path}: give labels or labels_file, not both")
        if "labels_file" in self.section:
            file = self.optional_file(base, "labels_file")
            assert file is not None
            labels = [ln.strip() for ln in file.read_text(encoding="utf-8").splitlines()]
            labels = [ln for ln in labels if ln]
        else:
            labels = self.section.get("labels", [])
            if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels):
                raise self._bad("labels", "a list of strings")
        if not labels:
            raise ModelError(f"{self.path}: the model needs at least one label")
        return list(labels)


__all__ = [
    "ModelManifest",
    "centernet_outputs",
    "check_tensors",
    "file_digest",
    "is_edgetpu_model",
    "load_manifest",
]
