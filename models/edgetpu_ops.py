"""Edge TPU compatibility of a TFLite model, read from the flatbuffer itself: every operator
one that the Edge TPU maps (or the SSD post-process op, which runs on the CPU beside it),
every tensor integer, every shape static. `edgetpu_compiler` would leave anything else on
the CPU, silently cutting the graph in two, so the project's tests run this check on every
model it ships.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from platesift.errors import ModelError

EDGETPU_OPS = frozenset(
    {
        "ADD",
        "AVERAGE_POOL_2D",
        "CONCATENATION",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "DEQUANTIZE",
        "FULLY_CONNECTED",
        "L2_NORMALIZATION",
        "LOGISTIC",
        "MAX_POOL_2D",
        "MEAN",
        "MUL",
        "PAD",
        "QUANTIZE",
        "RELU",
        "RELU6",
        "RELU_N1_TO_1",
        "RESHAPE",
        "RESIZE_BILINEAR",
        "RESIZE_NEAREST_NEIGHBOR",
        "SOFTMAX",
        "SPLIT",
        "SQUEEZE",
        "STRIDED_SLICE",
        "SUB",
        "TANH",
        "TRANSPOSE_CONV",
    }
)
"""Operators on Coral's "supported operations" list (coral.ai/docs/edgetpu/models-intro)."""
POST_PROCESS_OP = "TFLite_Detection_PostProcess"
INTEGER_TYPES = frozenset({"INT8", "UINT8", "INT32"})
"""Tensor types of a fully integer model (INT32 holds the biases of quantised convolutions)."""


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # pragma: no cover - the runtime is a dependency
        from tflite_runtime import schema_py_generated as schema
    return schema


def _builtin_codes(model: Any) -> list[int]:
    """The builtin operator code of each of a model's operator codes (old files keep small
    codes in the deprecated field, new ones in the other)."""
    return [
        max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
        for i in range(model.OperatorCodesLength())
    ]


def model_ops(path: Path) -> tuple[list[str], list[tuple[str, str, list[int]]]]:
    """The operator names of a model's main graph, and its tensors (name, type, shape
    signature) up to the post-process op's inputs."""
    schema = _schema()
    try:
        model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
        graph = model.Subgraphs(0)
    except Exception as exc:  # a truncated or foreign file: flatbuffers raises anything
        raise ModelError(f"{path} is not a TFLite model ({type(exc).__name__})") from None
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    codes = []
    for i, builtin in enumerate(_builtin_codes(model)):
        custom = model.OperatorCodes(i).CustomCode()
        codes.append(custom.decode() if custom else op_names.get(builtin, str(builtin)))
    ops: list[str] = []
    after_post: set[int] = set()
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        name = codes[op.OpcodeIndex()]
        ops.append(name)
        if name == POST_PROCESS_OP:
            after_post.update(int(t) for t in op.OutputsAsNumpy())
    tensors = []
    for i in range(graph.TensorsLength()):
        if i in after_post:
            continue
        t = graph.Tensors(i)
        signature = t.ShapeSignatureAsNumpy() if t.ShapeSignatureLength() else t.ShapeAsNumpy()
        shape = [int(v) for v in signature] if t.ShapeLength() or t.ShapeSignatureLength() else []
        tensors.append((t.Name().decode(), type_names.get(t.Type(), str(t.Type())), shape))
    return ops, tensors


def conv_macs(path: Path) -> int:
    """Multiply-accumulates of one inference's convolutions (CONV_2D and DEPTHWISE_CONV_2D):
    what the model costs on a CPU, nearly all of it."""
    schema = _schema()
    model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    codes = _builtin_codes(model)
    conv, depthwise = schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D
    total = 0
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = codes[op.OpcodeIndex()]
        if code not in (conv, depthwise):
            continue
        out = [int(v) for v in graph.Tensors(int(op.Outputs(0))).ShapeAsNumpy()]
        kernel = [int(v) for v in graph.Tensors(int(op.Inputs(1))).ShapeAsNumpy()]
        per_output = kernel[1] * kernel[2] * (kernel[3] if code == conv else 1)
        total += out[0] * out[1] * out[2] * out[3] * per_output
    return total


def edgetpu_problems(path: Path) -> list[str]:
    """What would keep `path` from running whole on the Edge TPU (empty: nothing)."""
    ops, tensors = model_ops(path)
    problems = [
        f"operator {op} is not on the Edge TPU's list"
        for op in sorted(set(ops))
        if op not in EDGETPU_OPS and op != POST_PROCESS_OP
    ]
    floats = [f"{name} ({kind})" for name, kind, _ in tensors if kind not in INTEGER_TYPES]
    dynamic = [f"{name} {shape}" for name, _, shape in tensors if any(v < 0 for v in shape)]
    for what, found in (("not integer", floats), ("of dynamic shape", dynamic)):
        if found:
            problems.append(f"{len(found)} tensor(s) {what}, the first: {found[0]}")
    return problems


__all__ = ["EDGETPU_OPS", "POST_PROCESS_OP", "conv_macs", "edgetpu_problems", "model_ops"]
