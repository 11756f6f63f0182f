"""The TFLite detector backends (`tflite` on the CPU, `edgetpu` on the Coral): one SSD-style
detection model behind the `Proposer` interface.

Each region crop is letterboxed into the model's square input (scaled to fit, kept at the
top-left, padded with black), so small distant plates keep their pixels instead of being
squashed with the whole frame; detections are mapped back to crop pixels, filtered by label
and score, and merged by the model's own NMS (the post-process op).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.manifest import ModelManifest, check_tensors
from models.proposer import Box, Proposal, Proposer, best_first, propose_in_rois
from models.tflite_runtime import Runtime, load_edgetpu_delegate, open_interpreter
from platesift.errors import ModelError

EDGETPU_OP_ERROR = "edgetpu-custom-op"


class TFLiteDetector(Proposer):
    """Runs a detection model described by a manifest on one TFLite interpreter."""

    def __init__(
        self, manifest: ModelManifest, backend: str, interpreter: Any, model_file: Path
    ) -> None:
        self.manifest = manifest
        self.backend = backend
        self.model = manifest.describe(backend)
        self._interpreter = interpreter
        inputs = interpreter.get_input_details()
        outputs = interpreter.get_output_details()
        check_tensors(manifest, model_file, inputs, outputs)
        self._input = inputs[0]["index"]
        self._outputs = {role: outputs[i]["index"] for i, role in enumerate(manifest.output_order)}
        self._canvas = np.zeros(
            (1, manifest.input_height, manifest.input_width, manifest.input_channels),
            np.dtype(manifest.input_type),
        )

    def propose(self, luma: np.ndarray, rois: Sequence[Box]) -> list[Proposal]:
        return propose_in_rois(lambda images: [self._detect(i) for i in images], luma, rois)

    def _detect(self, image: np.ndarray) -> list[Proposal]:
        m = self.manifest
        height, width = image.shape[:2]
        if height == 0 or width == 0:
            return []
        scale = min(m.input_width / width, m.input_height / height)
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        fitted = cv2.resize(image, (w, h), interpolation=interp)
        canvas = self._canvas
        canvas.fill(0 if m.input_type != "int8" else -128)
        pixels = _to_input(fitted, m.input_type)
        canvas[0, :h, :w, :] = pixels[:, :, None]
        it = self._interpreter
        it.set_tensor(self._input, canvas)
        it.invoke()
        boxes = it.get_tensor(self._outputs["boxes"])[0]
        classes = it.get_tensor(self._outputs["classes"])[0]
        scores = it.get_tensor(self._outputs["scores"])[0]
        count = int(it.get_tensor(self._outputs["count"]).reshape(-1)[0])
        found = []
        for i in range(min(count, len(scores))):
            score = float(scores[i])
            if int(classes[i]) != m.plate_index or score < m.score_threshold:
                continue
            ymin, xmin, ymax, xmax = (float(v) for v in boxes[i])
            # Normalised to the model input -> input pixels -> crop pixels (scaled back).
            x1 = max(0, math.floor(xmin * m.input_width / scale))
            y1 = max(0, math.floor(ymin * m.input_height / scale))
            x2 = min(width, math.ceil(xmax * m.input_width / scale))
            y2 = min(height, math.ceil(ymax * m.input_height / scale))
            if x2 > x1 and y2 > y1:
                found.append(Proposal((x1, y1, x2, y2), round(score, 4)))
        return best_first(found)


def _to_input(grey: np.ndarray, input_type: str) -> np.ndarray:
    if input_type == "uint8":
        return grey
    if input_type == "int8":
        return (grey.astype(np.int16) - 128).astype(np.int8)
    return (grey.astype(np.float32) - 127.5) / 127.5  # the MobileNet convention, [-1, 1]


def open_cpu(manifest: ModelManifest, runtime: Runtime) -> TFLiteDetector:
    """The `tflite` backend: the manifest's CPU model on the CPU."""
    file = manifest.model_file("tflite")
    return TFLiteDetector(manifest, "tflite", _interpreter(runtime, file, None), file)


def open_edgetpu(
    manifest: ModelManifest, runtime: Runtime, device: str, loader: Any = None
) -> TFLiteDetector:
    """The `edgetpu` backend: the manifest's compiled model through libedgetpu."""
    file = manifest.model_file("edgetpu")
    delegate = load_edgetpu_delegate(runtime, device, loader)
    return TFLiteDetector(manifest, "edgetpu", _interpreter(runtime, file, [delegate]), file)


def _interpreter(runtime: Runtime, file: Path, delegates: list[Any] | None) -> Any:
    try:
        return open_interpreter(runtime, str(file), delegates)
    except (ValueError, RuntimeError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if EDGETPU_OP_ERROR in str(exc):
            raise ModelError(
                f"{file} is compiled for the Edge TPU and cannot run on the CPU: use the model "
                "before edgetpu_compiler (the manifest's cpu_file)"
            ) from None
        raise ModelError(f"{file} is not a usable TFLite model ({text})") from None


__all__ = ["TFLiteDetector", "open_cpu", "open_edgetpu"]
