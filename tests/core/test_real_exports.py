"""Quirks of real exports (issue #23), each through the CLI on a small model built here:
dynamic dims spelled -1 / 0 / a name / nothing, old IR-3 models from onnx.version_converter, and
``If`` branches that return a value of the outer graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import run_edgekit
from tests.core.onnx_factory import save


M4_RUNNER = "qemu"  # cortex-m4 --run emulates the board


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def _build(model: Path, out: Path, *args: str):
    return run_edgekit("build", str(model), "-o", str(out), "-q", *args)


def _assert_built(result, out: Path, runner: str | None = None) -> dict:
    """The build succeeded; with ``runner``, it also ran there within the absolute tolerance."""
    assert result.code == 0, result.stderr
    report = _report(out)
    if runner:
        run = report["run"]
        assert run["runner"] == runner and run["samples"] >= 1, run
        assert run["max_abs_error"] <= run["tolerance"]["atol"], run
    return report


# ---------------------------------------------------------------------------------------------------
# Dynamic dims, however the exporter spelled them
# ---------------------------------------------------------------------------------------------------

#: how exporters write "this dim is dynamic", each applied to a DimensionProto
SPELLINGS = {
    "minus-one": lambda d: setattr(d, "dim_value", -1),  # paddle2onnx, some TF converters
    "zero": lambda d: setattr(d, "dim_value", 0),
    "named": lambda d: setattr(d, "dim_param", "height"),
    "no-value": lambda d: d.Clear(),
}


def _conv_model(spelling: str) -> onnx.ModelProto:
    """x[?, 3, ?, 8] → Conv(3×3, 4 out, same padding) → Relu → y, batch and height spelled ``spelling``."""
    rng = np.random.default_rng(3)
    weights = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"], name="relu")],
        "dyn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, "H", 8])], [weights])
    dims = graph.input[0].type.tensor_type.shape.dim
    SPELLINGS[spelling](dims[0])
    SPELLINGS[spelling](dims[2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.fixture(scope="module")
def dynamic_models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("dynamic")
    return {s: Path(save(_conv_model(s), folder / f"{s}.onnx")) for s in SPELLINGS}


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_input_shape_fixes_every_spelling_of_a_dynamic_dim(dynamic_models, tmp_path, spelling):
    out = tmp_path / "out"
    report = _assert_built(_build(dynamic_models[spelling], out, "-t", "x86-64", "--input-shape", "1,3,6,8"),
                           out)
    assert report["model"]["inputs"][0]["shape"] == [1, 3, 6, 8], report["model"]["inputs"]


def test_minus_one_dims_build_and_run_on_cortex_m4(dynamic_models, tmp_path):
    out = tmp_path / "m4"
    _assert_built(_build(dynamic_models["minus-one"], out, "-t", "cortex-m4", "--input-shape", "x=1,3,6,8",
                         "--run"), out, runner=M4_RUNNER)


@pytest.mark.parametrize("spelling", ["minus-one", "named"])
def test_a_fixed_dim_that_disagrees_is_still_refused(dynamic_models, tmp_path, spelling):
    result = _build(dynamic_models[spelling], tmp_path / "out", "-t", "x86-64", "--input-shape", "1,4,6,8")
    assert result.code == 2, result.stderr
    assert "input 'x' has fixed dims ['?', 3, '?', 8]" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_minus_one_dim_left_dynamic_is_named(dynamic_models, tmp_path):
    result = _build(dynamic_models["minus-one"], tmp_path / "out", "-t", "x86-64")
    assert result.code == 2, result.stderr
    assert "dynamic input dims in 'x' ['?', 3, '?', 8]" in result.stderr, result.stderr
    assert "--input-shape x=" in result.stderr


# ---------------------------------------------------------------------------------------------------
# IR version 3: what onnx.version_converter makes of an opset-6 model
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ir3_model(tmp_path_factory) -> Path:
    """Gemm → Mul by a constant product → Relu at opset 6, converted to opset 13: IR 3, every weight
    listed as a graph input too (as IR 3 requires), and one foldable node (Mul(s, s))."""
    from onnx import version_converter

    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"),
             numpy_helper.from_array(np.array([1.5], np.float32), "s")]
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["g"], name="gemm", transB=1),
         helper.make_node("Mul", ["s", "s"], ["s2"], name="square"),
         helper.make_node("Mul", ["g", "s2"], ["m"], name="scale"),
         helper.make_node("Relu", ["m"], ["y"], name="relu")],
        "old", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])]
        + [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims)) for t in inits],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)])
    model.ir_version = 3
    converted = version_converter.convert_version(model, 13)
    assert converted.ir_version == 3  # the premise: the converter keeps the old IR version
    onnx.checker.check_model(converted, full_check=True)
    return Path(save(converted, tmp_path_factory.mktemp("ir3") / "old.onnx"))


@pytest.mark.parametrize("target,runner", [("x86-64", "onnxruntime"), ("cortex-m4", M4_RUNNER)])
def test_ir3_model_builds_and_runs(ir3_model, tmp_path, target, runner):
    out = tmp_path / target
    report = _assert_built(_build(ir3_model, out, "-t", target, "--run"), out, runner=runner)
    assert [i["name"] for i in report["model"]["inputs"]] == ["x"]  # the weights are no inputs
    # the constant product was folded: the weights are constants, not overridable inputs
    assert report["model"]["after"]["nodes"] < report["model"]["before"]["nodes"]
    if target == "x86-64":
        built = onnx.load(str(out / "model.onnx"))
        onnx.checker.check_model(built, full_check=True)
        assert built.ir_version >= 4


# ---------------------------------------------------------------------------------------------------
# If whose branch returns an outer value through Identity
# ---------------------------------------------------------------------------------------------------

def _if_model(condition: str) -> onnx.ModelProto:
    """a = Relu(x); y = If(c) then Identity(a) else Neg(a): the then-branch's only node reads ``a``
    from the outer graph. ``c`` is an initializer (True) or ``ReduceSum(a) > 0`` (True for almost any
    input, so the Identity branch is the one that runs)."""
    then_branch = helper.make_graph([helper.make_node("Identity", ["a"], ["then_y"], name="pass_through")],
                                    "then", [], [helper.make_tensor_value_info("then_y", TensorProto.FLOAT, [1, 6])])
    else_branch = helper.make_graph([helper.make_node("Neg", ["a"], ["else_y"], name="negate")],
                                    "else", [], [helper.make_tensor_value_info("else_y", TensorProto.FLOAT, [1, 6])])
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu")]
    if condition == "initializer":
        inits = [numpy_helper.from_array(np.array(True), "c")]
    else:
        inits = [numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
        nodes += [helper.make_node("ReduceSum", ["a"], ["total"], name="total", keepdims=0),
                  helper.make_node("Greater", ["total", "zero"], ["c"], name="positive")]
    nodes.append(helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then_branch,
                                  else_branch=else_branch))
    graph = helper.make_graph(nodes, "if_model", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.fixture(scope="module")
def if_models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("if")
    return {c: Path(save(_if_model(c), folder / f"{c}.onnx")) for c in ("initializer", "input")}


# The target's passes fold an If on a constant condition away before dead-code elimination sees
# it; ``--passes eliminate-dead-code`` keeps it, as a pass list without fold-constants would.
@pytest.mark.parametrize("condition,passes", [("initializer", None), ("initializer", "eliminate-dead-code"),
                                              ("input", None)])
def test_if_branch_returning_an_outer_value_survives_dead_code_elimination(if_models, tmp_path,
                                                                           condition, passes):
    out = tmp_path / "out"
    args = ["-t", "x86-64", "--run", *(["--passes", passes] if passes else [])]
    report = _assert_built(_build(if_models[condition], out, *args), out, runner="onnxruntime")
    assert report["run"]["max_abs_error"] == 0.0  # Relu, Identity, Neg: exact
    built = onnx.load(str(out / "model.onnx"))
    onnx.checker.check_model(built, full_check=True)
    if passes or condition == "input":
        branch = next(n for n in built.graph.node if n.op_type == "If")
        then_branch = next(a.g for a in branch.attribute if a.name == "then_branch")
        assert [n.op_type for n in then_branch.node] == ["Identity"]
