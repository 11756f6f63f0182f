"""The TFLite detector backends (`tflite` on the CPU, `edgetpu` on the Coral): one detection
model behind the `Proposer` interface.

Two output layouts (the manifest's `output_layout`):
- `ssd_postprocess` (an SSD with TFLite_Detection_PostProcess): each region crop is
  letterboxed into the model's square input (scaled to fit, kept at the top-left, padded with
  black); detections are filtered by label and score and merged by the model's own NMS;
- `centernet` (the shipped plate model): each crop is looked at in tiles at the scales of
  `models.plate_geometry.tile_plan`, so a far plate of `min_plate_px` source pixels is not
  shrunk below what the model finds; heat-map peaks are decoded in numpy and merged by NMS.
Detections are mapped back to crop pixels.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models import plate_geometry
from models.manifest import ModelManifest, centernet_outputs, check_tensors
from models.proposer import Box, Proposal, Proposer, best_first, propose_in_rois
from models.tflite_runtime import Runtime, load_edgetpu_delegate, open_interpreter
from platesift.errors import ModelError

EDGETPU_OP_ERROR = "edgetpu-custom-op"
DEFAULT_MIN_PLATE_PX = 20.0


class TFLiteDetector(Proposer):
    """Runs a detection model described by a manifest on one TFLite interpreter."""

    def __init__(
        self,
        manifest: ModelManifest,
        backend: str,
        interpreter: Any,
        model_file: Path,
        min_plate_px: float = DEFAULT_MIN_PLATE_PX,
    ) -> None:
        self.manifest = manifest
        self.min_plate_px = min_plate_px
        self._on_inference: Callable[[], None] = lambda: None
        self.backend = backend
        self.model = manifest.describe(backend)
        self._interpreter = interpreter
        inputs = interpreter.get_input_details()
        outputs = interpreter.get_output_details()
        check_tensors(manifest, model_file, inputs, outputs)
        self._input = inputs[0]["index"]
        if manifest.output_layout == "centernet":
            heat, box = centernet_outputs(outputs)
            self._heat, self._box = _dequantiser(outputs[heat]), _dequantiser(outputs[box])
            self._stride = manifest.input_width // int(outputs[heat]["shape"][2])
        else:
            self._outputs = {
                role: outputs[i]["index"] for i, role in enumerate(manifest.output_order)
            }
        self._canvas = np.zeros(
            (1, manifest.input_height, manifest.input_width, manifest.input_channels),
            np.dtype(manifest.input_type),
        )
        self._black = -128 if manifest.input_type == "int8" else 0  # the padding value

    def propose(self, luma: np.ndarray, rois: Sequence[Box]) -> list[Proposal]:
        return propose_in_rois(lambda images: [self._detect(i) for i in images], luma, rois)

    def watch_inferences(self, hook: Callable[[], None]) -> None:
        self._on_inference = hook

    def inference_ms(self, repeats: int = 30) -> float:
        """Median milliseconds of one inference (a black input) on this interpreter."""
        self._canvas.fill(self._black)
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            self._interpreter.set_tensor(self._input, self._canvas)
            self._interpreter.invoke()
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times[1:])

    def _detect(self, image: np.ndarray) -> list[Proposal]:
        if image.shape[0] == 0 or image.shape[1] == 0:
            return []
        if self.manifest.output_layout == "centernet":
            return self._detect_tiled(image)
        return self._detect_ssd(image)

    def _detect_tiled(self, image: np.ndarray) -> list[Proposal]:
        m = self.manifest
        height, width = image.shape[:2]
        size = m.input_width
        found = []
        scaled, scaled_at = image, 1.0
        plan = plate_geometry.tile_plan(height, width, self.min_plate_px, size, m.min_plate_px)
        for views in plate_geometry.inputs(plan):
            self._canvas.fill(self._black)
            for view in views:
                if view.scale != scaled_at:
                    w = max(1, round(width * view.scale))
                    h = max(1, round(height * view.scale))
                    scaled = plate_geometry.shrink(image, w, h)
                    scaled_at = view.scale
                part = scaled[view.y : view.y + size - view.oy, view.x : view.x + size - view.ox]
                self._place(part, view.ox, view.oy)
            it = self._interpreter
            it.set_tensor(self._input, self._canvas)
            it.invoke()
            self._on_inference()
            heat = self._heat(it)[0, :, :, 0]
            box = self._box(it)[0]
            for x1, y1, x2, y2, score in plate_geometry.decode(
                heat, box, m.score_threshold, stride=self._stride
            ):
                view = _owner(views, (x1 + x2) / 2, (y1 + y2) / 2)
                if x2 - x1 < view.min_width:
                    continue
                dx, dy = view.x - view.ox, view.y - view.oy
                found.append(
                    (
                        (x1 + dx) / view.scale,
                        (y1 + dy) / view.scale,
                        (x2 + dx) / view.scale,
                        (y2 + dy) / view.scale,
                        score,
                    )
                )
        out = []
        for x1, y1, x2, y2, score in plate_geometry.suppress(found, plate_geometry.MAX_DETECTIONS):
            box_px = (
                max(0, math.floor(x1)),
                max(0, math.floor(y1)),
                min(width, math.ceil(x2)),
                min(height, math.ceil(y2)),
            )
            if box_px[2] > box_px[0] and box_px[3] > box_px[1]:
                out.append(Proposal(box_px, round(score, 4)))
        return best_first(out)

    def _fill(self, tile: np.ndarray) -> None:
        """The input canvas: `tile` at the top-left, black elsewhere."""
        self._canvas.fill(self._black)
        self._place(tile, 0, 0)

    def _place(self, part: np.ndarray, x: int, y: int) -> None:
        h, w = part.shape[:2]
        self._canvas[0, y : y + h, x : x + w, :] = _to_input(part, self.manifest.input_type)[
            :, :, None
        ]

    def _detect_ssd(self, image: np.ndarray) -> list[Proposal]:
        m = self.manifest
        height, width = image.shape[:2]
        scale = min(m.input_width / width, m.input_height / height)
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        self._fill(cv2.resize(image, (w, h), interpolation=interp))
        it = self._interpreter
        it.set_tensor(self._input, self._canvas)
        it.invoke()
        self._on_inference()
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


def _owner(views: list[plate_geometry.Window], cx: float, cy: float) -> plate_geometry.Window:
    """The view of one input a detection centred at (cx, cy) belongs to: the shared view
    whose corner it lies beyond, else the first."""
    for view in views[1:]:
        if cx >= view.ox and cy >= view.oy:
            return view
    return views[0]


def _dequantiser(detail: dict[str, Any]) -> Any:
    """A function reading one output tensor as float32 (dequantised if it is an integer)."""
    index = detail["index"]
    scale, zero = detail.get("quantization", (0.0, 0))
    if not scale:
        return lambda it: it.get_tensor(index).astype(np.float32)
    return lambda it: (it.get_tensor(index).astype(np.float32) - zero) * scale


def _to_input(grey: np.ndarray, input_type: str) -> np.ndarray:
    if input_type == "uint8":
        return grey
    if input_type == "int8":
        return (grey.astype(np.int16) - 128).astype(np.int8)
    return (grey.astype(np.float32) - 127.5) / 127.5  # the MobileNet convention, [-1, 1]


def open_cpu(
    manifest: ModelManifest, runtime: Runtime, min_plate_px: float = DEFAULT_MIN_PLATE_PX
) -> TFLiteDetector:
    """The `tflite` backend: the manifest's CPU model on the CPU."""
    file = manifest.model_file("tflite")
    it = _interpreter(runtime, file, None)
    return TFLiteDetector(manifest, "tflite", it, file, min_plate_px)


def open_edgetpu(
    manifest: ModelManifest,
    runtime: Runtime,
    device: str,
    loader: Any = None,
    min_plate_px: float = DEFAULT_MIN_PLATE_PX,
) -> TFLiteDetector:
    """The `edgetpu` backend: the manifest's compiled model through libedgetpu."""
    file = manifest.model_file("edgetpu")
    delegate = load_edgetpu_delegate(runtime, device, loader)
    it = _interpreter(runtime, file, [delegate])
    return TFLiteDetector(manifest, "edgetpu", it, file, min_plate_px)


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
