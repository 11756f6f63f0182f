"""The evaluation reports the machine it measured latency on."""

from __future__ import annotations

from pathlib import Path

from training.evaluate import cpu_description


def test_the_cpu_is_named_with_its_int8_dot_product_instructions(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: Some CPU\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n")
    assert cpu_description(info).startswith("Some CPU, ")
    assert cpu_description(info).endswith("int8 dot-product instructions: avx512_vnni")
    info.write_text("model name\t: Old CPU\nflags\t\t: fpu sse avx2\n")
    assert cpu_description(info).endswith("int8 dot-product instructions: none")
