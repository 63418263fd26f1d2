"""x86-64 and aarch64 builds run and match onnxruntime; the artifacts are what the report says."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest


ELF_MACHINE = {"x86-64": 62, "x86-64-v3": 62, "cortex-a76": 183}  # EM_X86_64, EM_AARCH64


def _machine(path) -> int:
    return int.from_bytes(path.read_bytes()[18:20], "little")


@pytest.mark.parametrize("model", ["ic_resnet8", "ad_autoencoder"])
@pytest.mark.parametrize("target", ["x86-64", "x86-64-v3", "cortex-a76"])
def test_run_matches_onnxruntime(builds, model, target):
    out, report = builds[(model, target)]
    run = report["run"]
    assert run["max_abs_error"] <= 1e-4
    assert run["runner"] == ("qemu-user" if target == "cortex-a76" else "tvm-host")
    library = out / report["backend"]["library"]
    assert _machine(library) == ELF_MACHINE[target]
    assert json.loads((out / "report.json").read_text())["backend"]["kernels"] == report["backend"]["kernels"]


def test_aarch64_run_counts_instructions(builds):
    _, report = builds[("ic_resnet8", "cortex-a76")]
    measured = report["run"]["measurements"]
    # ResNet-8 has 12.5 M MACs: an inference cannot take fewer instructions than a tenth of that.
    assert measured["instructions"] > 1_250_000
    assert measured["instructions"] < measured["instructions_process_total"]


def test_x86_run_is_timed(builds):
    _, report = builds[("ad_autoencoder", "x86-64")]
    assert report["run"]["measurements"]["latency_us_median"] > 0


def test_memory_plan_reuses_storage(builds):
    _, report = builds[("ic_resnet8", "x86-64")]
    plan = report["backend"]["memory_plan"]
    # Three 64 KiB activation buffers serve all 15 kernel calls of ResNet-8.
    assert plan["kernel_calls"] > len(plan["storages_bytes"])
    assert plan["activation_bytes"] < 4 * 65536


def test_python_loader_reproduces_onnxruntime(builds):
    import onnxruntime as ort

    from edgekit.compiler.runners import load_python_loader

    out, report = builds[("ic_resnet8", "x86-64")]
    model = load_python_loader(out, report["backend"])
    x = np.random.default_rng(7).standard_normal((1, 3, 32, 32)).astype(np.float32)
    [got] = model.run([x])
    session = ort.InferenceSession(str(out / "reference.onnx"), providers=["CPUExecutionProvider"])
    [want] = session.run(None, {"input_1": x})
    assert np.abs(got - want).max() <= 1e-4


def test_misaligned_buffers_are_refused_not_read(builds):
    """TVM's kernels may use aligned vector loads: the driver checks what the loader guarantees."""
    import ctypes

    from edgekit.compiler.runners import load_python_loader

    out, report = builds[("ad_autoencoder", "x86-64")]
    model = load_python_loader(out, report["backend"])
    raw = np.zeros(640 * 4 + 64 + 4, np.uint8)
    start = -raw.ctypes.data % 64 + 4  # 4 bytes past a 64-byte boundary
    shifted = raw[start:start + 640 * 4].view(np.float32).reshape(1, 640)
    output = model.aligned(np.zeros((1, 640), np.float32))
    with pytest.raises(ValueError, match="64-byte aligned"):
        model.run_into([shifted], [output])
    ins = (ctypes.c_void_p * 1)(shifted.ctypes.data)
    outs = (ctypes.c_void_p * 1)(output.ctypes.data)
    assert model._run(ins, outs) == -2
    [result] = model.run([shifted])  # run() copies into aligned buffers
    assert result.ctypes.data % 64 == 0 and np.isfinite(result).all()


def test_edgekit_run_reruns_the_aarch64_artifact(builds, registry):
    from edgekit.building import run

    out, _ = builds[("ad_autoencoder", "cortex-a76")]
    section = run(out, registry, seed=3)
    assert section["max_abs_error"] <= 1e-4 and section["measurements"]["instructions"] > 0


def test_gpu_build_saves_opencl_source(builds):
    out, report = builds[("ic_resnet8", "mali-g78")]
    meta = report["backend"]
    source = (out / meta["kernel_source"]).read_text()
    assert meta["opencl_kernels"] == len(meta["opencl_kernel_names"]) > 0
    for name in meta["opencl_kernel_names"]:
        assert f"__kernel void {name}" in source
    assert _machine(out / meta["library"]) == 183
    assert "run" not in report and meta["not_verified"]


def test_plugin_import_does_not_load_tvm():
    code = "import sys, edgekit.compiler.plugin; sys.exit(1 if 'tvm' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
