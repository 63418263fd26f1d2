"""The integer-only int8 boundary for cores without an FPU: QuantizeLinear as a binary search over
the level boundaries of the float's order key, DequantizeLinear as a 256-entry table. Both must give
exactly the values of the float kernels and of onnxruntime, specials included."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.plugins.mcu import hostbuild, qmath
from edgekit.plugins.mcu.generator import generate
from edgekit.verify import run_onnxruntime

CASES = [(0.05, 3), (0.0137, -5), (1.0, 0), (3e-5, 100), (0.5, -128), (2.0, 127), (7.3e3, -60)]


def _probe_values(scale: float, rng: np.random.Generator) -> np.ndarray:
    """Random values, every half step (ties), the floats on both sides of each level boundary,
    zeros, infinities, denormals and extremes."""
    thresholds = qmath.quantize_thresholds(scale, 0).astype(np.int64)
    keys = np.concatenate([thresholds - 1, thresholds, thresholds + 1])
    keys = keys[(keys > np.iinfo(np.int32).min) & (keys < np.iinfo(np.int32).max)].astype(np.int32)
    near = np.where(keys < 0, keys ^ np.int32(0x7FFFFFFF), keys).astype(np.int32).view(np.float32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45, 1e38, -1e38, 3.4e38], np.float32)
    return np.concatenate([rng.normal(0, 100 * scale, 2000).astype(np.float32),
                           (np.arange(-300, 300, dtype=np.float32) / 2) * np.float32(scale), near, special])


@pytest.mark.parametrize("scale,zero_point", CASES)
def test_thresholds_reproduce_quantize_linear(scale, zero_point):
    rng = np.random.default_rng(7)
    thresholds = qmath.quantize_thresholds(scale, zero_point)
    assert thresholds.shape == (255,) and thresholds.dtype == np.int32
    assert (np.diff(thresholds.astype(np.int64)) >= 0).all()
    x = np.concatenate([_probe_values(scale, rng), qmath._float_of_key(thresholds[thresholds < 2**31 - 1])])
    found = -128 + np.searchsorted(thresholds, qmath.float_order_key(x), side="right")
    np.testing.assert_array_equal(found.astype(np.int8), qmath.quantize(x, scale, zero_point))


def test_float_order_key_orders_like_the_floats():
    x = np.array([-np.inf, -3e38, -1.0, -1e-45, -0.0, 0.0, 1e-45, 1.0, 3e38, np.inf], np.float32)
    keys = qmath.float_order_key(x).astype(np.int64)
    assert (np.diff(keys) > 0).all()


def _qdq_model(scale: float, zero_point: int, count: int) -> onnx.ModelProto:
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, count])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, count])],
                              [numpy_helper.from_array(np.array(scale, np.float32), "s"),
                               numpy_helper.from_array(np.array(zero_point, np.int8), "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("scale,zero_point", CASES[:4])
def test_soft_float_boundary_is_exact_under_sanitizers(tmp_path, scale, zero_point):
    """Generated for a core without an FPU, built for the host with ASan/UBSan: every probe value,
    through QuantizeLinear and DequantizeLinear, equals onnxruntime's result bit for bit; NaN
    gives the zero point, as the FPU kernels do."""
    rng = np.random.default_rng(11)
    x = _probe_values(scale, rng)
    x = np.concatenate([x, np.array([np.nan, -np.nan], np.float32)])
    model = _qdq_model(scale, zero_point, x.size)
    gen = generate(model, tmp_path, name="qdq", with_integration=False, soft_float=True)
    functions = [layer.function for layer in gen.schedule.layers]
    assert functions == ["ek_quantize_f32_s8_search", "ek_dequantize_s8_f32_table"]
    exe = hostbuild.build_driver(tmp_path, gen.prefix, gen.sources, 1, 1, gen.plan.arena_bytes)
    (got,) = hostbuild.run_driver(exe, [x.reshape(1, -1)], [(1, x.size)])
    finite = ~np.isnan(x)
    (want,) = run_onnxruntime(model, [{"x": x.reshape(1, -1)}], "QDQ model")[0].values()
    np.testing.assert_array_equal(got.reshape(-1)[finite].view(np.int32),
                                  want.reshape(-1)[finite].view(np.int32))
    nan_value = qmath.dequantize(np.int8(zero_point), scale, zero_point)
    np.testing.assert_array_equal(got.reshape(-1)[~finite], np.full(2, nan_value, np.float32))


def test_fpu_targets_keep_the_float_kernels(tmp_path):
    gen = generate(_qdq_model(0.05, 3, 16), tmp_path, name="qdq", with_integration=False)
    assert [layer.function for layer in gen.schedule.layers] == ["ek_quantize_f32_s8", "ek_dequantize_s8_f32"]


def test_few_values_keep_the_float_kernels_without_an_fpu(tmp_path):
    """Ten outputs do not pay for a 1 KB table: soft float is used there."""
    gen = generate(_qdq_model(0.05, 3, 10), tmp_path, name="qdq", with_integration=False, soft_float=True)
    assert [layer.function for layer in gen.schedule.layers] == ["ek_quantize_f32_s8", "ek_dequantize_s8_f32"]
