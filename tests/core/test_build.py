"""`edgekit build` end to end on the host target, for every front end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from tests.conftest import REPO, run_edgekit
from tests.core.onnx_factory import conv_relu_model, save

EXAMPLE_FACTORY = REPO / "examples" / "pytorch" / "tiny_cnn.py"


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_build_onnx_writes_verified_model_and_report(resnet8, tmp_path):
    out = tmp_path / "out"
    result = run_edgekit("build", str(resnet8), "--target", "x86-64", "-o", str(out))
    assert result.code == 0, result.stderr
    report = _report(out)
    assert report["target"]["name"] == "x86-64"
    assert report["model"]["frontend"] == "onnx"
    assert report["model"]["before"] == {"nodes": 24, "parameters": 77708, "macs": 12501632}
    from edgekit.registry import Registry

    names = [p["name"] for p in report["passes"]]
    assert names == list(Registry().target("x86-64").passes)
    for record in report["passes"]:
        assert record["seconds"] >= 0
        assert set(record["before"]) == {"nodes", "parameters", "macs"}
        assert record["before"] == record["after"]  # ResNet-8 as converted has nothing to fold or merge
        assert record["max_abs_error"] == 0.0
        assert record["max_abs_error_vs_original"] == 0.0
    built = onnx.load(str(out / "model.onnx"))
    onnx.checker.check_model(built)
    assert report["backend"]["files"] == ["model.onnx"]
    assert "fold-constants" in result.stdout  # the summary table


def test_build_then_run_matches_onnxruntime(autoencoder, tmp_path):
    out = tmp_path / "ae"
    result = run_edgekit("build", str(autoencoder), "-t", "x86-64", "-o", str(out), "--run", "--samples", "3")
    assert result.code == 0, result.stderr
    run = _report(out)["run"]
    assert run["runner"] == "onnxruntime" and run["samples"] == 3
    assert run["max_abs_error"] <= 1e-6
    again = run_edgekit("run", str(out), "--seed", "7")
    assert again.code == 0, again.stderr
    assert "max abs error" in again.stdout


def test_run_with_user_inputs_checks_shapes(autoencoder, tmp_path):
    import numpy as np

    out = tmp_path / "ae"
    assert run_edgekit("build", str(autoencoder), "-t", "x86-64", "-o", str(out), "-q").code == 0
    frames = np.fromfile(REPO / "examples/models/mlperf-tiny/ad_sample_input_f32.bin", dtype=np.float32)
    good = tmp_path / "frames.npy"
    np.save(good, frames.reshape(40, 1, 640)[:4])
    assert run_edgekit("run", str(out), "--input", str(good)).code == 0
    bad = tmp_path / "bad.npy"
    np.save(bad, frames[:100])
    result = run_edgekit("run", str(out), "--input", str(bad))
    assert result.code == 2
    assert "input 'input_1' has shape [100]" in result.stderr


def test_build_pytorch_factory(tmp_path):
    out = tmp_path / "cnn"
    result = run_edgekit("build", f"{EXAMPLE_FACTORY}:make_model", "--input-shape", "1,3,32,32",
                         "-t", "x86-64", "-o", str(out), "--run")
    assert result.code == 0, result.stderr
    report = _report(out)
    assert report["model"]["frontend"] == "torch"
    assert report["model"]["inputs"][0]["shape"] == [1, 3, 32, 32]
    assert report["run"]["max_abs_error"] <= 1e-5


def test_build_torch_export_program(tmp_path):
    program = tmp_path / "tiny.pt2"
    subprocess.run([sys.executable, str(EXAMPLE_FACTORY), str(program)], check=True, capture_output=True)
    out = tmp_path / "pt2"
    result = run_edgekit("build", str(program), "-t", "x86-64", "-o", str(out))
    assert result.code == 0, result.stderr
    assert _report(out)["model"]["frontend"] == "torch"


def test_factory_needs_input_shape(tmp_path):
    result = run_edgekit("build", f"{EXAMPLE_FACTORY}:make_model", "-t", "x86-64", "-o", str(tmp_path / "o"))
    assert result.code == 2
    assert "--input-shape" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_config_file_sets_target_and_flags_override(tmp_path):
    model = save(conv_relu_model(), tmp_path / "m.onnx")
    (tmp_path / "edgekit.toml").write_text('target = "x86-64"\noutput = "from-config"\n')
    assert run_edgekit("build", model, "-q", cwd=tmp_path).code == 0
    assert (tmp_path / "from-config" / "report.json").exists()
    assert run_edgekit("build", model, "-q", "-o", "from-flag", cwd=tmp_path).code == 0
    assert (tmp_path / "from-flag" / "report.json").exists()


def test_pyproject_tool_table_is_read(tmp_path):
    model = save(conv_relu_model(), tmp_path / "m.onnx")
    (tmp_path / "pyproject.toml").write_text('[tool.edgekit]\ntarget = "x86-64"\npasses = ["fold-constants"]\n')
    assert run_edgekit("build", model, "-q", "-o", "o", cwd=tmp_path).code == 0
    assert [p["name"] for p in _report(tmp_path / "o")["passes"]] == ["fold-constants"]


def test_constant_shape_arithmetic_is_folded(tmp_path):
    """A torch-style Shape→Gather→Concat→Reshape chain leaves the graph as one Reshape."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "zero_axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["new_shape"], axis=0),
        helper.make_node("Reshape", ["x", "new_shape"], ["y"]),
    ]
    inits = [helper.make_tensor("zero", TensorProto.INT64, [], [0]),
             helper.make_tensor("zero_axes", TensorProto.INT64, [1], [0]),
             helper.make_tensor("minus_one", TensorProto.INT64, [1], [-1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 12])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = save(model, tmp_path / "shape.onnx")
    assert run_edgekit("build", path, "-t", "x86-64", "-o", str(tmp_path / "o"), "-q").code == 0
    built = onnx.load(str(tmp_path / "o" / "reference.onnx"))
    assert [n.op_type for n in built.graph.node] == ["Reshape"]


@pytest.mark.parametrize("command", [["--help"], ["build", "--help"], ["run", "--help"], ["inspect", "--help"],
                                     ["targets", "--help"], ["plugins", "--help"], ["passes", "--help"]])
def test_every_command_has_help(command):
    result = run_edgekit(*command)
    assert result.code == 0 and "Usage:" in result.stdout


def test_backend_flag_overrides_the_target_profile(tmp_path):
    model = save(conv_relu_model(), tmp_path / "m.onnx")
    out = tmp_path / "o"
    result = run_edgekit("build", model, "-t", "cortex-m4", "--backend", "onnxruntime", "-o", str(out), "--run", "-q")
    assert result.code == 0, result.stderr
    report = _report(out)
    assert report["target"] == {**report["target"], "name": "cortex-m4", "backend": "onnxruntime",
                                "runner": "onnxruntime"}
    unknown = run_edgekit("build", model, "-t", "x86-64", "--backend", "onnxrt", "-o", str(out))
    assert unknown.code == 2 and "did you mean 'onnxruntime'" in unknown.stderr


class ArbitraryObject:
    """Any class: unpickling it would import and construct arbitrary code."""


def test_pt2_loading_never_unpickles_arbitrary_objects():
    import io
    import pickle

    import torch
    import torch.export.pt2_archive._package as package

    from edgekit.errors import UsageError
    from edgekit.plugins.frontends.torch_frontend import no_arbitrary_unpickling

    buffer = io.BytesIO()
    torch.save({"obj": ArbitraryObject()}, buffer)
    with no_arbitrary_unpickling():
        buffer.seek(0)
        with pytest.raises(pickle.UnpicklingError):
            torch.load(buffer, weights_only=False)  # the archive reader asks for this; we refuse
        with pytest.raises(UsageError):
            package.pickle.loads(pickle.dumps(ArbitraryObject()))
        buffer2 = io.BytesIO()
        torch.save({"w": torch.ones(2)}, buffer2)
        buffer2.seek(0)
        assert torch.load(buffer2)["w"].sum().item() == 2.0  # plain tensors still load
    assert package.pickle is pickle and torch.load.__name__ == "load"  # restored afterwards


def test_run_restores_the_build_options(tmp_path):
    from edgekit.building import run
    from edgekit.registry import Registry

    from edgekit import RunResult
    from edgekit.verify import run_onnxruntime

    seen = {}

    class Spy:
        name, plugin = "spy", "test"

        def run(self, artifact_dir, inputs, context):
            seen.update(context.options)
            model = onnx.load(str(artifact_dir / "model.onnx"))
            return [RunResult(outputs=o) for o in run_onnxruntime(model, inputs)]

    model = save(conv_relu_model(), tmp_path / "m.onnx")
    out = tmp_path / "o"
    assert run_edgekit("build", model, "-t", "x86-64", "-o", str(out), "-q", "--name", "net",
                       "--option", "optimize=-Os").code == 0
    registry = Registry()
    registry.runners["onnxruntime"] = Spy()
    run(out, registry)
    assert seen["optimize"] == "-Os" and seen["name"] == "net"
