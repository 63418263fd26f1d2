"""Conv / ConvTranspose / Gemm / MatMul kernels built for the host (gcc -O2 -shared) against
onnxruntime one-node models, over hypothesis-drawn shapes and attributes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import kernels_support as ks

SETTINGS = settings(max_examples=120, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def kernels() -> ks.HostKernels:
    return ks.HostKernels(ks.build_host_library())


def _drawn(kind: str):
    @st.composite
    def strategy(draw):
        seed = draw(st.integers(0, 2**31 - 1))
        pick = lambda lo, hi: draw(st.integers(lo, hi))  # noqa: E731
        return ks.CASE_MAKERS[kind](pick, np.random.default_rng(seed))
    return strategy()


@SETTINGS
@given(case=_drawn("conv"))
def test_conv_matches_onnxruntime(kernels, case):
    ks.check_case(kernels, case)


@pytest.mark.parametrize("name,attrs", ks.TARGETED_CONVS, ids=[n for n, _ in ks.TARGETED_CONVS])
def test_conv_code_paths_match_onnxruntime(kernels, name, attrs):
    ks.check_case(kernels, ks.make_conv_case(attrs, np.random.default_rng(5)))


@SETTINGS
@given(case=_drawn("conv_transpose"))
def test_conv_transpose_matches_onnxruntime(kernels, case):
    ks.check_case(kernels, case)


@SETTINGS
@given(case=_drawn("gemm"))
def test_gemm_matches_onnxruntime(kernels, case):
    ks.check_case(kernels, case)


@SETTINGS
@given(case=_drawn("matmul"))
def test_matmul_matches_onnxruntime(kernels, case):
    ks.check_case(kernels, case)


@SETTINGS
@given(case=_drawn("conv"))
def test_conv_scratch_size_same_in_python_and_c(kernels, case):
    from edgekit.plugins.mcu.weight_layout import conv2d_scratch_floats
    assert conv2d_scratch_floats(case.params) == kernels.conv2d_scratch_size(case.params)
