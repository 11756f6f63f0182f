"""What the inference process builds: a picklable description of a model backend, and the
function that opens it (in the child process, where a crash cannot take the service down).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.proposer import Proposer

MODEL_BACKENDS = ("edgetpu", "tflite", "fake-edgetpu")


@dataclass(frozen=True)
class BackendSpec:
    """Everything the child needs to open one model backend."""

    backend: str  # one of MODEL_BACKENDS
    manifest: str  # path of the model manifest
    device: str = ""  # Edge TPU device ("" = the first found; e.g. "usb:0")
    fake_control: str = ""  # fake-edgetpu only: the directory of fault switch files
    min_plate_px: float = 20.0  # narrowest plate (source pixels) a tiled model must find


def open_backend(spec: BackendSpec) -> Proposer:
    """Open the backend described by `spec` (ModelError, ConfigError or ProposerUnavailable)."""
    from models.manifest import load_manifest
    from models.tflite_detector import open_cpu, open_edgetpu
    from models.tflite_runtime import require_runtime

    manifest = load_manifest(Path(spec.manifest))
    runtime = require_runtime()
    if spec.backend == "tflite":
        return open_cpu(manifest, runtime, spec.min_plate_px)
    if spec.backend == "edgetpu":
        return open_edgetpu(manifest, runtime, spec.device, min_plate_px=spec.min_plate_px)
    if spec.backend == "fake-edgetpu":
        from models.fake_edgetpu import FakeEdgeTpu

        return FakeEdgeTpu(manifest, runtime, Path(spec.fake_control), spec.min_plate_px)
    raise ValueError(f"not a model backend: {spec.backend!r}")


__all__ = ["MODEL_BACKENDS", "BackendSpec", "open_backend"]
