"""io=int8 with graph outputs the graph reads again. The int8 output stays in the caller's buffer;
the DequantizeLinear that made the float graph output still runs for the nodes that read it
(reading that buffer), and a view (Reshape) whose int8 result is an output is copied into the
output's buffer instead of aliasing an arena tensor. Each case once with io=float, once with
io=int8, against onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.plugins.mcu import qmath
from edgekit.plugins.mcu.generator import generate
from tests.conftest import run_edgekit
from tests.mcu.helpers import build_shared, host_model, ort_run

# "logits:0" is not a C identifier: the arena copy of the float output goes through edgekit.naming
IMAGE, PRIOR, LOGITS, SCORES, EVIDENCE = "image", "prior", "logits:0", "scores", "evidence"


def _shared_logits_model(path: Path) -> Path:
    """image -> Conv 3x3 + ReLU -> MaxPool -> Flatten -> Gemm -> logits (an output); scores =
    Softmax(logits + prior) and evidence = Relu(logits): an output read by two nodes."""
    rng = np.random.default_rng(7)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, 0.1, 4).astype(np.float32), "bias"),
             numpy_helper.from_array(rng.normal(0, 0.2, (5, 64)).astype(np.float32), "fw"),
             numpy_helper.from_array(rng.normal(0, 0.1, 5).astype(np.float32), "fb")]
    nodes = [helper.make_node("Conv", [IMAGE, "w", "bias"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fw", "fb"], [LOGITS], transB=1, name="fc"),
             helper.make_node("Add", [LOGITS, PRIOR], ["h"], name="add"),
             helper.make_node("Softmax", ["h"], [SCORES], axis=1, name="softmax"),
             helper.make_node("Relu", [LOGITS], [EVIDENCE], name="evidence")]
    graph = helper.make_graph(
        nodes, "shared_logits", [helper.make_tensor_value_info(IMAGE, TensorProto.FLOAT, [1, 3, 8, 8]),
                                 helper.make_tensor_value_info(PRIOR, TensorProto.FLOAT, [1, 5])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 5]) for n in (LOGITS, SCORES, EVIDENCE)],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def shared_logits(tmp_path_factory) -> Path:
    return _shared_logits_model(tmp_path_factory.mktemp("shared_logits") / "model.onnx")


@pytest.mark.parametrize("io", ["int8", "float"])
def test_output_read_by_other_nodes_runs_on_the_board(shared_logits, tmp_path, io):
    """`edgekit build --quantize int8 --option io=...  --run` on the emulated M4: the build compares
    every output with onnxruntime (and fails beyond tolerance)."""
    out = tmp_path / "out"
    done = run_edgekit("build", str(shared_logits), "-t", "cortex-m4", "--quantize", "int8",
                       "--option", f"io={io}", "-o", str(out), "--run", "-q")
    assert done.code == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    dtype = "int8" if io == "int8" else "float32"
    assert {t["name"]: t["dtype"] for t in report["backend"]["outputs"]} == \
        {LOGITS: dtype, SCORES: dtype, EVIDENCE: dtype}
    run = report["run"]
    assert set(run["exact_ratio"]) == {LOGITS, SCORES, EVIDENCE}
    assert run["exact_ratio_float64"] == {k: 1.0 for k in run["exact_ratio"]}, run["exact_ratio_float64"]


def _c(name: str, value, dtype) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, dtype), name)


def _reread_outputs_model() -> onnx.ModelProto:
    """A QDQ graph whose outputs the graph reads again: y = DQ(Relu group) is an output that also
    feeds a QuantizeLinear (-> Sigmoid group -> o) and a float Neg (-> n); the int8 tensor under y
    also feeds a second DequantizeLinear (-> Tanh group -> t) and an int8 Reshape whose
    DequantizeLinear is the output v, itself read by Neg (-> nv)."""
    inits = [_c("s_x", 0.05, np.float32), _c("z_x", 3, np.int8), _c("s_y", 0.03, np.float32),
             _c("z_y", -128, np.int8), _c("s_q", 0.02, np.float32), _c("z_q", -100, np.int8),
             _c("s_o", 1 / 256, np.float32), _c("z_o", -128, np.int8), _c("s_t", 1 / 128, np.float32),
             _c("z_t", 0, np.int8), _c("shape", [4, 4], np.int64)]
    node = helper.make_node
    nodes = [node("QuantizeLinear", ["x", "s_x", "z_x"], ["xq"]),
             node("DequantizeLinear", ["xq", "s_x", "z_x"], ["xd"]),
             node("Relu", ["xd"], ["r"]),
             node("QuantizeLinear", ["r", "s_y", "z_y"], ["yq"]),
             node("DequantizeLinear", ["yq", "s_y", "z_y"], ["y"]),
             node("QuantizeLinear", ["y", "s_q", "z_q"], ["yq2"]),
             node("DequantizeLinear", ["yq2", "s_q", "z_q"], ["yd2"]),
             node("Sigmoid", ["yd2"], ["sg"]),
             node("QuantizeLinear", ["sg", "s_o", "z_o"], ["oq"]),
             node("DequantizeLinear", ["oq", "s_o", "z_o"], ["o"]),
             node("Neg", ["y"], ["n"]),
             node("DequantizeLinear", ["yq", "s_y", "z_y"], ["d3"]),
             node("Tanh", ["d3"], ["th"]),
             node("QuantizeLinear", ["th", "s_t", "z_t"], ["tq"]),
             node("DequantizeLinear", ["tq", "s_t", "z_t"], ["t"]),
             node("Reshape", ["yq", "shape"], ["vq"]),
             node("DequantizeLinear", ["vq", "s_y", "z_y"], ["v"]),
             node("Neg", ["v"], ["nv"])]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 16]) for n in ("y", "o", "n", "t")]
    outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4, 4]) for n in ("v", "nv")]
    graph = helper.make_graph(nodes, "reread", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def test_outputs_read_again_match_onnxruntime_on_the_host(tmp_path):
    """Host build (arena filled with garbage): every output identical to onnxruntime's, an int8
    output dequantized with the scale and zero point the library reports."""
    model = _reread_outputs_model()
    gens = {io: generate(model, tmp_path / f"m_{io}", name=f"m_{io}", with_kernels=False,
                         with_integration=False, int8_io=io == "int8") for io in ("float", "int8")}
    lib = build_shared([(tmp_path / f"m_{io}", gen) for io, gen in gens.items()], tmp_path / "lib")
    x = (np.random.default_rng(1).standard_normal((1, 16)) * 3).astype(np.float32)
    want = dict(zip([o.name for o in model.graph.output], ort_run(model, {"x": x})))
    for io, gen in gens.items():
        s = gen.schedule
        feeds = [qmath.quantize(x, *s.io_quant[n]) if n in s.io_quant else x for n in s.inputs]
        got = host_model(lib, gen).run(feeds)
        names = [s.io_names.get(n, n) for n in s.outputs]
        assert names == list(want), io
        if io == "int8":  # the outputs made by a DequantizeLinear leave the library as int8
            assert [s.tensors[n].dtype for n in s.outputs] == ["int8", "int8", "float32", "int8", "int8",
                                                               "float32"]
        for name, tensor, value in zip(names, s.outputs, got):
            if tensor in s.io_quant:
                assert value.dtype == np.int8, name
                value = qmath.dequantize(value, *s.io_quant[tensor])
            np.testing.assert_array_equal(value.reshape(want[name].shape), want[name], err_msg=f"{io}: {name}")
