"""Weight-only quantization at int8 (``quantize_weights(bits=8)``, next to the int4 tests in
test_quantize.py): the blocked symmetric form and its scales, the error bound the scales give,
``only`` and two widths in one model; and the mcu-c kernel ``ek_gemm_w8_f32`` on the host
(ASan/UBSan) and on the emulated Cortex-M4 against onnxruntime on the quantized model, with the
weights one byte each."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.building import BuildRequest, build
from edgekit.plugins.mcu import hostbuild
from edgekit.plugins.mcu.generator import generate
from edgekit.plugins.mcu.graph import dequantize_linear
from edgekit.plugins.mcu.plugin import McuBackend
from edgekit.plugins.quantize.int4 import quantize_weights
from edgekit.registry import default_registry
from edgekit.verify import compare, random_inputs, run_onnxruntime
from tests.mcu import qdq_models

K, N, M, GROUP = 37, 5, 4, 8  # odd K (a partial last group, an odd tail), odd N (a lone last output)


def matmul_model(k: int = K, n: int = N, m: int = M, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((k, n)) * 0.3).astype(np.float32)
    w[:GROUP, 0] = 0.0  # an all-zero group: scale 1, integers 0
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
                              [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def _inits(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer}


def _weight_qconst(model: onnx.ModelProto, dq: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray, dict]:
    inits = _inits(model)
    attrs = {a.name: a.i for a in dq.attribute}
    return numpy_helper.to_array(inits[dq.input[0]]), numpy_helper.to_array(inits[dq.input[1]]), attrs


def test_int8_form_and_scales():
    """Blocked symmetric int8 along K: scale max|w|/127 per group and column, integers in [-127, 127]
    reaching +-127 in every non-zero group, each weight within half a step of its float."""
    model = matmul_model()
    before = model.SerializeToString()
    quantized, nodes = quantize_weights(model, bits=8, group=GROUP)
    assert nodes == ["mm"] and model.SerializeToString() == before  # the input model is left as it was
    [dq] = [n for n in quantized.graph.node if n.op_type == "DequantizeLinear"]
    q, scale, attrs = _weight_qconst(quantized, dq)
    assert attrs == {"axis": 0, "block_size": GROUP}
    assert _inits(quantized)[dq.input[0]].data_type == TensorProto.INT8 and dq.input[0] == "w__int8"
    assert "w" not in _inits(quantized)
    groups = -(-K // GROUP)
    assert q.shape == (K, N) and scale.shape == (groups, N) and scale.dtype == np.float32
    w = numpy_helper.to_array(_inits(model)["w"])
    padded = np.zeros((groups * GROUP, N), np.float32)
    padded[:K] = w
    group_max = np.abs(padded.reshape(groups, GROUP, N)).max(axis=1)
    np.testing.assert_allclose(scale, np.where(group_max > 0, group_max / 127, 1.0), rtol=1e-6)
    assert q.min() >= -127 and q.max() <= 127
    q_groups = np.zeros((groups * GROUP, N), np.int32)
    q_groups[:K] = q
    np.testing.assert_array_equal(np.abs(q_groups.reshape(groups, GROUP, N)).max(axis=1), np.where(group_max > 0, 127, 0))
    step = np.repeat(scale, GROUP, axis=0)[:K]
    assert np.all(np.abs(dequantize_linear(q, scale, None, 0, GROUP) - w) <= step / 2 * (1 + 1e-5))


def test_int8_numerics_in_onnxruntime_are_bounded_by_the_scales():
    """onnxruntime on the int8 model computes x . dequantize(W); its distance from the float model is
    at most sum_k |x_k| * s(k, n) / 2 (each weight off by half a step at most), and int8 is closer
    to the float model than int4."""
    model = matmul_model()
    q8, _ = quantize_weights(model, bits=8, group=GROUP)
    q4, _ = quantize_weights(model, bits=4, group=GROUP)
    inputs = random_inputs(model, 6, seed=2)
    reference = run_onnxruntime(model, inputs)
    got8, got4 = run_onnxruntime(q8, inputs), run_onnxruntime(q4, inputs)
    [dq] = [n for n in q8.graph.node if n.op_type == "DequantizeLinear"]
    q, scale, _ = _weight_qconst(q8, dq)
    w_dq = dequantize_linear(q, scale, None, 0, GROUP).astype(np.float64)
    step = np.repeat(scale, GROUP, axis=0)[:K].astype(np.float64)  # [K, N]
    err8 = err4 = 0.0
    for feeds, want, y8, y4 in zip(inputs, reference, got8, got4):
        x = feeds["x"].astype(np.float64)
        np.testing.assert_allclose(y8["y"], x @ w_dq, rtol=1e-5, atol=1e-5)  # the dequantized model
        bound = np.abs(x) @ (step / 2)
        assert np.all(np.abs(y8["y"] - want["y"]) <= bound + 1e-5)
        err8 = max(err8, float(np.abs(y8["y"] - want["y"]).max()))
        err4 = max(err4, float(np.abs(y4["y"] - want["y"]).max()))
    assert 0 < err8 < err4 / 4


def test_only_restricts_the_rewrite_and_two_widths_share_a_model():
    """``only`` names the nodes (an unnamed node by its output); int8 then int4 in two calls on one
    model, even on one weight two nodes read, leave distinct initializers and a valid model."""
    model = qdq_models.mlp()
    m8, nodes8 = quantize_weights(model, bits=8, group=GROUP, only={"mm"})
    assert nodes8 == ["mm"]
    assert [n.op_type for n in m8.graph.node].count("Gemm") == 1 and "w2" in _inits(m8)
    mixed, nodes4 = quantize_weights(m8, bits=4, group=GROUP, only={"fc2"})
    assert nodes4 == ["fc2"]
    types = {t.name: t.data_type for t in mixed.graph.initializer}
    assert types["w1__int8"] == TensorProto.INT8 and types["w2__int4"] == TensorProto.INT4
    assert len(types) == len(mixed.graph.initializer)
    onnx.checker.check_model(mixed, full_check=True)
    inputs = random_inputs(model, 3, seed=1)
    for want, got in zip(run_onnxruntime(model, inputs), run_onnxruntime(mixed, inputs)):
        np.testing.assert_allclose(got["y"], want["y"], atol=0.05)

    # one weight, two readers: one unnamed (matched by its output), each at its own width
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["a"], name="first"), helper.make_node("MatMul", ["a", "w"], ["y"])],
        "shared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 16])],
        [numpy_helper.from_array((rng.standard_normal((16, 16)) * 0.3).astype(np.float32), "w")])
    shared = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    step1, done1 = quantize_weights(shared, bits=8, group=GROUP, only={"y"})
    step2, done2 = quantize_weights(step1, bits=4, group=GROUP, only={"first"})
    assert (done1, done2) == (["y"], ["first"])
    assert sorted(t.name for t in step2.graph.initializer) == ["w__int4", "w__int4_scale", "w__int8", "w__int8_scale"]
    onnx.checker.check_model(step2, full_check=True)
    assert quantize_weights(shared, bits=8, only=set())[1] == []
    with pytest.raises(Exception, match="expected 4 or 8"):
        quantize_weights(shared, bits=2)


def _per_column_int8_model() -> onnx.ModelProto:
    """MatMul whose weights are DequantizeLinear(INT8, per column, axis 1): the kernel's one-group form."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((K, N)) * 0.3
    scale = (np.abs(w).max(axis=0) / 127).astype(np.float32)
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["wq", "ws"], ["w"], axis=1),
         helper.make_node("MatMul", ["x", "w"], ["mm_out"], name="mm"),
         helper.make_node("Add", ["mm_out", "b"], ["z"], name="bias"), helper.make_node("Relu", ["z"], ["y"])],
        "per_column", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [M, K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [M, N])],
        [numpy_helper.from_array(q, "wq"), numpy_helper.from_array(scale, "ws"),
         numpy_helper.from_array(rng.standard_normal(N).astype(np.float32) * 0.1, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


@pytest.mark.parametrize("form", ["blocked", "per_column", "mlp"])
def test_w8_kernel_on_host_is_clean_and_matches_onnxruntime(tmp_path, form):
    """Generated C with ek_gemm_w8_f32 (strict warnings, ASan/UBSan) computes what onnxruntime
    computes on the int8 model, the weights stored as K*N int8 values."""
    model = {"blocked": lambda: quantize_weights(matmul_model(), bits=8, group=GROUP)[0],
             "per_column": _per_column_int8_model,
             "mlp": lambda: quantize_weights(qdq_models.mlp(), bits=8, group=GROUP)[0]}[form]()
    gen = generate(model, tmp_path, name="w8", with_integration=False)
    layers = [layer for layer in gen.schedule.layers if layer.family == "ek_gemm_w8"]
    assert layers and not any(layer.family == "ek_gemm" for layer in gen.schedule.layers)
    weights = [c for c in gen.schedule.consts.values() if c.array.dtype == np.int8]
    matrices = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert len(weights) == len(layers) == len(matrices)
    assert sum(c.array.size for c in weights) == sum(
        int(np.prod(_inits(model)[n.input[0]].dims)) for n in matrices)
    assert "const int8_t w8_" in (tmp_path / "w8_weights.c").read_text()
    [x_shape] = [tuple(d.dim_value for d in i.type.tensor_type.shape.dim) for i in model.graph.input]
    [y_shape] = [tuple(d.dim_value for d in o.type.tensor_type.shape.dim) for o in model.graph.output]
    exe = hostbuild.build_driver(tmp_path, gen.prefix, gen.sources, 1, 1, gen.plan.arena_bytes)
    feeds = random_inputs(model, 3, seed=4)
    expected = run_onnxruntime(model, feeds, "int8 weight-only model")
    actual = [{"y": hostbuild.run_driver(exe, [f["x"]], [y_shape])[0]} for f in feeds]
    assert all(f["x"].shape == x_shape for f in feeds)
    assert compare(expected, actual, McuBackend.tolerance).within()


def test_w8_on_cortex_m4_matches_onnxruntime_with_one_byte_per_weight(tmp_path):
    """The int8 weight-only MLP on the emulated M4: onnxruntime's outputs on the same int8 model within
    float tolerance; the weights take one byte each (+ float scales and biases), about a quarter of
    the float build's."""
    model, _ = quantize_weights(qdq_models.mlp(), bits=8, group=GROUP)
    path = tmp_path / "mlp_w8.onnx"
    onnx.save(model, path)
    report = build(BuildRequest(model=str(path), target="cortex-m4", output=tmp_path / "out", run=True,
                                verify_samples=3, passes=[]), default_registry())
    kernels = [layer["kernel"] for layer in report["backend"]["layers"]]
    assert kernels.count("ek_gemm_w8_f32") == 2 and "ek_matmul_f32" not in kernels and "ek_gemm_f32" not in kernels
    assert report["target"]["runner"] == "qemu" and report["run"]["measurements"]["instructions"] > 0
    assert report["run"]["max_abs_error"] < 1e-4
    weights = 20 * 24 + 24 * 6
    scales = -(-20 // GROUP) * 24 + -(-24 // GROUP) * 6
    floats = 24 + 6 + 6  # biases and the output scale
    assert report["backend"]["weights_bytes"] == weights + 4 * (scales + floats)
    float_path = tmp_path / "mlp.onnx"
    onnx.save(qdq_models.mlp(), float_path)
    float_report = build(BuildRequest(model=str(float_path), target="cortex-m4", output=tmp_path / "f",
                                      passes=[]), default_registry())
    assert float_report["backend"]["weights_bytes"] == 4 * (weights + floats)
