"""The PyTorch examples in ``examples/repparam``, exported by both torch exporters: after the repparam
pipeline each graph has exactly the node types and parameter count of its plain architecture (built
the same way) and matches the unmerged model within 1e-5 relative. Plus the CLI on a factory."""

from __future__ import annotations

import importlib.util
import json

import onnx
import pytest

from edgekit.errors import BuildError
from tests.conftest import REPO, run_edgekit

spec = importlib.util.spec_from_file_location("repparam_benchmark", REPO / "benchmarks" / "repparam.py")
benchmark = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark)

# What each example must have been re-parameterized by (a match note of that pass).
EXPECTED_PASS = {"ssf_cnn": "fold-ssf", "ssf_transformer": "fold-ssf", "repvgg": "merge-branches",
                 "acnet": "merge-branches", "deconv": "merge-branches", "lora": "merge-lora",
                 "batchnorm_cnn": "fold-batchnorm"}
def cases() -> list:
    params = []
    for name in benchmark.EXAMPLES:
        for exporter in benchmark.EXPORTERS:
            params.append(pytest.param(name, exporter, id=f"{name}-{exporter}"))
    return params


@pytest.mark.parametrize("name, exporter", cases())
def test_example_becomes_its_plain_architecture(name, exporter, tmp_path):
    row = benchmark.measure(name, exporter, tmp_path)
    assert row["ops_after"] == row["ops_plain"], row["passes"]
    assert row["after"]["parameters"] == row["plain"]["parameters"]
    assert row["after"]["macs"] == row["plain"]["macs"] <= row["before"]["macs"]
    assert row["ops_before"] != row["ops_after"]  # there was training-time structure to remove
    assert row["max_rel_error"] <= 1e-5
    assert not row["left_dead_code"]
    notes = json.dumps(row["passes"].get(EXPECTED_PASS[name], []))
    assert "merged" in notes or "folded" in notes


def test_cli_builds_a_repvgg_factory_into_plain_convolutions(tmp_path):
    out = tmp_path / "out"
    result = run_edgekit("build", str(REPO / "examples" / "repparam" / "repvgg.py") + ":make_model",
                         "--input-shape", "1,8,16,16", "--target", "x86-64", "-o", str(out), "-q",
                         "--passes", "fold-constants,fold-batchnorm,merge-branches,eliminate-dead-code")
    assert result.code == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    merge = next(p for p in report["passes"] if p["name"] == "merge-branches")
    assert merge["changed"] and merge["after"]["macs"] < merge["before"]["macs"]
    assert merge["max_abs_error"] <= merge["tolerance"]["atol"]  # outputs are O(1): see the example matrix
    assert any("merged parallel branches" in n["message"] for n in merge["notes"])
    merged = onnx.load(str(out / "reference.onnx"))
    assert sorted(n.op_type for n in merged.graph.node) == ["Conv"] * 3 + ["Relu"] * 3


def test_cli_reports_a_shift_it_cannot_fold_exactly(tmp_path):
    from tests.repparam.graphs import GraphBuilder

    g = GraphBuilder()
    x = g.input("x", [1, 2, 6, 6])
    shifted = g.node("Add", [x, g.vector("shift", [1, 2, 1, 1])], "shifted")
    model = g.model(g.node("Conv", [shifted, g.weight("w", [3, 2, 3, 3])], "y", pads=[1, 1, 1, 1]))
    onnx.save(model, str(tmp_path / "m.onnx"))
    result = run_edgekit("build", str(tmp_path / "m.onnx"), "--target", "x86-64", "-o", str(tmp_path / "out"),
                         "-q", "--passes", "fold-ssf")
    assert result.code == 0, result.stderr
    ssf = json.loads((tmp_path / "out" / "report.json").read_text())["passes"][0]
    assert not ssf["changed"]
    assert any("zero-padded convolution is not exact" in n["message"] for n in ssf["notes"])


def test_passes_lists_the_repparam_passes():
    result = run_edgekit("passes")
    assert result.code == 0, result.stderr
    for name in ("fold-ssf", "fold-batchnorm", "merge-branches", "merge-lora", "collapse-linear-chains"):
        assert name in result.stdout
