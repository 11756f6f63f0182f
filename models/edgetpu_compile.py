"""`platesift model compile`: the Edge TPU build of a model, made by Coral's `edgetpu_compiler`.

The compiler (Coral's apt package `edgetpu-compiler`, x86-64 only) maps every op it can onto
the Edge TPU and leaves the rest to the CPU, silently. So the CPU model is checked first
(`models/edgetpu_ops.py`: every op on the Edge TPU's list, integer tensors, static shapes),
the compiler's own count of ops left on the CPU is read from its output, and a build that
leaves anything but the detection post-process on the CPU is refused. The result is a
self-contained folder: the CPU model, its `_edgetpu` build and a manifest naming both, which
`proposer.model` points at (with a Coral, `proposer.backend = auto` then runs the build).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from models.edgetpu_ops import POST_PROCESS_OP, edgetpu_problems, model_ops
from models.manifest import file_digest, is_edgetpu_model, load_manifest
from platesift.errors import ConfigError, ModelError

COMPILER = "edgetpu_compiler"
COMPILE_TIMEOUT_S = 600.0
INSTALL_HINT = (
    "install Coral's compiler (x86-64 Debian/Ubuntu): add the repository of "
    "https://coral.ai/docs/edgetpu/compiler/ and `sudo apt install edgetpu-compiler`"
)
_COUNT = re.compile(r"Number of operations that will run on (Edge TPU|CPU):\s*(\d+)")
_VERSION = re.compile(r"Edge TPU Compiler version\s+(\S+)")
_ROW = re.compile(r"^([A-Z][A-Z0-9_]+)\s+(\d+)\s+(.+?)\s*$")
_MAPPED = "Mapped to Edge TPU"


@dataclass(frozen=True)
class CompileResult:
    manifest: Path  # the new manifest, naming the CPU model and its Edge TPU build
    edgetpu_file: Path
    on_edgetpu: int  # operations the compiler mapped onto the Edge TPU
    on_cpu: int  # operations it left to the CPU
    cpu_ops: tuple[str, ...]  # which ones (only the detection post-process is allowed)
    compiler_version: str


def compile_for_edgetpu(
    manifest_path: Path, out: Path, compiler: str | None = None
) -> CompileResult:
    """Compile the CPU model of `manifest_path` into `out` (created; files of the same names
    replaced); ConfigError without a compiler, ModelError for a model that does not map whole."""
    manifest = load_manifest(manifest_path)
    if manifest.cpu_file is None:
        raise ModelError(f"{manifest_path}: there is no cpu_file to compile")
    problems = edgetpu_problems(manifest.cpu_file)
    if problems:
        raise ModelError(f"{manifest.cpu_file} cannot run whole on the Edge TPU: {problems[0]}")
    exe = shutil.which(compiler or COMPILER)
    if exe is None:
        raise ConfigError(f"{COMPILER} is not installed: {INSTALL_HINT}")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".compile-", dir=out) as work:
        source = Path(work) / manifest.cpu_file.name
        shutil.copyfile(manifest.cpu_file, source)
        text = _run(exe, source, Path(work))
        counts = dict(_COUNT.findall(text))
        if "Edge TPU" not in counts or "CPU" not in counts:
            raise ModelError(f"{COMPILER} did not say how many operations it mapped: {_last(text)}")
        built = Path(work) / f"{source.stem}_edgetpu.tflite"
        if not built.is_file() or not is_edgetpu_model(built):
            raise ModelError(f"{COMPILER} wrote no Edge TPU model ({built.name}): {_last(text)}")
        cpu_ops = tuple(op for op, _count, status in _table(text) if status != _MAPPED)
        result = CompileResult(
            manifest=out / manifest_path.name,
            edgetpu_file=out / built.name,
            on_edgetpu=int(counts["Edge TPU"]),
            on_cpu=int(counts["CPU"]),
            cpu_ops=cpu_ops,
            compiler_version=_version(text),
        )
        ops, _ = model_ops(manifest.cpu_file)
        # The detection post-process has no Edge TPU version: the compiler lists it as itself
        # or as CUSTOM. Nothing else may stay on the CPU.
        allowed = {POST_PROCESS_OP, "CUSTOM"} if POST_PROCESS_OP in ops else set()
        left = [op for op in cpu_ops if op not in allowed]
        if left or (result.on_cpu and not cpu_ops):
            raise ModelError(
                f"{COMPILER} left {result.on_cpu} operation(s) on the CPU "
                f"({', '.join(left) or 'unnamed'}): the model would run split between the Edge TPU "
                "and the CPU"
            )
        os.replace(source, out / source.name)
        os.replace(built, result.edgetpu_file)
        _write_manifest(manifest_path, result, out / source.name)
    load_manifest(result.manifest)  # the new manifest and both files pass every check
    return result


def _table(text: str) -> list[tuple[str, str, str]]:
    """(operator, count, status) of each row of the compiler's `-s` operator table."""
    rows = []
    for line in text.splitlines():
        match = _ROW.match(line.strip())
        if match:
            op, count, status = match.groups()
            rows.append((op, count, status))
    return rows


def _version(text: str) -> str:
    match = _VERSION.search(text)
    return match.group(1) if match else "unknown"


def _run(exe: str, source: Path, work: Path) -> str:
    try:
        done = subprocess.run(
            [exe, "-s", "-o", str(work), str(source)],
            capture_output=True,
            text=True,
            timeout=COMPILE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ModelError(f"{COMPILER} did not finish in {COMPILE_TIMEOUT_S:g} s") from None
    except OSError as exc:
        raise ConfigError(f"{COMPILER} cannot be run: {exc.strerror}") from None
    text = done.stdout + done.stderr
    if done.returncode != 0:
        raise ModelError(f"{COMPILER} failed (exit {done.returncode}): {_last(text)}")
    return text


def _last(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else "no output")[:300]


def _write_manifest(original: Path, result: CompileResult, cpu_copy: Path) -> None:
    """The original manifest with `edgetpu_file` added and where the build came from."""
    lines = original.read_text(encoding="utf-8").splitlines()
    text = "\n".join(line for line in lines if not line.strip().startswith("edgetpu_file"))
    provenance = (
        f"# Edge TPU build: {COMPILER} {result.compiler_version}, "
        f"{result.on_edgetpu} operation(s) on the Edge TPU, {result.on_cpu} on the CPU; "
        f"from {cpu_copy.name} sha256 {file_digest(cpu_copy)[:16]}.\n"
    )
    text = text.replace("[model]\n", f'[model]\nedgetpu_file = "{result.edgetpu_file.name}"\n', 1)
    tmp = result.manifest.with_name(f".{result.manifest.name}.tmp")
    tmp.write_text(provenance + text + "\n", encoding="utf-8")
    os.replace(tmp, result.manifest)


__all__ = ["COMPILER", "INSTALL_HINT", "CompileResult", "compile_for_edgetpu"]
