"""experts-prune (Lu et al., ACL 2024) and experts-average (Experts Weights Averaging) on the example
MoE models: what they remove, that the error they report is the error onnxruntime measures, that
a pruned model still lowers to conditional experts on the emulated Cortex-M4, and that both refuse
what they should (usage errors, an averaging too far from the model) through the CLI too."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import edgekit
from edgekit.building import BuildRequest, build
from edgekit.context import BuildContext
from edgekit.moe import MoeLayer, moe_layers
from edgekit.plugins.experts.accuracy import output_error
from edgekit.plugins.experts.graph import run_exposing
from edgekit.registry import default_registry
from edgekit.verify import random_inputs, run_onnxruntime
from tests.experts.test_partition import EXPERT_PARAMETERS, partition

ROUTER_ROW = 32 + 1  # one output of Linear(32, 8): its weights row and bias


def run_pass(name: str, model: onnx.ModelProto, **options) -> tuple[onnx.ModelProto, BuildContext]:
    registry = default_registry()
    context = BuildContext(target=None, registry=registry, options=options)
    return registry.passes[name](model, context), context


def calibration(model: onnx.ModelProto) -> list[dict[str, np.ndarray]]:
    """The inputs the passes measure on without --calibration (routing.samples: 64, seed 0 + 1)."""
    return random_inputs(model, 64, 1)


def assert_reported_error_is_measured(reported: dict, reference: onnx.ModelProto, result: onnx.ModelProto):
    data = calibration(reference)
    measured = output_error(run_onnxruntime(reference, data), run_onnxruntime(result, data))
    for key in ("max_abs", "relative_rms", "max_relative"):
        assert reported[key] == pytest.approx(measured[key], rel=1e-5, abs=1e-12), key
    return measured


@pytest.fixture(scope="module")
def skewed(moe_onnx):
    partitioned, _ = partition(onnx.load(moe_onnx("make_skewed_moe_mlp")))
    return partitioned


def test_prune_drops_the_experts_the_router_never_selects(skewed):
    [before] = moe_layers(skewed)
    assert before.frequency[4:] == [0.0] * 4 and min(before.frequency[:4]) > 0.3  # the model is as claimed
    pruned, context = run_pass("experts-prune", skewed)
    [layer] = moe_layers(pruned)
    assert (layer.count, layer.k, layer.pruned) == (4, 2, [4, 5, 6, 7])
    assert [e.output for e in layer.experts] == [e.output for e in before.experts[:4]]
    assert len(layer.frequency) == 4 and sum(layer.frequency) == pytest.approx(2.0)
    inits = {t.name: numpy_helper.to_array(t) for t in pruned.graph.initializer}
    original = {t.name: numpy_helper.to_array(t) for t in skewed.graph.initializer}
    # the router (Gemm, transB=1) keeps the rows of experts 0-3, and their bias entries
    np.testing.assert_array_equal(inits["moe.router.weight"], original["moe.router.weight"][:4])
    np.testing.assert_array_equal(inits["moe.router.bias"], original["moe.router.bias"][:4])
    assert not any(name.startswith(f"moe.experts.{e}.") for name in inits for e in range(4, 8))
    assert [n.op_type for n in pruned.graph.node].count("Gemm") == 3 + 2 * 4
    assert inits["moe0/combine/zero_gates"].shape == (1, 4)

    report = context.report["experts"]["prune"]
    [entry] = report["layers"]
    assert [p["expert"] for p in entry["pruned"]] == [4, 5, 6, 7] and entry["kept"] == [0, 1, 2, 3]
    assert all(p["frequency"] < 0.01 for p in entry["pruned"])
    assert entry["parameters_removed"] == {"experts": 4 * EXPERT_PARAMETERS, "router": 4 * ROUTER_ROW,
                                           "total": 4 * (EXPERT_PARAMETERS + ROUTER_ROW)}
    assert report["parameters_removed"] == 4 * (EXPERT_PARAMETERS + ROUTER_ROW)
    # never-routed experts carry no output: the pruned model computes what the model did
    measured = assert_reported_error_is_measured(report["output_error"], skewed, pruned)
    assert measured["max_abs"] <= 1e-5 and measured["relative_rms"] <= 1e-5
    assert entry["output_error"] == report["output_error"]
    assert context.report["experts"]["layers"][0]["pruned"] == [4, 5, 6, 7]
    assert "(e7)" in context.attachments["experts_moe0_routing.svg"]  # pruned experts drawn, empty
    assert moe_layers(skewed)[0].count == 8  # the input model is left as it was


def test_pruning_again_keeps_the_original_numbering(moe_onnx):
    """make_moe_mlp routes experts 0, 3 and 4 for 9% of the tokens: a 0.2 threshold drops those,
    a second prune at 0.35 names what it drops by their partition-time indices."""
    partitioned, _ = partition(onnx.load(moe_onnx("make_moe_mlp")))
    once, context = run_pass("experts-prune", partitioned, experts_prune_threshold=0.2)
    assert moe_layers(once)[0].pruned == [0, 3, 4]
    twice, context = run_pass("experts-prune", once, experts_prune_threshold=0.35)
    [layer] = moe_layers(twice)
    [entry] = context.report["experts"]["prune"]["layers"]
    assert layer.pruned == sorted([0, 3, 4] + [p["expert"] for p in entry["pruned"]])
    assert entry["kept"] == [e for e in range(8) if e not in layer.pruned] and layer.count == len(entry["kept"])
    assert_reported_error_is_measured(entry["output_error"], once, twice)


def test_moe_metadata_round_trip_with_and_without_pruned():
    layer = MoeLayer(name="moe0", input="x", probs="p", output="y", k=2, renormalize=True, experts=[],
                     pruned=[4, 5])
    assert MoeLayer.from_dict(layer.as_dict()) == layer
    old = {k: v for k, v in layer.as_dict().items() if k != "pruned"}  # recorded before pruning existed
    assert MoeLayer.from_dict(old).pruned == []


def test_pruned_model_runs_on_the_emulated_cortex_m4(moe_onnx, tmp_path):
    path = moe_onnx("make_skewed_moe_mlp")
    registry = default_registry()
    passes = [*registry.target("cortex-m4").passes, "experts-prune"]
    assert passes.index("experts-partition") < passes.index("experts-prune")
    # inputs whose top-2 routing reaches each of the four experts that stay (checked)
    inputs = random_inputs(onnx.load(path), 24, seed=11)
    pruned, _ = run_pass("experts-prune", partition(onnx.load(path))[0])
    [layer] = moe_layers(pruned)
    probs = np.concatenate([r[layer.probs].reshape(-1, 4) for r in run_exposing(pruned, [layer.probs], inputs)])
    assert set(np.argsort(-probs, axis=1)[:, :2].reshape(-1)) == {0, 1, 2, 3}
    np.save(tmp_path / "in.npy", np.stack([next(iter(i.values())) for i in inputs]))
    report = build(BuildRequest(model=str(path), target="cortex-m4", output=tmp_path / "out", run=True,
                                passes=passes, inputs_file=str(tmp_path / "in.npy")), registry)
    run = report["run"]
    assert run["samples"] == 24 and run["max_abs_error"] <= 1e-4, run  # against the pruned model
    record = next(p for p in report["passes"] if p["name"] == "experts-prune")
    assert record["changed"] and record["tolerance"] == {"approximate": True}
    assert record["after"]["parameters"] == record["before"]["parameters"] - 4 * (EXPERT_PARAMETERS + ROUTER_ROW) - 12
    assert record["max_abs_error_vs_original"] <= 1e-5
    [placement] = report["backend"]["moe"]
    assert placement["experts"] == 4 and placement["conditional"]
    assert [p["expert"] for p in placement["placement"]] == [0, 1, 2, 3]
    assert report["experts"]["prune"]["layers"][0]["kept"] == [0, 1, 2, 3]
    assert not (tmp_path / "out" / "model_moe0_e4.c").exists() and (tmp_path / "out" / "model_moe0_e3.c").exists()


def test_prune_refusals(skewed, moe_onnx):
    # frequencies 0.36, 0.63, 0.67, 0.34, 0...: 0.65 leaves one expert, fewer than top-2 needs
    with pytest.raises(edgekit.UsageError) as caught:
        run_pass("experts-prune", skewed, experts_prune_threshold=0.65)
    message = str(caught.value)
    assert "experts_prune_threshold=0.65" in message and "1 of the 8 experts" in message
    assert "top-2" in message and "at most 0.625" in message
    with pytest.raises(edgekit.UsageError, match="experts_prune_threshold=lots"):
        run_pass("experts-prune", skewed, experts_prune_threshold="lots")
    # at the largest threshold that keeps k, exactly k stay
    at_most, _ = run_pass("experts-prune", skewed, experts_prune_threshold=0.625)
    assert moe_layers(at_most)[0].pruned == [0, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("name", ["experts-prune", "experts-average"])
def test_without_partitioned_layers_there_is_nothing_to_do(moe_onnx, name):
    model = onnx.load(moe_onnx("make_moe_mlp"))
    result, context = run_pass(name, model)
    assert result is model
    assert "nothing to do" in str(context.take_notes())


@pytest.fixture(scope="module")
def averaged_moe(moe_onnx):
    partitioned, _ = partition(onnx.load(moe_onnx("make_averaged_moe_mlp")))
    return partitioned


def test_averaging_an_ewa_model_leaves_one_ffn(averaged_moe):
    result, context = run_pass("experts-average", averaged_moe)
    assert moe_layers(result) == [] and context.report["experts"]["layers"] == []
    # the graph: embed, ReLU, one expert (Linear, GELU, Linear), head; no router, no combination
    assert [n.op_type for n in result.graph.node] == ["Gemm", "Relu", "Gemm", "Gelu", "Gemm", "Gemm"]
    inits = {t.name: numpy_helper.to_array(t) for t in result.graph.initializer}
    original = {t.name: numpy_helper.to_array(t) for t in averaged_moe.graph.initializer}
    for suffix in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
        mean = np.mean([original[f"moe.experts.{e}.{suffix}"] for e in range(8)], axis=0)
        [name] = [n for n in inits if n.startswith("moe0/average/") and n.endswith(suffix)]
        np.testing.assert_allclose(inits[name], mean, rtol=1e-6, atol=1e-7)
    assert not any(n.startswith(("moe.experts.", "moe.router.")) for n in inits)
    report = context.report["experts"]["average"]
    [entry] = report["layers"]
    assert entry["experts"] == 8 and entry["expert_parameters_removed"] == 7 * EXPERT_PARAMETERS
    assert report["forced"] is False and report["tolerance"] == 0.01
    measured = assert_reported_error_is_measured(report["output_error"], averaged_moe, result)
    assert measured["max_relative"] < 0.01


def test_averaging_refuses_experts_far_from_their_mean(moe_onnx):
    partitioned, _ = partition(onnx.load(moe_onnx("make_moe_mlp")))
    with pytest.raises(edgekit.BuildError) as caught:
        run_pass("experts-average", partitioned)
    message = str(caught.value)
    number = float(re.search(r"max relative error of ([0-9.e+-]+)", message).group(1))
    assert number > 0.1 and "experts_average_tolerance=0.01" in message
    assert "--option experts_average_force=true" in message
    forced, context = run_pass("experts-average", partitioned, experts_average_force=True)
    report = context.report["experts"]["average"]
    assert report["forced"] is True and moe_layers(forced) == []
    assert report["output_error"]["max_relative"] == pytest.approx(number, rel=1e-3)
    assert_reported_error_is_measured(report["output_error"], partitioned, forced)
    assert "above experts_average_tolerance" in str(context.take_notes())
    loose, _ = run_pass("experts-average", partitioned, experts_average_tolerance=1.0)
    assert moe_layers(loose) == []
    with pytest.raises(edgekit.UsageError, match="experts_average_force"):
        run_pass("experts-average", partitioned, experts_average_force="maybe")


def test_cli_exit_codes_and_no_output_left_behind(moe_onnx, tmp_path, edgekit_cli):
    passes = "fold-constants,experts-partition"
    out = tmp_path / "out"

    def build_cli(factory, *args):
        return edgekit_cli("build", str(moe_onnx(factory)), "-t", "cortex-m4", "-o", str(out), "-q", *args)

    usage = build_cli("make_skewed_moe_mlp", "--passes", f"{passes},experts-prune",
                      "--option", "experts_prune_threshold=0.9")
    assert usage.code == 2, usage.stderr
    assert "error:" in usage.stderr and "experts_prune_threshold=0.9" in usage.stderr
    refused = build_cli("make_moe_mlp", "--passes", f"{passes},experts-average")
    assert refused.code == 1, refused.stderr
    assert "max relative error of" in refused.stderr and "experts_average_force=true" in refused.stderr
    assert list(tmp_path.iterdir()) == []  # neither the output nor a staging directory
    forced = build_cli("make_moe_mlp", "--passes", f"{passes},experts-average",
                       "--option", "experts_average_force=true")
    assert forced.code == 0, forced.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["experts"]["average"]["forced"] is True and report["experts"]["layers"] == []
    assert "MoE" not in [layer["op"] for layer in report["backend"]["layers"]]
    pruned = build_cli("make_skewed_moe_mlp", "--passes", f"{passes},experts-prune")
    assert pruned.code == 0, pruned.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["experts"]["prune"]["layers"][0]["kept"] == [0, 1, 2, 3]
    assert [layer["op"] for layer in report["backend"]["layers"]].count("MoE") == 1
