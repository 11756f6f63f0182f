"""A small, real TFLite plate-detection model, built from scratch so tests need no download.

The model is a hand-designed (not trained) SSD-style detector that the real TFLite runtime
runs on the CPU, with the same interface as a converted SSD MobileNet:

    uint8 image [1, S, S, 3] -> DEQUANTIZE -> CONV_2D (horizontal gradient) -> ABS
    -> per anchor scale: AVERAGE_POOL (plate-shaped window) and AVERAGE_POOL (its surround)
       -> CONCATENATION -> CONV_2D 1x1 (centre minus surround) -> LOGISTIC -> RESHAPE
    -> CONCATENATION (all scales, plus a background column)
    -> TFLite_Detection_PostProcess (anchors, NMS) -> boxes, classes, scores, count

It scores plate-shaped windows that are dense in vertical strokes (characters) and busier than
their surroundings. That is enough to find the synthetic plates of `sim.scenes`, and it
exercises everything a real model does: quantised input, the model manifest, letterboxing,
the post-process op, box mapping and NMS.

`write_models(dir)` also writes a stand-in for an Edge-TPU-compiled model (its graph is one
`edgetpu-custom-op`, as `edgetpu_compiler` produces), so the "Edge TPU model on the CPU"
error paths are tested against the runtime's real failure.

Building needs the `flatbuffers` package and `ai_edge_litert` (its TFLite schema module);
both come with `pip install 'platesift[tflite]'`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from platesift.errors import ConfigError

INPUT_SIZE = 160
GRID_STRIDE = 4  # stroke density is pooled to a grid of 4x4-pixel cells first
# Text-line windows (width, height) in grid cells, one anchor scale each: the characters of
# an EU plate fill ~88% of its width and ~62% of its height (it is ~4.7 times wider).
ANCHOR_WINDOWS = ((8, 2), (12, 3), (18, 4), (26, 6))
TEXT_WIDTH, TEXT_HEIGHT = 0.88, 0.62
SURROUND = 2  # the surround window is this many times the text window
CENTRE_GAIN = 40.0
SURROUND_WEIGHT = 1.0
SCORE_BIAS = 3.0
SCALE_GAIN = 1.0  # extra gain per larger scale: of nested fits, prefer the whole plate
MAX_DETECTIONS = 10
CPU_MODEL = "plates-cpu.tflite"
EDGETPU_MODEL = "plates-cpu_edgetpu.tflite"
MANIFEST = "plates.toml"


@dataclass(frozen=True)
class _Tensor:
    index: int


class _GraphBuilder:
    """Collects tensors, buffers and operators, then packs one TFLite model."""

    def __init__(self) -> None:
        try:
            from ai_edge_litert import schema_py_generated as schema
        except ImportError:
            raise ConfigError(
                "building the test model needs ai_edge_litert: pip install 'platesift[tflite]'"
            ) from None
        self.s: Any = schema
        self.tensors: list[Any] = []
        self.buffers: list[Any] = [schema.BufferT()]  # buffer 0 is the empty sentinel
        self.operators: list[Any] = []
        self.opcodes: list[tuple[int, str | None]] = []

    def tensor(
        self,
        name: str,
        shape: Sequence[int],
        dtype: int | None = None,
        data: np.ndarray | None = None,
        quant: tuple[float, int] | None = None,
    ) -> _Tensor:
        s = self.s
        t = s.TensorT()
        t.name = name
        t.shape = list(shape)
        t.type = s.TensorType.FLOAT32 if dtype is None else dtype
        t.buffer = 0
        if data is not None:
            buf = s.BufferT()
            buf.data = list(np.ascontiguousarray(data).tobytes())
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        if quant is not None:
            q = s.QuantizationParametersT()
            q.scale, q.zeroPoint = [quant[0]], [quant[1]]
            t.quantization = q
        self.tensors.append(t)
        return _Tensor(len(self.tensors) - 1)

    def const(self, name: str, data: np.ndarray) -> _Tensor:
        data = np.asarray(data, np.float32)
        return self.tensor(name, data.shape, data=data)

    def op(
        self,
        code: int,
        inputs: Sequence[_Tensor],
        outputs: Sequence[_Tensor],
        options: Any = None,
        options_type: int = 0,
        custom: str | None = None,
        custom_options: bytes | None = None,
    ) -> None:
        key = (code, custom)
        if key not in self.opcodes:
            self.opcodes.append(key)
        o = self.s.OperatorT()
        o.opcodeIndex = self.opcodes.index(key)
        o.inputs = [t.index for t in inputs]
        o.outputs = [t.index for t in outputs]
        if options is not None:
            o.builtinOptionsType, o.builtinOptions = options_type, options
        if custom_options is not None:
            o.customOptions = list(custom_options)
        self.operators.append(o)

    def build(self, inputs: Sequence[_Tensor], outputs: Sequence[_Tensor], doc: str) -> bytes:
        import flatbuffers

        s = self.s
        graph = s.SubGraphT()
        graph.tensors, graph.operators = self.tensors, self.operators
        graph.inputs = [t.index for t in inputs]
        graph.outputs = [t.index for t in outputs]
        graph.name = "main"
        model = s.ModelT()
        model.version = 3
        model.description = doc
        model.subgraphs = [graph]
        model.buffers = self.buffers
        model.operatorCodes = []
        for code, custom in self.opcodes:
            oc = s.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.customCode = custom
            oc.version = 1
            model.operatorCodes.append(oc)
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def _same_offset(size: int, window: int, stride: int) -> float:
    """Where (in input pixels) the first SAME-padded window starts."""
    out = math.ceil(size / stride)
    pad_total = max((out - 1) * stride + window - size, 0)
    return -(pad_total // 2)


def anchors(size: int = INPUT_SIZE) -> np.ndarray:
    """(N, 4) anchors as (y centre, x centre, height, width), normalised, scale by scale: the
    plate around each text-line window."""
    grid = size // GRID_STRIDE
    rows = []
    for w, h in ANCHOR_WINDOWS:
        y0 = _same_offset(grid, h, 1) + h / 2
        x0 = _same_offset(grid, w, 1) + w / 2
        ph, pw = h * GRID_STRIDE / TEXT_HEIGHT, w * GRID_STRIDE / TEXT_WIDTH
        for i in range(grid):
            for j in range(grid):
                yc, xc = (y0 + i) * GRID_STRIDE, (x0 + j) * GRID_STRIDE
                rows.append((yc / size, xc / size, ph / size, pw / size))
    return np.asarray(rows, np.float32)


def _pool(s: Any, width: int, height: int, stride: int) -> Any:
    pool = s.Pool2DOptionsT()
    pool.padding = s.Padding.SAME
    pool.strideW = pool.strideH = stride
    pool.filterWidth, pool.filterHeight = width, height
    return pool


def build_cpu_model(size: int = INPUT_SIZE) -> bytes:
    """The CPU detection model, as .tflite bytes (deterministic)."""
    g = _GraphBuilder()
    s = g.s
    op, opts = s.BuiltinOperator, s.BuiltinOptions
    if size % GRID_STRIDE:
        raise ValueError(f"input size must be a multiple of {GRID_STRIDE}")
    grid = size // GRID_STRIDE
    image = g.tensor("image", (1, size, size, 3), s.TensorType.UINT8, quant=(1 / 255, 0))
    x = g.tensor("image_float", (1, size, size, 3))
    g.op(op.DEQUANTIZE, [image], [x])

    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32) / (4 * 3)
    kernel = np.repeat(sobel[None, :, :, None], 3, axis=3)  # OHWI, grey from 3 channels
    dx = g.tensor("dx", (1, size, size, 1))
    conv = s.Conv2DOptionsT()
    conv.padding, conv.strideW, conv.strideH = s.Padding.SAME, 1, 1
    conv.dilationWFactor = conv.dilationHFactor = 1
    g.op(
        op.CONV_2D,
        [x, g.const("sobel_x", kernel), g.const("sobel_bias", np.zeros(1))],
        [dx],
        conv,
        opts.Conv2DOptions,
    )
    strokes = g.tensor("strokes", (1, size, size, 1))
    g.op(op.ABS, [dx], [strokes])
    cells = g.tensor("stroke_density", (1, grid, grid, 1))
    g.op(
        op.AVERAGE_POOL_2D,
        [strokes],
        [cells],
        _pool(s, GRID_STRIDE, GRID_STRIDE, GRID_STRIDE),
        opts.Pool2DOptions,
    )

    per_scale = []
    for k, (w, h) in enumerate(ANCHOR_WINDOWS):
        pooled = []
        for kind, (pw, ph) in (("centre", (w, h)), ("surround", (w * SURROUND, h * SURROUND))):
            t = g.tensor(f"{kind}_{w}x{h}", (1, grid, grid, 1))
            g.op(op.AVERAGE_POOL_2D, [cells], [t], _pool(s, pw, ph, 1), opts.Pool2DOptions)
            pooled.append(t)
        both = g.tensor(f"features_{w}x{h}", (1, grid, grid, 2))
        cat = s.ConcatenationOptionsT()
        cat.axis = 3
        g.op(op.CONCATENATION, pooled, [both], cat, opts.ConcatenationOptions)
        gain = CENTRE_GAIN * (1 + k * SCALE_GAIN)
        weights = np.array([[[[gain, -gain * SURROUND_WEIGHT]]]], np.float32)
        logit = g.tensor(f"logit_{w}x{h}", (1, grid, grid, 1))
        one = s.Conv2DOptionsT()
        one.padding, one.strideW, one.strideH = s.Padding.VALID, 1, 1
        one.dilationWFactor = one.dilationHFactor = 1
        g.op(
            op.CONV_2D,
            [
                both,
                g.const(f"w_{w}x{h}", weights),
                g.const(f"b_{w}x{h}", np.array([-SCORE_BIAS])),
            ],
            [logit],
            one,
            opts.Conv2DOptions,
        )
        score = g.tensor(f"score_{w}x{h}", (1, grid, grid, 1))
        g.op(op.LOGISTIC, [logit], [score])
        flat = g.tensor(f"flat_{w}x{h}", (1, grid * grid, 1))
        reshape = s.ReshapeOptionsT()
        reshape.newShape = [1, grid * grid, 1]
        g.op(
            op.RESHAPE,
            [
                score,
                g.tensor(
                    f"shape_{w}x{h}",
                    (3,),
                    s.TensorType.INT32,
                    np.array([1, grid * grid, 1], np.int32),
                ),
            ],
            [flat],
            reshape,
            opts.ReshapeOptions,
        )
        per_scale.append(flat)

    n = grid * grid * len(ANCHOR_WINDOWS)
    plate = g.tensor("plate_scores", (1, n, 1))
    cat = s.ConcatenationOptionsT()
    cat.axis = 1
    g.op(op.CONCATENATION, per_scale, [plate], cat, opts.ConcatenationOptions)
    classes = g.tensor("class_predictions", (1, n, 2))
    cat2 = s.ConcatenationOptionsT()
    cat2.axis = 2
    g.op(
        op.CONCATENATION,
        [g.const("background", np.zeros((1, n, 1))), plate],
        [classes],
        cat2,
        opts.ConcatenationOptions,
    )
    outputs = [
        g.tensor("detection_boxes", (1, MAX_DETECTIONS, 4)),
        g.tensor("detection_classes", (1, MAX_DETECTIONS)),
        g.tensor("detection_scores", (1, MAX_DETECTIONS)),
        g.tensor("num_detections", (1,)),
    ]
    from flatbuffers import flexbuffers

    post = flexbuffers.Dumps(
        {
            "max_detections": MAX_DETECTIONS,
            "max_classes_per_detection": 1,
            "detections_per_class": 100,
            "use_regular_nms": False,
            "nms_score_threshold": 0.2,
            "nms_iou_threshold": 0.3,
            "num_classes": 1,
            "y_scale": 10.0,
            "x_scale": 10.0,
            "h_scale": 5.0,
            "w_scale": 5.0,
        }
    )
    g.op(
        op.CUSTOM,
        [g.const("box_encodings", np.zeros((1, n, 4))), classes, g.const("anchors", anchors(size))],
        outputs,
        custom="TFLite_Detection_PostProcess",
        custom_options=post,
    )
    return g.build([image], outputs, "platesift synthetic plate detector (not trained)")


def build_edgetpu_standin(size: int = INPUT_SIZE) -> bytes:
    """A model shaped like an `edgetpu_compiler` output: one `edgetpu-custom-op` does it all.

    The CPU runtime refuses it at `allocate_tensors()` exactly as it refuses a real compiled
    model ("Encountered unresolved custom op: edgetpu-custom-op").
    """
    g = _GraphBuilder()
    s = g.s
    image = g.tensor("image", (1, size, size, 3), s.TensorType.UINT8, quant=(1 / 255, 0))
    outputs = [
        g.tensor("detection_boxes", (1, MAX_DETECTIONS, 4)),
        g.tensor("detection_classes", (1, MAX_DETECTIONS)),
        g.tensor("detection_scores", (1, MAX_DETECTIONS)),
        g.tensor("num_detections", (1,)),
    ]
    g.op(s.BuiltinOperator.CUSTOM, [image], outputs, custom="edgetpu-custom-op")
    return g.build([image], outputs, "stand-in for an Edge TPU compiled model")


def manifest_text(size: int = INPUT_SIZE) -> str:
    """The model manifest (TOML) describing the two files written by `write_models`."""
    return (
        "# Model manifest for platesift's synthetic plate detector (see models/manifest.py).\n"
        "[model]\n"
        'name = "platesift-synthetic-plates"\n'
        f'cpu_file = "{CPU_MODEL}"\n'
        f'edgetpu_file = "{EDGETPU_MODEL}"\n'
        'labels = ["plate"]\n'
        'plate_label = "plate"\n'
        f"input_size = [{size}, {size}]\n"
        "input_channels = 3\n"
        'input_type = "uint8"\n'
        'output_layout = "ssd_postprocess"\n'
        'output_order = ["boxes", "classes", "scores", "count"]\n'
        "score_threshold = 0.5\n"
    )


def write_models(directory: Path, size: int = INPUT_SIZE) -> Path:
    """Write the CPU model, the Edge TPU stand-in and their manifest; return the manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CPU_MODEL).write_bytes(build_cpu_model(size))
    (directory / EDGETPU_MODEL).write_bytes(build_edgetpu_standin(size))
    manifest = directory / MANIFEST
    manifest.write_text(manifest_text(size))
    return manifest


__all__ = [
    "CPU_MODEL",
    "EDGETPU_MODEL",
    "MANIFEST",
    "anchors",
    "build_cpu_model",
    "build_edgetpu_standin",
    "manifest_text",
    "write_models",
]
