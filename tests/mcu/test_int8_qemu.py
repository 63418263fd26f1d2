"""The MLPerf Tiny models quantized to int8 (QDQ), built by the mcu-c back end and run on the emulated
boards, every compute layer in int8. The build itself fails beyond the back end's step tolerance;
the exact-match ratio of the outputs is bounded here (per layer the kernels are exact: see
test_int8_models; onnxruntime's float round-off spreads through ResNet-8's depth to ~5% of the
softmax outputs, measured)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import version_converter

from edgekit.building import BuildRequest, build
from edgekit.registry import default_registry
from tests.mcu import qdq_models

logging.getLogger().setLevel(logging.ERROR)

MODELS = Path(__file__).resolve().parents[2] / "examples" / "models" / "mlperf-tiny"
SHAPES = {"ic_resnet8": (1, 3, 32, 32), "ad_autoencoder": (1, 640)}


def quantized(name: str, path: Path) -> Path:
    model = version_converter.convert_version(onnx.load(MODELS / f"{name}.onnx"), 13)
    qdq = qdq_models.quantize(model, {model.graph.input[0].name: SHAPES[name]}, samples=16)
    onnx.save(qdq, path)
    return path


@pytest.fixture(scope="module")
def qdq_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("qdq")
    return {name: quantized(name, root / f"{name}_int8.onnx") for name in SHAPES}


@pytest.mark.parametrize("name,target,io", [("ic_resnet8", "cortex-m4", "float"),
                                            ("ad_autoencoder", "cortex-m4", "int8"),
                                            ("ad_autoencoder", "cortex-m0plus", "float")])
def test_int8_model_on_emulated_board(qdq_files, tmp_path, name, target, io):
    report = build(BuildRequest(model=str(qdq_files[name]), target=target, output=tmp_path / "out",
                                run=True, verify_samples=4, options={"io": io}), default_registry())
    run, backend = report["run"], report["backend"]
    assert run["exact_ratio"] and min(run["exact_ratio"].values()) >= 0.9, run["exact_ratio"]
    # against the model's exact (float64) arithmetic every output value is identical: what
    # onnxruntime's float32 evaluation leaves is its own round-off
    assert run["judged_against"] == "float64"
    assert run["exact_ratio_float64"] == {k: 1.0 for k in run["exact_ratio"]}, run["exact_ratio_float64"]
    compute = [l for l in backend["layers"] if l["macs"]]
    assert compute and all(l["dtype"] == "int8" for l in compute), [l["op"] for l in compute]
    assert all(layer["kernel"].endswith("_s8") or layer["kernel"].startswith("ek_q")
               or layer["kernel"].startswith("ek_quantize") or layer["kernel"].startswith("ek_dequantize")
               for layer in backend["layers"]), [l["kernel"] for l in backend["layers"]]
    assert [t["dtype"] for t in backend["inputs"]] == (["int8"] if io == "int8" else ["float32"])
    assert run["measurements"]["instructions"] > 0


BIT_EXACT_CASES = ["conv3x3", "conv_s2_asym", "conv_dilated_grouped", "conv1x1", "conv1d", "depthwise_m2",
                   "gemm", "matmul"]


@pytest.mark.parametrize("target,arithmetic", [("cortex-m4", "onnx"), ("cortex-m0plus", "onnx"),
                                               ("cortex-m0plus", "tflite")])
def test_conv_and_fc_kernels_are_bit_exact_on_the_board(tmp_path, target, arithmetic):
    """The DSP (SMLAD) path on the M4 and the portable path on the M0+ against the numpy reference
    of the integer arithmetic: int8 in (io=int8), int8 out, every value identical. ``tflite``: TFLite
    Micro's double rounding (on the M4 it is checked against TFLite Micro itself, tests/tflite)."""
    import edgekit
    from edgekit.plugins.harness.qemu import QemuRunner
    from edgekit.plugins.mcu import qconv_layout, qmath
    from edgekit.plugins.mcu.graph import GraphView, prepare
    from edgekit.plugins.mcu.qlayer import QLayer
    from tests.mcu.test_int8_models import _single, single_layer_cases

    cases = single_layer_cases()
    profile = Path(__file__).resolve().parents[2] / "targets" / f"{target}.toml"
    for name in BIT_EXACT_CASES:
        nodes, shape, inits = cases[name]
        qdq = qdq_models.quantize(_single(nodes, shape, inits), {"x": shape})
        path = tmp_path / f"{name}.onnx"
        onnx.save(qdq, path)
        out = tmp_path / name
        report = build(BuildRequest(model=str(path), target=target, output=out,
                                    options={"io": "int8", "int8_arithmetic": arithmetic}), default_registry())
        (x_spec,), (y_spec,) = report["backend"]["inputs"], report["backend"]["outputs"]
        x_q = (x_spec["quantization"]["scale"], x_spec["quantization"]["zero_point"])
        y_q = (y_spec["quantization"]["scale"], y_spec["quantization"]["zero_point"])
        rng = np.random.default_rng(11)
        xs = [qmath.quantize(rng.standard_normal(shape) * 2, *x_q) for _ in range(2)]
        context = edgekit.BuildContext(target=edgekit.Target.from_toml(profile), registry=None, options={})
        results = QemuRunner().run(out, [{"x": x} for x in xs], context)
        view = GraphView.of(prepare(qdq))
        (node,) = [n for n in view.model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
        (layer,) = [l for l in report["backend"]["layers"] if l["macs"]]
        weights = view.qconst(node.input[1]).values
        bias = view.qconst(node.input[2]).values if len(node.input) > 2 else None
        from edgekit.plugins.mcu.generator import lower_model

        sched = lower_model(qdq, target, int8_io=True, int8_arithmetic=arithmetic)
        assert sched.int8_arithmetic == arithmetic
        (lowered,) = [l for l in sched.layers if l.macs]
        consts = {c.key.rsplit("__", 1)[-1]: c.array for c in sched.consts.values()}
        as_built = QLayer(lowered.function, lowered.family, lowered.params_type, lowered.params,
                          consts=[(k, consts[k]) for k in ("multiplier", "shift")])
        for x, result in zip(xs, results):
            got = qmath.quantize(result.outputs[y_spec["name"]], *y_q)  # exact: y = scale * (q - zp)
            if lowered.function == "ek_qconv_s8":
                w4 = weights.reshape(weights.shape[:2] + (1,) * (4 - weights.ndim) + weights.shape[2:])
                want = qconv_layout.reference_conv(x, w4, bias, {**lowered.params, "pad_bottom": 0,
                                                                 "pad_right": 0}, as_built)
            else:
                w2 = weights.T if node.op_type == "MatMul" or not any(
                    a.name == "transB" and a.i for a in node.attribute) else weights
                want = qconv_layout.reference_fc(x, w2, bias, as_built)
            np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=f"{name} on {target}")
        assert layer["dtype"] == "int8"


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m0plus"])
def test_quantize_boundary_rounds_like_onnxruntime_on_the_board(tmp_path, target):
    """QuantizeLinear -> DequantizeLinear alone: the M4's VCVTR path and the M0+'s soft-float path
    give onnxruntime's values exactly, ties (half to even) and saturation included."""
    from onnx import TensorProto, helper, numpy_helper

    scale, zero_point = np.float32(0.05), np.int8(3)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 640])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 640])],
                              [numpy_helper.from_array(np.array(scale), "s"),
                               numpy_helper.from_array(np.array(zero_point), "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "qdq.onnx"
    onnx.save(model, path)
    inputs = tmp_path / "x.npy"
    ties = (np.arange(-320, 320, dtype=np.float32) / 2) * scale  # every half step, far past +-128
    np.save(inputs, ties.reshape(1, 640))
    report = build(BuildRequest(model=str(path), target=target, output=tmp_path / "out", run=True,
                                inputs_file=str(inputs)), default_registry())
    assert report["run"]["exact_ratio"] == {"y": 1.0} and report["run"]["max_abs_error"] == 0.0
