"""MoE models through the TVM back end: the router's TopK lowers to a plain kernel (TVM 0.27 has no
legalization for it) and the built library matches onnxruntime on inputs that reach every expert.
A partitioned model runs conditionally on CPU targets (one kernel group per expert, run by the
driver only for the k routed experts of each token, see edgekit.compiler.moe_split); option
moe_conditional=false keeps the dense build, which computes every expert as onnxruntime does."""

from __future__ import annotations

import json
import re
import subprocess
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgekit.building import BuildRequest, build
from tests.experts.conftest import MOE_EXAMPLES, export
from tests.experts.test_moe_on_device import SAMPLES, covering_inputs

pytest.importorskip("tvm", reason="the tvm extra is not installed")

PARTITION = ["fold-constants", "experts-partition"]


def tvm_build(path, out, inputs=None, passes=None, samples=1, target="x86-64-v3", **options):
    from tests.tvm.conftest import tvm_registry

    request = BuildRequest(model=str(path), target=target, output=out, run=True, backend="tvm",
                           inputs_file=inputs, passes=passes, verify_samples=samples,
                           options={"no_tuning": True, "timing_repeats": 1, **options})
    return build(request, tvm_registry())


def assert_conditional(report, layers: int = 1) -> None:
    """The report describes conditional layers: 8 experts each, a kernel group and weights per
    expert, in host memory; no TopK kernel (the driver picks the experts)."""
    backend = report["backend"]
    assert len(backend["moe"]) == layers, backend["moe"]
    for layer in backend["moe"]:
        assert layer["conditional"] and layer["k"] == 2
        assert [e["expert"] for e in layer["placement"]] == list(range(8))
        for expert in layer["placement"]:
            assert expert["kernels"] and set(expert["kernels"]) <= set(backend["kernels"])
            assert expert["weights_bytes"] > 0 and expert["region"] == "host memory"
    assert not any("topk" in kernel for kernel in backend["kernels"]), backend["kernels"]


MODES = {"original": (None, {}), "partitioned": (PARTITION, {}),
         "partitioned-dense": (PARTITION, {"moe_conditional": False})}


@pytest.mark.parametrize("factory", ["make_moe_mlp", "make_gather_moe_mlp", "make_moe_block"])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_moe_on_tvm_matches_onnxruntime(moe_onnx, tmp_path, factory, mode):
    passes, options = MODES[mode]
    inputs = covering_inputs(onnx.load(moe_onnx(factory)), tmp_path / "in.npy")
    report = tvm_build(moe_onnx(factory), tmp_path / "out", inputs, passes, **options)
    run = report["run"]
    assert run["samples"] == SAMPLES and run["max_abs_error"] <= 1e-4, run
    backend = report["backend"]
    if mode == "partitioned":
        assert_conditional(report)
        assert "ek_moe_f32(" in (tmp_path / "out" / "model_driver.c").read_text()
        return
    # dense: TVM computes every expert, the router's TopK included
    assert any("topk" in kernel for kernel in backend["kernels"]), backend["kernels"]
    if mode == "original":
        assert "moe" not in backend
    else:
        assert [layer["conditional"] for layer in backend["moe"]] == [False]


def instructions(report) -> int:
    return report["run"]["measurements"]["instructions"]


@pytest.mark.parametrize("factory", ["make_moe_mlp", "make_moe_block"])
def test_conditional_moe_runs_fewer_instructions_on_cortex_a76(moe_onnx, tmp_path, factory):
    """Under qemu-aarch64: the conditional build matches onnxruntime and executes fewer
    instructions than the dense one (moe_conditional=false), about top-2 of 8 experts' share."""
    inputs = covering_inputs(onnx.load(moe_onnx(factory)), tmp_path / "in.npy")
    reports = {conditional: tvm_build(moe_onnx(factory), tmp_path / str(conditional), inputs, PARTITION,
                                      target="cortex-a76", moe_conditional=conditional)
               for conditional in (True, False)}
    for report in reports.values():
        assert report["run"]["samples"] == SAMPLES and report["run"]["max_abs_error"] <= 1e-4, report["run"]
    assert_conditional(reports[True])
    ratio = instructions(reports[True]) / instructions(reports[False])
    print(f"{factory} on cortex-a76: conditional / dense instructions = {instructions(reports[True])} / "
          f"{instructions(reports[False])} = {ratio:.3f}")
    assert ratio < 0.5, ratio


def test_generated_c_is_c99_and_the_glue_does_not_allocate(moe_onnx, tmp_path):
    from edgekit.compiler.export import include_dirs

    report = tvm_build(moe_onnx("make_moe_block"), tmp_path / "out", passes=PARTITION)
    assert_conditional(report)
    out = tmp_path / "out"
    system = [flag for d in include_dirs() for flag in ("-isystem", d)]  # TVM's headers are not C99
    for source in ("model_driver.c", "kernels/ek_moe.c"):
        proc = subprocess.run(["gcc", "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-O2", *system,
                               "-c", source, "-o", str(tmp_path / "x.o")], cwd=out, capture_output=True, text=True)
        assert proc.returncode == 0 and not proc.stderr, (source, proc.stderr)
    driver = (out / "model_driver.c").read_text()
    glue = driver[driver.index("static int ek_moe_status;"):]  # expert rows, tables and model_run
    assert not re.search(r"\b(malloc|calloc|realloc|free|posix_memalign|alloca)\s*\(", glue)
    assert glue.count("_row(const void *input") == 8


TWO_LAYERS = textwrap.dedent(f"""
    import sys

    import torch
    from torch import nn

    sys.path.insert(0, {str(MOE_EXAMPLES.parent)!r})
    from moe_models import DenseMoE, _seeded


    class TwoMoE(nn.Module):
        \"\"\"Two MoE layers in sequence, the first one in a residual branch.\"\"\"

        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(16, 32)
            self.moe_a = DenseMoE(32, 64)
            self.moe_b = DenseMoE(32, 64)
            self.head = nn.Linear(32, 10)

        def forward(self, x):
            h = torch.relu(self.embed(x))
            h = h + self.moe_a(h)
            return self.head(self.moe_b(h))


    def make_two_layers():
        torch.manual_seed(3)
        return _seeded(TwoMoE(), 3)


    def make_bare_layer():
        \"\"\"A MoE layer alone: its input is the graph's input, its output the graph's output, and a
        token's row (12 floats) is not 64-byte aligned in the input.\"\"\"
        torch.manual_seed(4)
        return _seeded(DenseMoE(12, 24), 4)
""")


@pytest.mark.parametrize("factory,shape,layers", [("make_two_layers", "4,16", 2), ("make_bare_layer", "3,12", 1)])
def test_conditional_layers_in_sequence_and_at_the_graph_boundaries(tmp_path, factory, shape, layers):
    module = tmp_path / "two_moe.py"
    module.write_text(TWO_LAYERS)
    path = tmp_path / f"{factory}.onnx"
    onnx.save(export(factory, module, shape), path)
    report = tvm_build(path, tmp_path / "out", passes=[*PARTITION, "experts-device-split"], samples=16)
    assert report["run"]["samples"] == 16 and report["run"]["max_abs_error"] <= 1e-4, report["run"]
    assert_conditional(report, layers)
    # the device plan of experts-device-split (a CPU-only target: every expert on the CPU) is copied
    assert {e["device"] for layer in report["backend"]["moe"] for e in layer["placement"]} == {"cpu"}
    steps = [next(iter(s)) for s in json.loads((tmp_path / "out" / "plan.json").read_text())["steps"]]
    # the bare layer writes the caller's output buffer itself: no segment after it
    assert steps == (["segment", "moe_layer"] * 2 + ["segment"] if layers == 2 else ["segment", "moe_layer"])


def _topk_model(path, largest: int, k: int) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 6])
    values = helper.make_tensor_value_info("values", TensorProto.FLOAT, [3, k])
    indices = helper.make_tensor_value_info("indices", TensorProto.INT64, [3, k])
    node = helper.make_node("TopK", ["x", "k"], ["values", "indices"], axis=1, largest=largest, sorted=1)
    graph = helper.make_graph([node], "topk", [x], [values, indices],
                              [helper.make_tensor("k", TensorProto.INT64, [1], [k])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.mark.parametrize("largest", [1, 0])
def test_topk_kernel_breaks_ties_like_onnx(tmp_path, largest):
    """Ties go to the lower index (ONNX's order): rows with repeated values catch a rank kernel
    that counts ties on the wrong side (duplicate or missing indices)."""
    _topk_model(tmp_path / "topk.onnx", largest, k=3)
    rows = np.array([[1, 5, 5, 2, 5, 0], [3, 3, 3, 3, 3, 3], [-1, 4, -2, 4, -2, 0]], dtype=np.float32)
    np.save(tmp_path / "x.npy", rows[None])
    report = tvm_build(tmp_path / "topk.onnx", tmp_path / "out", str(tmp_path / "x.npy"))
    assert report["run"]["max_abs_error"] == 0.0, report["run"]
