"""LogSoftmax at large magnitudes: the kernel must compute (x - max) - log(sum), not x - (max +
log(sum)); the latter rounds the shift at max's magnitude (ulp(1e5) ~ 8e-3) and lost ~1e-2."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from .helpers import build_shared, generate_model, host_model

SHAPE = [4, 8]


def _model(axis: int):
    graph = helper.make_graph([helper.make_node("LogSoftmax", ["x"], ["y"], axis=axis)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _inputs(axis: int) -> np.ndarray:
    """Each slice along ``axis`` sits around +1e5, -1e5, 3e4 or 0, spread by a few units so the
    log-probabilities are O(1) and float32 holds them to ~1e-6."""
    rng = np.random.default_rng(7 + axis)
    offsets = np.resize([1e5, -1e5, 3e4, 0.0], SHAPE[1 - axis])
    x = rng.standard_normal(SHAPE) * 2.0 + np.expand_dims(offsets, axis)
    return x.astype(np.float32)


def _reference(x: np.ndarray, axis: int) -> np.ndarray:
    x64 = x.astype(np.float64)
    m = x64.max(axis=axis, keepdims=True)
    return (x64 - m) - np.log(np.exp(x64 - m).sum(axis=axis, keepdims=True))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    work = tmp_path_factory.mktemp("log_softmax")
    gens = {axis: generate_model(_model(axis), work / f"a{axis}", f"lsm_a{axis}", with_kernels=False,
                                 with_integration=False) for axis in (1, 0)}
    lib = build_shared([(work / f"a{axis}", g) for axis, g in gens.items()], work)
    return {axis: host_model(lib, g) for axis, g in gens.items()}


@pytest.mark.parametrize("axis", [1, 0], ids=["contiguous", "strided"])
def test_log_softmax_exact_at_large_magnitudes(models, axis):
    x = _inputs(axis)
    (got,) = models[axis].run([x])
    ref = _reference(x, axis)
    assert np.abs(ref).max() < 20  # the outputs are O(1): an error of 1e-5 is ~40 float32 ulps
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
