"""The float64 reference of a model (onnx's reference evaluator on widened constants and inputs),
which judges quantized runs: onnxruntime's float32 evaluation of Q/DQ models carries round-off."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekit.verify import run_float64, run_onnxruntime


def _qdq_matmul(opset: int = 13) -> onnx.ModelProto:
    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, (64, 16)).astype(np.int8)
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "sw"], ["wd"]),
             helper.make_node("MatMul", ["xd", "wd"], ["m"]),
             helper.make_node("QuantizeLinear", ["m", "sy", "zy"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"])]
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "sx"),
             numpy_helper.from_array(np.array(3, np.int8), "zx"),
             numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(0.01, np.float32), "sw"),
             numpy_helper.from_array(np.array(0.2, np.float32), "sy"),
             numpy_helper.from_array(np.array(-2, np.int8), "zy")]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _exact(model, x):
    """What the model computes in integers: one rounding per QuantizeLinear, half to even."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    xq = np.clip(np.rint(x / inits["sx"]) + inits["zx"], -128, 127)
    acc = (xq - inits["zx"]).astype(np.int64) @ inits["w"].astype(np.int64)
    real = acc * (np.float64(inits["sx"]) * np.float64(inits["sw"]))
    yq = np.clip(np.rint(real / np.float64(inits["sy"])) + inits["zy"], -128, 127)
    return ((yq - inits["zy"]) * np.float64(inits["sy"])).astype(np.float32)


def test_float64_reference_is_the_exact_qdq_arithmetic():
    model = _qdq_matmul()
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.normal(0, 3, (4, 64)).astype(np.float32)} for _ in range(20)]
    wide = run_float64(model, feeds)
    assert wide is not None and wide[0]["y"].dtype == np.float64
    ort = run_onnxruntime(model, feeds, "model")
    for f, w, o in zip(feeds, wide, ort):
        np.testing.assert_array_equal(w["y"].astype(np.float32), _exact(model, f["x"]))
        assert np.abs(o["y"] - w["y"]).max() <= 0.2 + 1e-6  # onnxruntime: within a step of it


def test_float64_reference_is_none_for_what_the_evaluator_cannot_run():
    node = helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    assert run_float64(model, [{"x": np.zeros(2, np.float32)}]) is None


def test_an_infinity_matches_only_the_same_infinity():
    # inf - inf and inf - (atol + rtol * inf) are NaN: compared as numbers they would pass.
    from edgekit.passes import Tolerance
    from edgekit.verify import compare

    tolerance = Tolerance(atol=1e-4, rtol=1e-4)

    def judged(ref: float, act: float):
        return compare([{"y": np.array([ref, 2.0], np.float32)}], [{"y": np.array([act, 2.0], np.float32)}],
                       tolerance)

    for ref, act in ((np.inf, 1.0), (np.inf, -np.inf), (5.0, -np.inf)):
        assert "infinity" in judged(ref, act).mismatch
    same = judged(-np.inf, -np.inf)
    assert not same.mismatch and same.worst_excess <= 0
