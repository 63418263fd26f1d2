"""The conv/gemm kernels as built for the Cortex-M4 (-O2 and -Os, incl. the VLDM assembly
paths) compute the right outputs on the emulated board: small odd shapes through the
benchmark's firmware, which checks every output against a float64 reference and exits non-zero
on a mismatch; the instruction count between the markers must be positive and bounded."""

from __future__ import annotations

import importlib.util
import shutil
import sys

import pytest

from .kernels_support import REPO

pytestmark = pytest.mark.skipif(not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")),
                                reason="needs qemu-system-arm and arm-none-eabi-gcc")


def _bench():
    spec = importlib.util.spec_from_file_location("kernels_m4", REPO / "benchmarks" / "kernels_m4.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


BENCH = _bench()
# No fused Relu: a clamp to 0 would hide wrong negative outputs.
SHAPES = [
    BENCH.Dense("fc k13 n19 (odd k, leftover columns)", 13, 19, relu=False),
    BENCH.Dense("fc k1 n8", 1, 8, relu=False),
    BENCH.Dense("fc k2 n3", 2, 3, relu=False),
    BENCH.Conv("conv 5->6 9x9 k3 s1 pads 1,0,2,1", 5, 9, 6, 3, 1, (1, 0, 2, 1), relu=False),
    BENCH.Conv("conv 4->9 10x10 k3 s2 upper", 4, 10, 9, 3, 2, (0, 0, 1, 1), relu=False),
    BENCH.Conv("conv 3->5 7x7 k1 s2", 3, 7, 5, 1, 2, (0, 0, 0, 0), relu=False),
    BENCH.Conv("conv 2->4 11x11 k5 s1 pads 2", 2, 11, 4, 5, 1, (2, 2, 2, 2), relu=False),
    BENCH.Conv("conv 3->4 9x9 k2 s3", 3, 9, 4, 2, 3, (1, 1, 0, 0), relu=False),
    BENCH.Conv("pointwise conv 5->9 5x7 k1 s1 (flattened)", 5, 5, 9, 1, 1, (0, 0, 0, 0),
               relu=False, width=7),
    BENCH.Deconv("convtranspose 3->6 5x5 k3 s2 p1 out_pad 1", 3, 5, 6, 3, 2, 1, 1, relu=False),
    BENCH.Deconv("convtranspose 4->5 4x4 k4 s2 p1", 4, 4, 5, 4, 2, 1, relu=False),
    BENCH.Conv("grouped conv 6->10 g2 8x11 k3 s1", 6, 8, 10, 3, 1, (1, 1, 1, 1), relu=False,
               groups=2, width=11),
    BENCH.Conv("depthwise conv 5->10 (x2) 7x6 k3 s2", 5, 7, 10, 3, 2, (0, 1, 1, 0), relu=False,
               groups=5, width=6),
]


@pytest.mark.parametrize("opt", ["-O2", "-Os"])
@pytest.mark.parametrize("layer", SHAPES, ids=lambda layer: layer.name)
def test_kernel_correct_on_emulated_m4(tmp_path, layer, opt):
    result = BENCH.measure(layer, opt, tmp_path, seed=7)  # raises if the firmware's check fails
    assert 0 < result["instructions"] < 40 * layer.macs + 5000


@pytest.mark.parametrize("target", ["cortex-m7", "cortex-m0plus"])
@pytest.mark.parametrize("layer", [SHAPES[0], SHAPES[3], SHAPES[4]], ids=lambda layer: layer.name)
def test_kernel_correct_on_other_boards(tmp_path, layer, target):
    """M7 runs the same VLDM assembly as the M4; the M0+ build (soft float) runs the C loops."""
    result = BENCH.measure(layer, "-O2", tmp_path, seed=11, target=target)
    assert result["instructions"] > 0
