"""experts-precision (EdgeMoE's expert-wise bit widths) on the MoE MLP: a flash budget between all
int8 and all int4 gives a mix, the report and the MoE metadata say which expert got which width,
the expert sub-libraries keep int8 weights one byte each and int4 two per byte, and the emulated
Cortex-M4 computes what onnxruntime computes on the quantized model (tightly) and what the
original model computes within the error the pass measured (loosely). Budgets below all int4 are
usage errors, through the CLI too (exit 2)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import onnx
import pytest

import edgekit
from edgekit.building import BuildRequest, build
from edgekit.context import BuildContext
from edgekit.moe import moe_layers
from edgekit.plugins.experts.accuracy import output_error
from edgekit.plugins.experts.precision import CODE_RESERVE_BYTES
from edgekit.plugins.mcu.plugin import McuBackend
from edgekit.plugins.quantize.int4 import stored_bytes
from edgekit.registry import default_registry
from edgekit.verify import compare, load_inputs, run_onnxruntime
from tests.experts.test_moe_on_device import covering_inputs
from tests.experts.test_partition import EXPERT_PARAMETERS, partition

DIM, HIDDEN, GROUP = 32, 128, 32
BIASES = 4 * (HIDDEN + DIM)
SCALES = 4 * (-(-DIM // GROUP) * HIDDEN + -(-HIDDEN // GROUP) * DIM)  # fc1 [32, 128], fc2 [128, 32]
INT8_EXPERT = 2 * DIM * HIDDEN + SCALES + BIASES   # 9,856 B
INT4_EXPERT = DIM * HIDDEN + SCALES + BIASES       # 5,760 B
BUDGET = 3 * INT8_EXPERT + 5 * INT4_EXPERT + 1000  # room for three experts at int8
PASSES = [*default_registry().target("cortex-m4").passes, "experts-precision"]


def run_precision(model: onnx.ModelProto, target=None, **options) -> tuple[onnx.ModelProto, BuildContext]:
    registry = default_registry()
    context = BuildContext(target=target, registry=registry, options=options)
    return registry.passes["experts-precision"](model, context), context


@pytest.fixture(scope="module")
def partitioned(moe_onnx):
    model, _ = partition(onnx.load(moe_onnx("make_moe_mlp")))
    return model


def test_budget_sets_the_mix_and_the_report(partitioned):
    result, context = run_precision(partitioned, experts_flash_budget=BUDGET)
    report = context.report["experts"]["precision"]
    chosen = [e["precision"] for e in report["experts"]]
    assert chosen.count("int8") == 3 and chosen.count("int4") == 5
    assert report["all_int8_bytes"] == 8 * INT8_EXPERT and report["all_int4_bytes"] == 8 * INT4_EXPERT
    assert report["weights_bytes"] == 3 * INT8_EXPERT + 5 * INT4_EXPERT <= report["budget_bytes"] == BUDGET
    assert [e["bytes"] for e in report["experts"]] == [INT8_EXPERT if p == "int8" else INT4_EXPERT for p in chosen]
    assert all(e["parameters"] == EXPERT_PARAMETERS for e in report["experts"])
    # the joint error (all experts quantized) is at most about the sum of each expert's alone
    own = sum(e["relative_rms_error"][e["precision"]] for e in report["experts"])
    assert max(e["relative_rms_error"][e["precision"]] for e in report["experts"]) < \
        report["output_error"]["relative_rms"] <= own
    # int4 costs more accuracy than int8 for every expert
    assert all(e["relative_rms_error"]["int4"] > e["relative_rms_error"]["int8"] > 0 for e in report["experts"])
    # the int8 experts are those whose move to int4 would cost most per byte saved
    cost = [e["frequency"] * (e["relative_rms_error"]["int4"] - e["relative_rms_error"]["int8"])
            for e in report["experts"]]
    assert min(c for c, p in zip(cost, chosen) if p == "int8") >= max(c for c, p in zip(cost, chosen) if p == "int4")
    [layer] = moe_layers(result)
    assert [e.precision for e in layer.experts] == chosen
    assert context.report["experts"]["layers"][0]["precision"] == chosen
    inits = {t.name: t.data_type for t in result.graph.initializer}
    for e, (expert, precision) in enumerate(zip(layer.experts, chosen)):
        kind = onnx.TensorProto.INT8 if precision == "int8" else onnx.TensorProto.INT4
        quantized = [w for w in expert.weights if inits[w] in (onnx.TensorProto.INT8, onnx.TensorProto.INT4)]
        assert len(quantized) == 2 and all(inits[w] == kind for w in quantized), (e, expert.weights)
    assert moe_layers(partitioned)[0].experts[0].precision == "float32"  # the input model is left as it was


def test_default_budget_and_budgets_below_all_int4(partitioned):
    _, context = run_precision(partitioned)  # no target flash to fit: all int8
    assert {e["precision"] for e in context.report["experts"]["precision"]["experts"]} == {"int8"}
    with pytest.raises(edgekit.UsageError, match=rf"experts_flash_budget={8 * INT4_EXPERT - 1}: .*int4 "
                                                 rf"\({8 * INT4_EXPERT} B\)"):
        run_precision(partitioned, experts_flash_budget=8 * INT4_EXPERT - 1)
    with pytest.raises(edgekit.UsageError, match="experts_flash_budget=lots"):
        run_precision(partitioned, experts_flash_budget="lots")
    # from the target: its flash less the backbone's weights and a reserve for code
    backbone = sum(stored_bytes(t) for t in partitioned.graph.initializer) - 8 * 4 * EXPERT_PARAMETERS
    board = SimpleNamespace(name="board", flash_bytes=BUDGET + backbone + CODE_RESERVE_BYTES)
    _, context = run_precision(partitioned, target=board)
    assert context.report["experts"]["precision"]["budget_bytes"] == BUDGET
    tiny = SimpleNamespace(name="tiny", flash_bytes=backbone + CODE_RESERVE_BYTES + 1000)
    with pytest.raises(edgekit.UsageError, match="flash of target 'tiny'"):
        run_precision(partitioned, target=tiny)


def test_mixed_experts_on_cortex_m4(moe_onnx, tmp_path):
    path = moe_onnx("make_moe_mlp")
    original = onnx.load(path)
    inputs_file = covering_inputs(original, tmp_path / "in.npy")
    out = tmp_path / "out"
    report = build(BuildRequest(model=str(path), target="cortex-m4", output=out, run=True, inputs_file=inputs_file,
                                passes=PASSES, options={"experts_flash_budget": BUDGET}), default_registry())
    precision = report["experts"]["precision"]
    chosen = [e["precision"] for e in precision["experts"]]
    assert sorted(set(chosen)) == ["int4", "int8"] and precision["weights_bytes"] <= BUDGET
    reference = onnx.load(out / "reference.onnx")
    assert [e.precision for e in moe_layers(reference)[0].experts] == chosen

    # each expert's sub-library runs its own width's kernel on weights stored at that width
    [placement] = report["backend"]["moe"]
    for entry, width, expected in zip(placement["placement"], chosen, precision["experts"]):
        code = (out / f"{entry['library']}.c").read_text()
        other = "w4" if width == "int8" else "w8"
        assert f"ek_gemm_{width.replace('int', 'w')}_f32(" in code and f"ek_gemm_{other}_f32(" not in code
        assert "ek_gemm_f32(" not in code and "ek_matmul_f32(" not in code
        assert entry["weights_bytes"] == expected["bytes"]
    float_report = build(BuildRequest(model=str(path), target="cortex-m4", output=tmp_path / "float",
                                      passes=PASSES[:-1]), default_registry())
    saved = float_report["backend"]["weights_bytes"] - report["backend"]["weights_bytes"]
    assert saved == 8 * 4 * EXPERT_PARAMETERS - precision["weights_bytes"]  # int8: 1 B a weight, int4: 0.5 B

    # tight: the board against onnxruntime on the quantized model (the build checked it, float tolerance)
    run = report["run"]
    assert run["samples"] == 48 and run["max_abs_error"] <= 1e-4, run
    inputs = load_inputs(inputs_file, original)
    registry = default_registry()
    target = registry.target("cortex-m4")
    context = BuildContext(target=target, registry=registry, report=report, work_dir=out,
                           options=dict(report["options"]))
    board = [r.outputs for r in registry.get("runners", target.runner).run(out, inputs, context)]
    assert compare(run_onnxruntime(reference, inputs), board, McuBackend.tolerance).within()
    # loose: against the original model, within what the pass measured for the experts' widths
    # (each expert's error when only it is quantized, summed: errors of different experts add at most)
    expected = sum(e["relative_rms_error"][e["precision"]] for e in precision["experts"])
    measured = output_error(run_onnxruntime(original, inputs), board)["relative_rms"]
    assert 1e-4 < measured <= expected, (measured, expected)


def test_budget_below_all_int4_is_exit_2_on_the_cli(moe_onnx, tmp_path, edgekit_cli):
    out = tmp_path / "out"
    result = edgekit_cli("build", str(moe_onnx("make_moe_mlp")), "-t", "cortex-m4", "-o", str(out), "-q",
                         "--passes", "fold-constants,experts-partition,experts-precision",
                         "--option", f"experts_flash_budget={8 * INT4_EXPERT - 1}")
    assert result.code == 2, result.stderr
    assert "error:" in result.stderr and f"int4 ({8 * INT4_EXPERT} B)" in result.stderr
    assert list(tmp_path.iterdir()) == []
    ok = edgekit_cli("build", str(moe_onnx("make_moe_mlp")), "-t", "cortex-m4", "-o", str(out), "-q",
                     "--passes", "fold-constants,experts-partition,experts-precision",
                     "--option", f"experts_flash_budget={BUDGET}")
    assert ok.code == 0, ok.stderr
    assert json.loads((out / "report.json").read_text())["experts"]["precision"]["weights_bytes"] <= BUDGET
