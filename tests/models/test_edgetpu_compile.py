"""`platesift model compile` against a stand-in `edgetpu_compiler` on PATH (Coral's compiler
does not exist on this machine): it writes what the real one writes (`<stem>_edgetpu.tflite`,
holding the Edge TPU custom op) and prints its summary and `-s` operator table, and it can
leave ops on the CPU or fail, as the real one does."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from models.edgetpu_compile import compile_for_edgetpu
from models.edgetpu_ops import model_ops
from models.manifest import is_edgetpu_model, load_manifest
from models.registry import SHIPPED_MANIFEST
from platesift.errors import ConfigError, ModelError
from tests.test_cli import run

STANDIN = r'''#!{python}
"""Stand-in edgetpu_compiler: `-s -o OUT MODEL`."""
import os, sys
args = sys.argv[1:]
mode = os.environ.get("STANDIN_MODE", "ok")
assert args[:2] == ["-s", "-o"], args
out, model = args[2], args[3]
print("Edge TPU Compiler version 16.0.384591198")
if mode == "fail":
    print("Invalid model: " + model, file=sys.stderr)
    print("Model not compiled", file=sys.stderr)
    sys.exit(1)
stem = os.path.splitext(os.path.basename(model))[0]
with open(model, "rb") as src, open(os.path.join(out, stem + "_edgetpu.tflite"), "wb") as dst:
    dst.write(src.read() + b"edgetpu-custom-op")
print(f"Input: {model}\nOutput: {out}/{stem}_edgetpu.tflite\n")
print("Operator                       Count      Status\n")
print("CONV_2D                        21         Mapped to Edge TPU")
if mode == "cpu-ops":
    print("RESIZE_BILINEAR                2          Operation is otherwise supported, "
          "but not mapped due to some unspecified limitation")
    print("Number of operations that will run on Edge TPU: 21")
    print("Number of operations that will run on CPU: 2")
else:
    print("Number of operations that will run on Edge TPU: 21")
    print("Number of operations that will run on CPU: 0")
'''


@pytest.fixture
def compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "edgetpu_compiler"
    exe.write_text(STANDIN.replace("{python}", sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return exe


def test_the_shipped_model_compiles_whole_into_a_manifest_that_passes_every_check(
    compiler: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = compile_for_edgetpu(SHIPPED_MANIFEST, out)
    assert (result.on_edgetpu, result.on_cpu, result.cpu_ops) == (21, 0, ())
    assert result.edgetpu_file == out / "plates_edgetpu.tflite" and is_edgetpu_model(
        result.edgetpu_file
    )
    manifest = load_manifest(result.manifest)
    assert manifest.edgetpu_file == result.edgetpu_file
    assert manifest.cpu_file == out / "plates.tflite"
    assert (
        manifest.cpu_file.read_bytes() == (SHIPPED_MANIFEST.parent / "plates.tflite").read_bytes()
    )
    shipped = tomllib.loads(SHIPPED_MANIFEST.read_text())["model"]
    built = tomllib.loads(result.manifest.read_text())["model"]
    assert built == {**shipped, "edgetpu_file": "plates_edgetpu.tflite"}
    assert "16.0.384591198" in result.manifest.read_text()
    assert sorted(p.name for p in out.iterdir()) == [
        "plates.tflite",
        "plates.toml",
        "plates_edgetpu.tflite",
    ]


def test_the_command_prints_the_op_count_and_the_setting(compiler: Path, tmp_path: Path) -> None:
    result = run(["model", "compile", "--out", str(tmp_path / "out")], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "21 of 21 operations run on the Edge TPU" in result.stdout
    assert f"proposer.model = {(tmp_path / 'out' / 'plates.toml').resolve()}" in result.stdout


def test_ops_left_on_the_cpu_are_refused_and_nothing_is_written(
    compiler: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_MODE", "cpu-ops")
    out = tmp_path / "out"
    with pytest.raises(ModelError, match=r"left 2 operation\(s\) on the CPU \(RESIZE_BILINEAR\)"):
        compile_for_edgetpu(SHIPPED_MANIFEST, out)
    assert list(out.iterdir()) == []


def test_a_failing_compiler_is_one_line(compiler: Path, tmp_path: Path) -> None:
    os.environ["STANDIN_MODE"] = "fail"  # run() passes this process's environment on
    try:
        result = run(["model", "compile", "--out", str(tmp_path / "out")], tmp_path)
    finally:
        del os.environ["STANDIN_MODE"]
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "edgetpu_compiler failed (exit 1): Model not compiled" in lines[0]


def test_no_compiler_is_a_config_error_with_the_install_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="apt install edgetpu-compiler"):
        compile_for_edgetpu(SHIPPED_MANIFEST, tmp_path / "out")


def test_every_model_we_ship_maps_whole_onto_the_edge_tpu() -> None:
    from models.edgetpu_ops import edgetpu_problems

    for manifest in sorted((SHIPPED_MANIFEST.parent).glob("*.toml")):
        cpu = load_manifest(manifest).cpu_file
        assert cpu is not None and edgetpu_problems(cpu) == [], manifest
        assert model_ops(cpu)[0]  # it has operators at all
