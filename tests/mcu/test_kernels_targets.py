"""The conv/gemm kernels compile warning-free (-Wall -Wextra -Werror -std=c99) for every MCU
target profile at -O2 and -Os, and the M4 build's hot loops use fused multiply-adds."""

from __future__ import annotations

import subprocess

import pytest

from . import kernels_support as ks

TARGET_FLAGS = {
    "cortex-m0plus": ["-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"],
    "cortex-m4": ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
    "cortex-m7": ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"],
    "cortex-m55": ["-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"],
}


@pytest.mark.parametrize("opt", ["-O2", "-Os"])
@pytest.mark.parametrize("target", sorted(TARGET_FLAGS))
def test_kernels_compile_warning_free(tmp_path, target, opt):
    for src in ks.SOURCES:
        proc = subprocess.run(["arm-none-eabi-gcc", *TARGET_FLAGS[target], opt, *ks.HOST_FLAGS,
                               "-c", str(src), "-o", str(tmp_path / (src.stem + ".o"))],
                              capture_output=True, text=True)
        assert proc.returncode == 0 and not proc.stderr, proc.stderr


def test_m4_inner_loops_use_vfma(tmp_path):
    """-std=c99 turns off GCC's automatic FMA contraction: the kernels must ask for VFMA."""
    for src in ks.SOURCES:
        asm = tmp_path / (src.stem + ".s")
        subprocess.run(["arm-none-eabi-gcc", *TARGET_FLAGS["cortex-m4"], "-O2", *ks.HOST_FLAGS,
                        "-S", str(src), "-o", str(asm)], check=True)
        text = asm.read_text()
        assert text.count("vfma.f32") >= 16, src.name
