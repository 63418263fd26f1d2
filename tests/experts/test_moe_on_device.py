"""Partitioned MoE models built by the mcu-c back end and run on the emulated Cortex-M4: only the
routed experts run (one sub-library each, in its own section), outputs match onnxruntime on
inputs that reach every expert, and the arena holds k expert working sets, not N."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import onnx
import pytest

from edgekit.building import BuildRequest, build
from edgekit.moe import moe_layers
from edgekit.plugins.experts.graph import run_exposing
from edgekit.plugins.mcu import hostbuild
from edgekit.plugins.mcu.generator import generate
from edgekit.registry import default_registry
from edgekit.verify import random_inputs, run_onnxruntime
from tests.experts.test_partition import partition
from tests.mcu.test_kernels_targets import TARGET_FLAGS

SAMPLES = 48


def covering_inputs(model: onnx.ModelProto, path) -> str:
    """Seeded inputs whose top-2 routing reaches all 8 experts (checked), saved as one .npy."""
    partitioned, _ = partition(model)
    [layer] = moe_layers(partitioned)
    inputs = random_inputs(model, SAMPLES, seed=11)
    probs = np.concatenate([r[layer.probs].reshape(-1, 8) for r in run_exposing(partitioned, [layer.probs], inputs)])
    assert set(np.argsort(-probs, axis=1)[:, :2].reshape(-1)) == set(range(8))
    np.save(path, np.stack([next(iter(i.values())) for i in inputs]))
    return str(path)


def build_moe(path, out, inputs=None, target="cortex-m4", run=True, quantize=None, **options):
    return build(BuildRequest(model=str(path), target=target, output=out, run=run, inputs_file=inputs,
                              quantize=quantize, options=options), default_registry())


@pytest.mark.parametrize("factory", ["make_moe_mlp", "make_gather_moe_mlp", "make_moe_block"])
def test_conditional_moe_matches_onnxruntime_on_cortex_m4(moe_onnx, tmp_path, factory):
    model = onnx.load(moe_onnx(factory))
    report = build_moe(moe_onnx(factory), tmp_path / "out", covering_inputs(model, tmp_path / "in.npy"))
    run = report["run"]
    assert run["samples"] == SAMPLES and run["max_abs_error"] <= 1e-4, run
    # the partition is exact: the board's outputs are within float tolerance of the original model
    partition_record = next(p for p in report["passes"] if p["name"] == "experts-partition")
    assert partition_record["changed"] and partition_record["max_abs_error_vs_original"] <= 1e-5
    moe = [layer for layer in report["backend"]["layers"] if layer["op"] == "MoE"]
    assert len(moe) == 1 and moe[0]["kernel"] == "ek_moe_f32"
    [placement] = report["backend"]["moe"]
    assert placement["conditional"] and [p["expert"] for p in placement["placement"]] == list(range(8))
    out = tmp_path / "out"
    for entry in placement["placement"]:
        weights = (out / f"{entry['library']}_weights.c").read_text()
        assert entry["section"] in (out / f"{entry['library']}.h").read_text() and "const" in weights
        assert f"KEEP(*({entry['section']}))" in (out / "model_experts.ld").read_text()
    assert (out / report["experts"]["layers"][0]["routing_histogram"]).read_text().startswith("<svg")


@pytest.mark.parametrize("factory", ["make_moe_mlp", "make_moe_block"])
def test_int8_moe_is_exact_on_cortex_m4(moe_onnx, tmp_path, factory):
    """Static int8 (QDQ): the experts run int8 kernels on the backbone's int8 rows; the combination
    stays float (the quantize pass leaves it so); outputs equal onnxruntime's on the QDQ model."""
    model = onnx.load(moe_onnx(factory))
    float_build = build_moe(moe_onnx(factory), tmp_path / "f", run=False)
    report = build_moe(moe_onnx(factory), tmp_path / "q", covering_inputs(model, tmp_path / "in.npy"),
                       quantize="int8")
    run = report["run"]
    assert min(run["exact_ratio"].values()) == 1.0, run["exact_ratio"]
    out = tmp_path / "q"
    expert_code = (out / "model_moe0_e3.c").read_text()
    assert "ek_qfc_s8(" in expert_code and "ek_gemm_f32(" not in expert_code
    assert report["backend"]["weights_bytes"] < float_build["backend"]["weights_bytes"] / 3
    assert [l["op"] for l in report["backend"]["layers"]].count("MoE") == 1


def test_ram_slots_hold_k_experts_not_n(moe_onnx, tmp_path):
    model = onnx.load(moe_onnx("make_moe_mlp"))
    report = build_moe(moe_onnx("make_moe_mlp"), tmp_path / "out", covering_inputs(model, tmp_path / "in.npy"),
                       expert_memory="ram")
    assert report["run"]["max_abs_error"] <= 1e-4
    [moe] = report["backend"]["moe"]
    biggest = max(p["weights_bytes"] for p in moe["placement"])
    assert moe["slots"] == 2 and moe["slot_bytes"] >= biggest
    assert moe["scratch_bytes"] == moe["expert_arena_bytes"] + moe["row_bytes"] + 2 * moe["slot_bytes"]
    # the whole arena is smaller than the weights of three experts: it cannot hold N working sets
    assert report["backend"]["arena_bytes"] < 3 * biggest
    assert "__attribute__((weak)) void model_expert_load" in (tmp_path / "out" / "model.c").read_text()


def test_all_experts_mode_is_the_dense_reference(moe_onnx, tmp_path):
    """moe_conditional=false runs all 8 experts: the same outputs, four times the expert MACs."""
    path = moe_onnx("make_moe_mlp")
    conditional = build_moe(path, tmp_path / "c")
    dense = build_moe(path, tmp_path / "d", moe_conditional=False)
    macs = [next(l["macs"] for l in r["backend"]["layers"] if l["op"] == "MoE") for r in (conditional, dense)]
    assert macs[1] == 4 * macs[0]
    assert dense["run"]["max_abs_error"] <= 1e-4


def test_moe_library_is_clean_under_sanitizers(moe_onnx, tmp_path):
    partitioned, _ = partition(onnx.load(moe_onnx("make_moe_block")))
    gen = generate(partitioned, tmp_path, moe_options={"expert_memory": "ram"})
    exe = hostbuild.build_driver(tmp_path, gen.prefix, gen.sources, 1, 1, gen.plan.arena_bytes)
    inputs = random_inputs(partitioned, 4, seed=3)
    for feeds, want in zip(inputs, run_onnxruntime(partitioned, inputs)):
        [got] = hostbuild.run_driver(exe, [next(iter(feeds.values()))], [(1, 8, 32)])
        np.testing.assert_allclose(got, next(iter(want.values())), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("target", sorted(TARGET_FLAGS))
def test_moe_library_compiles_warning_free_for_every_cortex_m(moe_onnx, tmp_path, target):
    partitioned, _ = partition(onnx.load(moe_onnx("make_moe_mlp")))
    gen = generate(partitioned, tmp_path, moe_options={"expert_memory": "ram"})
    for src in gen.sources:
        proc = subprocess.run(["arm-none-eabi-gcc", *TARGET_FLAGS[target], "-O2", "-std=c99", "-Wall", "-Wextra",
                               "-Werror", f"-I{tmp_path}", f"-I{tmp_path / 'kernels'}", "-c", str(tmp_path / src),
                               "-o", str(tmp_path / "x.o")], capture_output=True, text=True)
        assert proc.returncode == 0 and not proc.stderr, (src, proc.stderr)
    # the integration files (PlatformIO, CMake) build the expert sub-libraries too
    assert "+<model_moe0_e7.c>" in json.loads((tmp_path / "library.json").read_text())["build"]["srcFilter"]
    assert "model_moe0_e7_weights.c" in (tmp_path / "CMakeLists.txt").read_text()
