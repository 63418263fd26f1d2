"""QDQ int8 models end to end through the mcu-c back end: matched groups run as int8 kernels, the
rest in float. Every int8 layer on its own agrees with onnxruntime running the same QDQ model to
within one quantization step and exactly on at least 99.9% of the values (conv and fully connected
layers bit for bit with the numpy reference of their integer arithmetic); whole models stay within
the back end's step tolerance (onnxruntime's float round-off spreads through depth)."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest

from edgekit.plugins.mcu import hostbuild
from edgekit.plugins.mcu.generator import generate
from edgekit.plugins.mcu.plugin import McuBackend
from edgekit.verify import compare, quantized_outputs, run_onnxruntime
from tests.mcu import qdq_models
from tests.mcu.helpers import build_shared, host_model

logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization's pre-processing advice

SAMPLES = 40

CASES = {
    "cnn": (lambda: qdq_models.conv_block(), {"x": (1, 3, 12, 12)}, ()),
    "cnn_depthwise": (lambda: qdq_models.conv_block(depthwise=True), {"x": (1, 3, 12, 12)}, ()),
    "mlp": (lambda: qdq_models.mlp(), {"x": (3, 20)}, ()),
    "resblock": (lambda: qdq_models.residual_block(), {"x": (1, 3, 10, 10)}, ()),
    # one weight scale per tensor instead of per channel
    "cnn_per_tensor": (lambda: qdq_models.conv_block(), {"x": (1, 3, 12, 12)}, (), False),
    # mixed precision: conv2 stays float between a DequantizeLinear and a QuantizeLinear
    "cnn_mixed": (lambda: qdq_models.conv_block(), {"x": (1, 3, 12, 12)}, ("conv2",)),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("int8")
    models, gens = {}, []
    for name, (make, shapes, exclude, *per_channel) in CASES.items():
        qdq = qdq_models.quantize(make(), shapes, exclude=exclude, per_channel=all(per_channel))
        gen = generate(qdq, work / name, name=name, with_kernels=False, with_integration=False)
        models[name] = (qdq, gen, shapes)
        models[name + "/dir"] = work / name
        gens.append((work / name, gen))
    lib = build_shared(gens, work)
    return models, lib


def _inputs(shapes, seed):
    rng = np.random.default_rng(seed)
    return [{k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()} for _ in range(SAMPLES)]


@pytest.mark.parametrize("name", list(CASES))
def test_int8_model_matches_onnxruntime_within_one_step(built, name):
    models, lib = built
    qdq, gen, shapes = models[name]
    feeds = _inputs(shapes, 1)
    expected = run_onnxruntime(qdq, feeds, "QDQ model")
    model = host_model(lib, gen)
    outputs = gen.schedule.outputs
    actual = [dict(zip(outputs, model.run([f[k] for k in shapes]))) for f in feeds]
    steps = quantized_outputs(qdq)
    assert set(steps) == set(outputs)
    result = compare(expected, actual, None, steps, McuBackend.quantized_tolerance_steps)
    assert result.within(), f"{name}: max error {result.max_abs} vs steps {steps}"
    ratio = min(result.exact_ratio.values())
    print(f"{name}: exact {ratio:.4f} of {SAMPLES} samples")
    assert ratio >= 0.9


def test_every_compute_node_runs_int8_unless_excluded(built):
    models, _ = built
    for name in CASES:
        qdq, gen, _ = models[name]
        compute = {n.name for n in qdq.graph.node
                   if n.op_type not in ("QuantizeLinear", "DequantizeLinear", "Relu")}
        expected_float = set(CASES[name][2])
        assert set(gen.schedule.int8_nodes) == compute - expected_float, name
        float_layers = {l.node for l in gen.schedule.layers if l.family in ("ek_conv", "ek_gemm")}
        assert float_layers == expected_float, name


def test_int8_arena_is_a_quarter_of_float(built, tmp_path):
    models, _ = built
    qdq, gen, _ = models["cnn"]
    float_gen = generate(qdq_models.conv_block(), tmp_path / "f", name="f", with_integration=False)
    # activations are 1 byte instead of 4 (the float input stays float at the boundary)
    assert gen.plan.arena_bytes <= 0.35 * float_gen.plan.arena_bytes


def test_int8_generated_code_keeps_integer_weights_and_tensors(built):
    models, _ = built
    _, gen, _ = models["cnn"]
    out = models["cnn/dir"]
    consts = list(gen.schedule.consts.values())
    assert any(c.array.dtype == np.int8 for c in consts)
    assert not any(c.array.dtype == np.float32 and c.array.size > 64 for c in consts), \
        "no float weight array may remain in an all-int8 model"
    source = (out / "cnn.c").read_text()
    weights = (out / "cnn_weights.c").read_text()
    assert "#define EK_T8(offset) ((int8_t *)" in source and "EK_T8(OFFSET_" in source
    assert "const int8_t cnn_" in weights


def test_residual_add_runs_as_the_conv_epilogue_in_place(built):
    models, _ = built
    _, gen, _ = models["resblock"]
    (fused,) = [l for l in gen.schedule.layers if l.function == "ek_qconv_add_s8"]
    assert fused.node == "conv2" and fused.op.endswith("+Add")
    assert not any(l.function == "ek_qadd_s8" for l in gen.schedule.layers)
    residual, out = fused.inputs[1], fused.outputs[0]
    offsets = gen.plan.tensor_offsets
    assert offsets[gen.schedule.root(residual)] == offsets[gen.schedule.root(out)]  # in place


@pytest.mark.parametrize("name", ["cnn_depthwise", "mlp", "resblock"])
def test_int8_library_is_clean_under_sanitizers(built, name, tmp_path):
    """The generated library with its kernels (no shared batch) under ASan/UBSan, arena full of garbage."""
    models, _ = built
    qdq, _, shapes = models[name]
    gen = generate(qdq, tmp_path, name=name, with_integration=False)
    ins = [gen.schedule.tensors[n].shape for n in gen.schedule.inputs]
    outs = [gen.schedule.tensors[n].shape for n in gen.schedule.outputs]
    exe = hostbuild.build_driver(tmp_path, gen.prefix, gen.sources, len(ins), len(outs), gen.plan.arena_bytes)
    feeds = _inputs(shapes, 2)[:3]
    expected = run_onnxruntime(qdq, feeds, "QDQ model")
    actual = [dict(zip(gen.schedule.outputs, hostbuild.run_driver(exe, [f[k] for k in shapes], outs)))
              for f in feeds]
    assert compare(expected, actual, None, quantized_outputs(qdq)).within()


def test_int8_io_takes_and_returns_int8_with_named_scales(built, tmp_path):
    models, lib = built
    qdq, _, shapes = models["cnn"]
    gen = generate(qdq, tmp_path, name="cnn_io", int8_io=True)
    sched = gen.schedule
    (x,), (y,) = sched.inputs, sched.outputs
    assert sched.tensors[x].dtype == "int8" and sched.tensors[y].dtype == "int8"
    assert sched.io_names == {x: "x", y: "y"}
    header = (tmp_path / "cnn_io.h").read_text()
    scale, zero_point = sched.io_quant[x]
    assert f"#define CNN_IO_INPUT_0_ZERO_POINT {zero_point}" in header
    assert "int cnn_io_run(const int8_t *input, int8_t *output, uint8_t *arena);" in header
    # no boundary kernels remain: the first layer reads the int8 input directly
    assert not any(l.op in ("QuantizeLinear", "DequantizeLinear") for l in sched.layers)


def _single(nodes, shape, inits) -> onnx.ModelProto:
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def _w(rng, name, shape, scale):
    from onnx import numpy_helper

    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def single_layer_cases():
    from onnx import helper

    rng = np.random.default_rng(3)
    conv = lambda **kw: helper.make_node("Conv", ["x", "w", "b"], ["y"], **kw)  # noqa: E731
    return {
        "conv3x3": ([conv(pads=[1, 1, 1, 1])], (1, 4, 6, 6), [_w(rng, "w", (6, 4, 3, 3), 0.3), _w(rng, "b", (6,), 0.1)]),
        "conv64": ([conv(pads=[1, 1, 1, 1])], (1, 64, 8, 8), [_w(rng, "w", (64, 64, 3, 3), 0.05), _w(rng, "b", (64,), 0.1)]),
        "conv_s2_asym": ([conv(pads=[0, 0, 1, 1], strides=[2, 2])], (2, 5, 9, 9),
                         [_w(rng, "w", (7, 5, 3, 3), 0.2), _w(rng, "b", (7,), 0.1)]),
        "conv_dilated_grouped": ([conv(pads=[2, 1, 2, 1], dilations=[2, 1], group=2)], (1, 6, 7, 5),
                                 [_w(rng, "w", (4, 3, 3, 2), 0.3), _w(rng, "b", (4,), 0.1)]),
        "conv1x1": ([conv()], (1, 16, 5, 5), [_w(rng, "w", (9, 16, 1, 1), 0.3), _w(rng, "b", (9,), 0.1)]),
        "conv1d": ([conv(pads=[1, 1])], (1, 3, 11), [_w(rng, "w", (5, 3, 3), 0.3), _w(rng, "b", (5,), 0.1)]),
        "depthwise_m2": ([conv(pads=[1, 1, 1, 1], group=4)], (1, 4, 6, 6),
                         [_w(rng, "w", (8, 1, 3, 3), 0.3), _w(rng, "b", (8,), 0.1)]),
        "gemm": ([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], (3, 21),
                 [_w(rng, "w", (7, 21), 0.3), _w(rng, "b", (7,), 0.1)]),
        "matmul": ([helper.make_node("MatMul", ["x", "w"], ["y"])], (2, 3, 18), [_w(rng, "w", (18, 5), 0.3)]),
        "add_broadcast": ([helper.make_node("Add", ["x", "w"], ["y"])], (1, 4, 3, 3), [_w(rng, "w", (1, 4, 1, 1), 1.0)]),
        "mul": ([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Mul", ["x", "r"], ["y"])], (2, 9), []),
        "softmax": ([helper.make_node("Softmax", ["x"], ["y"], axis=-1)], (3, 20), []),
        "sigmoid_lut": ([helper.make_node("Sigmoid", ["x"], ["y"])], (3, 20), []),
        "gap": ([helper.make_node("GlobalAveragePool", ["x"], ["y"])], (1, 4, 6, 6), []),
    }


@pytest.fixture(scope="module")
def single_layers(tmp_path_factory):
    work = tmp_path_factory.mktemp("int8_single")
    built, gens = {}, []
    for name, (nodes, shape, inits) in single_layer_cases().items():
        qdq = qdq_models.quantize(_single(nodes, shape, inits), {"x": shape})
        gen = generate(qdq, work / name, name=name, with_kernels=False, with_integration=False)
        built[name] = (qdq, gen, shape)
        gens.append((work / name, gen))
    return built, build_shared(gens, work)


@pytest.mark.parametrize("name", list(single_layer_cases()))
def test_single_int8_layer_matches_onnxruntime(single_layers, name):
    built, lib = single_layers
    qdq, gen, shape = built[name]
    assert gen.schedule.int8_nodes, f"{name}: nothing ran in int8"
    rng = np.random.default_rng(5)
    feeds = [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(SAMPLES)]
    expected = run_onnxruntime(qdq, feeds, "QDQ model")
    model = host_model(lib, gen)
    actual = [{"y": model.run([f["x"]])[0]} for f in feeds]
    result = compare(expected, actual, None, quantized_outputs(qdq), 1.0)
    assert result.within(), f"{name}: {result.max_abs} > one step"
    assert result.exact_ratio["y"] >= 0.999, result.exact_ratio


@pytest.mark.parametrize("name", ["conv3x3", "conv_s2_asym", "conv_dilated_grouped", "depthwise_m2", "conv1d", "gemm"])
def test_conv_and_fc_are_bit_exact_with_the_integer_reference(single_layers, name, tmp_path):
    """With int8 input and output (io=int8) the library is compared with qconv_layout's numpy
    reference of the same integer arithmetic: every value identical."""
    from edgekit.plugins.mcu import qconv_layout, qmath
    from edgekit.plugins.mcu.graph import GraphView, prepare
    from edgekit.plugins.mcu.qlayer import QLayer

    built, _ = single_layers
    qdq, _, shape = built[name]
    gen = generate(qdq, tmp_path, name=name, with_kernels=False, with_integration=False, int8_io=True)
    (layer,) = [l for l in gen.schedule.layers if l.function in ("ek_qconv_s8", "ek_qfc_s8")]
    assert [l.function for l in gen.schedule.layers] == [layer.function]  # int8 in, int8 out
    lib = build_shared([(tmp_path, gen)], tmp_path / "b")
    x_q = gen.schedule.io_quant[gen.schedule.inputs[0]]
    x = qmath.quantize(np.random.default_rng(9).standard_normal(shape) * 2, *x_q)
    got = host_model(lib, gen).run([x])[0]
    consts = {c.key.rsplit("__", 1)[-1]: c.array for c in gen.schedule.consts.values()}
    as_built = QLayer(layer.function, layer.family, layer.params_type, layer.params,
                      consts=[(k, consts[k]) for k in ("multiplier", "shift")])
    view = GraphView.of(prepare(qdq))
    (node,) = [n for n in view.model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    weights = view.qconst(node.input[1]).values
    bias = view.qconst(node.input[2]).values if len(node.input) > 2 else None
    if layer.function == "ek_qconv_s8":
        geometry = {**layer.params, "pad_bottom": 0, "pad_right": 0}
        weights = weights.reshape(weights.shape[:2] + (1,) * (4 - weights.ndim) + weights.shape[2:])
        want = qconv_layout.reference_conv(x, weights, bias, geometry, as_built)
    else:
        weights = weights.T if node.op_type == "MatMul" or not any(
            a.name == "transB" and a.i for a in node.attribute) else weights
        want = qconv_layout.reference_fc(x, weights, bias, as_built)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got.reshape(want.shape), want)


def _random_conv_case(rng):
    """A random conv geometry (groups, depthwise multiplier, stride, dilation, asymmetric pads,
    1-D or 2-D, batch) as a float model."""
    from onnx import helper

    one_d = rng.random() < 0.2
    groups = int(rng.choice([1, 1, 2, 3]))
    depthwise = rng.random() < 0.25
    icg = 1 if depthwise else int(rng.integers(1, 6))
    in_c = groups * icg if not depthwise else int(rng.integers(2, 6))
    groups = in_c if depthwise else groups
    out_c = groups * int(rng.integers(1, 4))
    k = [int(rng.integers(1, 4))] if one_d else [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
    stride = [int(rng.integers(1, 3)) for _ in k]
    dil = [int(rng.integers(1, 3)) for _ in k]
    size = [int(rng.integers(6, 11)) for _ in k]
    pads = [int(rng.integers(0, kk)) for kk in k] + [int(rng.integers(0, kk)) for kk in k]
    shape = (int(rng.integers(1, 3)), in_c, *size)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=groups, strides=stride, dilations=dil,
                            pads=pads)
    inits = [_w(rng, "w", (out_c, in_c // groups, *k), 0.3), _w(rng, "b", (out_c,), 0.1)]
    return [node], shape, inits


def test_random_conv_geometries_match_onnxruntime(tmp_path):
    """A seeded sweep of random conv shapes (a property test in batch form: one compile for all)."""
    rng = np.random.default_rng(2026)
    cases, gens = [], []
    for i in range(24):
        nodes, shape, inits = _random_conv_case(rng)
        qdq = qdq_models.quantize(_single(nodes, shape, inits), {"x": shape}, samples=4, seed=i)
        gen = generate(qdq, tmp_path / f"c{i}", name=f"c{i}", with_kernels=False, with_integration=False)
        assert gen.schedule.int8_nodes, shape
        cases.append((qdq, gen, shape))
        gens.append((tmp_path / f"c{i}", gen))
    lib = build_shared(gens, tmp_path / "lib")
    for qdq, gen, shape in cases:
        feeds = [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(4)]
        expected = run_onnxruntime(qdq, feeds, "QDQ model")
        model = host_model(lib, gen)
        actual = [{"y": model.run([f["x"]])[0]} for f in feeds]
        result = compare(expected, actual, None, quantized_outputs(qdq), 1.0)
        conv = gen.schedule.layers[1]
        assert result.within() and result.exact_ratio["y"] >= 0.99, (shape, conv.summary, result)


def _random_layer_case(rng, kind):
    """A random single-op float model of the given kind: fully connected, broadcasting Add/Mul,
    max/average pooling or Softmax."""
    from onnx import helper

    if kind == "gemm":
        m, k, n = (int(v) for v in rng.integers(1, 40, size=3))
        node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=int(rng.integers(0, 2)))
        w_shape = (n, k) if node.attribute[0].i else (k, n)
        return [node], (m, k), [_w(rng, "w", w_shape, 0.3), _w(rng, "b", (n,), 0.1)]
    if kind in ("add", "mul"):
        rank = int(rng.integers(2, 5))
        shape = tuple(int(v) for v in rng.integers(1, 6, size=rank))
        other = tuple(d if rng.random() < 0.5 else 1 for d in shape)[int(rng.integers(0, rank)):]
        return [helper.make_node(kind.capitalize(), ["x", "c"], ["y"])], shape, [_w(rng, "c", other, 1.0)]
    if kind == "pool":
        # after a 1x1 conv, so that onnxruntime quantizes the pooling (a lone one stays float)
        op = "MaxPool" if rng.random() < 0.5 else "AveragePool"
        k = [int(v) for v in rng.integers(1, 4, size=2)]
        strides = [int(v) for v in rng.integers(1, 3, size=2)]
        pads = [int(rng.integers(0, kk)) for kk in k] * 2
        extra = {"count_include_pad": int(rng.integers(0, 2))} if op == "AveragePool" else {}
        c = int(rng.integers(1, 5))
        nodes = [helper.make_node("Conv", ["x", "w1"], ["a"]),
                 helper.make_node(op, ["a"], ["y"], kernel_shape=k, strides=strides, pads=pads, **extra)]
        return nodes, (1, c, int(rng.integers(5, 10)), int(rng.integers(5, 10))), [_w(rng, "w1", (c, c, 1, 1), 0.5)]
    shape = tuple(int(v) for v in rng.integers(1, 7, size=int(rng.integers(2, 4))))
    return [helper.make_node("Softmax", ["x"], ["y"], axis=int(rng.integers(-len(shape), len(shape))))], shape, []


@pytest.mark.parametrize("kind", ["gemm", "add", "mul", "pool", "softmax"])
def test_random_int8_layers_match_onnxruntime(tmp_path, kind):
    """Seeded sweeps of random shapes per int8 kernel (a property test in batch form: one compile)."""
    rng = np.random.default_rng({"gemm": 1, "add": 2, "mul": 3, "pool": 4, "softmax": 5}[kind])
    cases, gens = [], []
    for i in range(12):
        nodes, shape, inits = _random_layer_case(rng, kind)
        qdq = qdq_models.quantize(_single(nodes, shape, inits), {"x": shape}, samples=4, seed=i)
        gen = generate(qdq, tmp_path / f"c{i}", name=f"c{i}", with_kernels=False, with_integration=False)
        cases.append((qdq, gen, shape))
        gens.append((tmp_path / f"c{i}", gen))
    lib = build_shared(gens, tmp_path / "lib")
    for qdq, gen, shape in cases:
        ops = {n.op_type for n in qdq.graph.node} - {"QuantizeLinear", "DequantizeLinear"}
        assert {l.op.split("+")[0] for l in gen.schedule.layers} >= {"Q" + op for op in ops}, (kind, shape)
        feeds = [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(4)]
        expected = run_onnxruntime(qdq, feeds, "QDQ model")
        model = host_model(lib, gen)
        actual = [{"y": model.run([f["x"]])[0]} for f in feeds]
        steps = quantized_outputs(qdq)
        result = compare(expected, actual, McuBackend.tolerance, steps, 1.0)
        assert result.within(), (kind, shape, [l.summary for l in gen.schedule.layers], result)
        if "AveragePool" in ops:
            # A window mean that lands exactly between two steps is a tie: the kernel rounds it to
            # even, as QuantizeLinear specifies; onnxruntime's float mean carries round-off that
            # pushes it either way. Ties are common for small windows (a quarter of 2x2 sums).
            assert result.exact_ratio["y"] >= 0.85, (kind, shape, result.exact_ratio)
        elif steps:
            assert result.exact_ratio["y"] >= 0.99, (kind, shape, result.exact_ratio)
