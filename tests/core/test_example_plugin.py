"""The example third-party plugin installs as a package, is discovered through its entry point, runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from onnx import TensorProto, helper

from tests.conftest import REPO, run_edgekit
from tests.core.onnx_factory import save

PLUGIN_DIR = REPO / "examples" / "edgekit-example-plugin"


@pytest.fixture(scope="module")
def installed_example_plugin():
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", str(PLUGIN_DIR)], check=True,
                   capture_output=True)
    yield
    subprocess.run([*pip, "uninstall", "-y", "edgekit-example-plugin"], check=True, capture_output=True)


def _transpose_model(tmp_path):
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Transpose", ["t"], ["u"], perm=[0, 3, 1, 2]),
             helper.make_node("Relu", ["u"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return save(model, tmp_path / "transposes.onnx")


def test_example_plugin_is_listed(installed_example_plugin):
    result = run_edgekit("plugins")
    line = next(line for line in result.stdout.splitlines() if "│ example" in line)
    assert "0.2.0" in line and "merge-transposes" in line


def test_example_pass_runs_in_a_build(installed_example_plugin, tmp_path):
    out = tmp_path / "o"
    result = run_edgekit("build", _transpose_model(tmp_path), "-t", "x86-64", "-o", str(out), "-q",
                         "--passes", "merge-transposes,eliminate-dead-code")
    assert result.code == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    merge = report["passes"][0]
    assert merge["name"] == "merge-transposes" and merge["plugin"] == "example"
    assert merge["notes"] == [{"message": "merged Transpose pairs", "matches": 1}]
    assert report["model"]["after"]["nodes"] == 1  # only the Relu is left
