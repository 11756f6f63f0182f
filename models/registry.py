"""Picks the proposer backend named in the settings, and says which one actually runs.

`auto` means: the Edge TPU if a Coral and libedgetpu are here and the model manifest has an
Edge TPU model; else the CPU model if a TFLite runtime is installed and the manifest has one;
else the classical OpenCV proposer. The model is `proposer.model`, or the plate model shipped
in the package (`models/plates/`) when that is empty. Falling back from a model is logged
loudly, and the artifacts' manifest records the backend that ran.

Model backends run in a child process (`models.isolation`); the OpenCV proposer runs in the
Coral actor itself (pure CPU code cannot abort the process).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from models.backends import MODEL_BACKENDS, BackendSpec
from models.proposer import NullProposer, Proposer
from platesift.config import ProposerSettings
from platesift.errors import ConfigError

if TYPE_CHECKING:
    from models.manifest import ModelManifest

logger = logging.getLogger(__name__)

SHIPPED_MANIFEST = Path(__file__).resolve().parent / "plates" / "plates.toml"
"""The plate detector shipped in the package (`make model` rebuilds it)."""
CORAL_HINT = "plug the Coral into a USB 3 port and check `platesift doctor`"


def resolve_backend(settings: ProposerSettings) -> str:
    """The concrete backend `settings.backend` means on this machine (checks `auto`)."""
    from models.tflite_runtime import edgetpu_library_found, find_runtime

    backend = settings.backend
    if backend != "auto":
        return backend
    manifest = _manifest(settings)
    reasons = []
    if manifest.edgetpu_file is None:
        reasons.append("the manifest has no edgetpu_file")
    elif not edgetpu_library_found():
        reasons.append("libedgetpu is not installed")
    elif not _coral_present():
        reasons.append("no Coral on the USB bus")
    else:
        return "edgetpu"
    if manifest.cpu_file is not None and find_runtime() is not None:
        logger.info("proposer auto: no Edge TPU (%s); using the CPU model", reasons[0])
        return "tflite"
    reasons.append(
        "the manifest has no cpu_file" if manifest.cpu_file is None else "no TFLite runtime"
    )
    logger.warning(
        "proposer auto: the model %s cannot run here (%s); FALLING BACK to the OpenCV proposer",
        manifest.path,
        "; ".join(reasons),
    )
    return "opencv"


def make_proposer(settings: ProposerSettings, segment_name: str | None = None) -> Proposer:
    """A proposer for `settings` (not yet started: call `ensure_ready()`).

    Everything that can be checked without the device is checked here, so a missing runtime,
    library or model is one clear error at start.
    """
    backend = resolve_backend(settings)
    if backend == "none":
        return NullProposer()
    if backend == "opencv":
        from models.opencv_plates import OpenCVPlateProposer

        return OpenCVPlateProposer(min_score=settings.min_score, max_regions=settings.max_regions)
    if backend not in MODEL_BACKENDS:
        raise ConfigError(f"unknown proposer backend {backend!r}")
    _check_static(backend, settings)
    from models.isolation import IsolatedProposer

    spec = BackendSpec(
        backend=backend,
        manifest=str(model_manifest_path(settings).resolve()),
        device=settings.device,
        fake_control=settings.fake_control,
        min_plate_px=settings.min_plate_px,
    )
    return IsolatedProposer(
        spec,
        deadline_s=settings.deadline_s,
        start_timeout_s=settings.start_timeout_s,
        backoff_max_s=settings.restart_backoff_max_s,
        segment_name=segment_name,
    )


def _check_static(backend: str, settings: ProposerSettings) -> None:
    from models.tflite_runtime import (
        EDGETPU_HINT,
        EDGETPU_LIBRARY,
        edgetpu_library_found,
        require_runtime,
    )

    if backend == "edgetpu" and not edgetpu_library_found():
        raise ConfigError(
            f"proposer edgetpu: the Edge TPU runtime {EDGETPU_LIBRARY} is not installed: "
            f"{EDGETPU_HINT}"
        )
    require_runtime()
    manifest = _manifest(settings)
    manifest.model_file("edgetpu" if backend == "edgetpu" else "tflite")
    if backend == "fake-edgetpu" and not settings.fake_control:
        raise ConfigError("proposer fake-edgetpu needs proposer.fake_control (a directory)")


def model_manifest_path(settings: ProposerSettings) -> Path:
    """`proposer.model`, or the shipped plate model's manifest when that is empty."""
    return Path(settings.model) if settings.model else SHIPPED_MANIFEST


def _manifest(settings: ProposerSettings) -> ModelManifest:
    from models.manifest import load_manifest

    return load_manifest(model_manifest_path(settings))


def _coral_present() -> bool:
    from models.coral_usb import coral_devices

    return bool(coral_devices())


__all__ = ["SHIPPED_MANIFEST", "make_proposer", "model_manifest_path", "resolve_backend"]
