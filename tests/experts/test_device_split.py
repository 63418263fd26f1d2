"""experts-device-split: the CPU/GPU plan (Fiddler) on a GPU phone profile and a CPU-only one, how
the options move experts, and that the pass plans without touching the graph."""

from __future__ import annotations

import json

import onnx
import pytest

from edgekit.context import BuildContext
from edgekit.errors import UsageError
from edgekit.moe import moe_layers
from edgekit.registry import default_registry
from tests.conftest import run_edgekit


def partitioned(moe_onnx, factory: str) -> onnx.ModelProto:
    registry = default_registry()
    return registry.passes["experts-partition"](onnx.load(moe_onnx(factory)),
                                                BuildContext(target=None, registry=registry))


def plan(model: onnx.ModelProto, target: str, **options) -> tuple[onnx.ModelProto, BuildContext]:
    registry = default_registry()
    context = BuildContext(target=registry.target(target), registry=registry, options=options)
    working = onnx.ModelProto()
    working.CopyFrom(model)
    return registry.passes["experts-device-split"](working, context), context


def units(model: onnx.ModelProto) -> list[str]:
    [layer] = moe_layers(model)
    return [e.device for e in layer.experts]


@pytest.mark.parametrize("target", ["mali-g78", "adreno-650"])
def test_gpu_target_plans_frequent_experts_on_the_gpu(moe_onnx, target):
    model = partitioned(moe_onnx, "make_moe_mlp")
    [layer] = moe_layers(model)
    result, context = plan(model, target)
    planned = moe_layers(result)[0]
    expected = ["gpu" if f >= 0.2 else "cpu" for f in layer.frequency]  # every expert has 8,352 parameters
    assert units(result) == expected and set(expected) == {"cpu", "gpu"}  # this model uses both
    assert planned.backbone_device == "gpu"
    split = context.report["experts"]["device_split"]
    assert (split["target"], split["units"], split["gpu_api"], split["backbone"]) == \
        (target, ["cpu", "gpu"], "opencl", "gpu")
    [entry] = split["layers"]
    assert [(e["unit"], e["frequency"], e["parameters"]) for e in entry["experts"]] == \
        [(u, f, 8352) for u, f in zip(expected, layer.frequency)]
    assert split["totals"]["gpu_experts"] == expected.count("gpu")
    assert split["totals"]["cpu_expert_parameters"] == 8352 * expected.count("cpu")
    assert split["executed"] is False
    # a plan only: the graph and the rest of the metadata are the pass's input
    assert result.graph.SerializeToString() == model.graph.SerializeToString()
    assert [(e.output, e.parameters) for e in planned.experts] == [(e.output, e.parameters) for e in layer.experts]


def test_cpu_only_target_plans_everything_on_the_cpu(moe_onnx):
    result, context = plan(partitioned(moe_onnx, "make_moe_mlp"), "cortex-a53")
    assert units(result) == ["cpu"] * 8 and moe_layers(result)[0].backbone_device == "cpu"
    split = context.report["experts"]["device_split"]
    assert split["units"] == ["cpu"] and split["gpu_api"] is None and split["totals"]["gpu_experts"] == 0
    assert any("one compute unit" in str(n) for n in context.take_notes())


def test_skewed_router_puts_rare_experts_on_the_cpu(moe_onnx):
    model = partitioned(moe_onnx, "make_skewed_moe_mlp")
    frequency = moe_layers(model)[0].frequency
    assert all(f < 0.2 for f in frequency[4:]) and all(f >= 0.2 for f in frequency[:4])
    result, context = plan(model, "mali-g78")
    assert units(result) == ["gpu"] * 4 + ["cpu"] * 4
    [entry] = context.report["experts"]["device_split"]["layers"]
    assert entry["gpu_routed_share"] == pytest.approx(1.0)  # the CPU experts are (almost) never routed


def test_options_change_the_plan(moe_onnx):
    model = partitioned(moe_onnx, "make_skewed_moe_mlp")
    frequency = moe_layers(model)[0].frequency
    assert units(plan(model, "mali-g78", experts_gpu_min_parameters=10_000)[0]) == ["cpu"] * 8  # 8,352 each
    assert units(plan(model, "mali-g78", experts_gpu_min_parameters=8352)[0]) == ["gpu"] * 4 + ["cpu"] * 4
    assert units(plan(model, "mali-g78", experts_gpu_min_frequency=0.0)[0]) == ["gpu"] * 8
    half = units(plan(model, "mali-g78", experts_gpu_min_frequency=0.5)[0])
    assert half == ["gpu" if f >= 0.5 else "cpu" for f in frequency] and 0 < half.count("gpu") < 4
    _, context = plan(model, "mali-g78", experts_gpu_min_frequency=0.5, experts_gpu_min_parameters=100)
    split = context.report["experts"]["device_split"]
    assert (split["min_frequency"], split["min_parameters"]) == (0.5, 100)


@pytest.mark.parametrize("option,value", [
    ("experts_gpu_min_frequency", "often"), ("experts_gpu_min_frequency", -0.1),
    ("experts_gpu_min_frequency", 1.5), ("experts_gpu_min_frequency", True),
    ("experts_gpu_min_parameters", "many"), ("experts_gpu_min_parameters", -1),
    ("experts_gpu_min_parameters", 10.5)])
def test_a_bad_option_value_is_a_usage_error_naming_it(moe_onnx, option, value):
    with pytest.raises(UsageError, match=f"--option {option}="):
        plan(partitioned(moe_onnx, "make_moe_mlp"), "mali-g78", **{option: value})


def test_an_unpartitioned_model_is_left_alone(moe_onnx):
    model = onnx.load(moe_onnx("make_moe_mlp"))
    result, context = plan(model, "mali-g78")
    assert not moe_layers(result) and "experts-partition first" in str(context.take_notes())


def test_build_records_the_plan_and_refuses_a_bad_option(moe_onnx, tmp_path):
    """Through the pipeline (exact verification, atol = rtol = 0) on the GPU profile; onnxruntime
    back end, since the plan is only recorded."""
    args = ["build", str(moe_onnx("make_skewed_moe_mlp")), "-t", "mali-g78", "--backend", "onnxruntime", "-q",
            "--passes", "experts-partition,experts-device-split"]
    result = run_edgekit(*args, "-o", str(tmp_path / "out"))
    assert result.code == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [e["unit"] for e in report["experts"]["device_split"]["layers"][0]["experts"]] == \
        ["gpu"] * 4 + ["cpu"] * 4
    assert report["passes"][-1]["max_abs_error"] == 0.0
    assert units(onnx.load(tmp_path / "out" / "reference.onnx")) == ["gpu"] * 4 + ["cpu"] * 4
    bad = run_edgekit(*args, "-o", str(tmp_path / "bad"), "--option", "experts_gpu_min_frequency=often")
    assert bad.code == 2
    assert bad.stderr.strip().splitlines()[-1] == \
        "error: --option experts_gpu_min_frequency=often: expected a number between 0 and 1"
