"""``edgekit tune`` under QEMU: MetaSchedule candidates built as Thumb objects and run on the emulated
MPS2 board (Cortex-M), or as static aarch64 programs under qemu-aarch64, scored by the instructions
one call executes (``compiler/tune_qemu.py``)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.tvm.test_tuning import _tiny_fc, from_database

pytest.importorskip("xgboost", reason="the tune extra is not installed (pip install edgekit[tune])")


def _matmul(m, k, n):
    from tvm import te

    a = te.placeholder((m, k), "float32", name="A")
    b = te.placeholder((k, n), "float32", name="B")
    r = te.reduce_axis((0, k), "r")
    c = te.compute((m, n), lambda i, j: te.sum(a[i, r] * b[r, j], axis=r), name="C")
    return te.create_prim_func([a, b, c]).with_attr("global_symbol", "main")


def _needs_big_workspace(n):
    """Two stages with an ``n``-float intermediate: the kernel asks TVMBackendAllocWorkspace for it."""
    from tvm import te

    a = te.placeholder((n,), "float32", name="A")
    b = te.compute((n,), lambda i: a[i] * 2.0, name="B")
    c = te.compute((n,), lambda i: b[n - 1 - i] + 1.0, name="C")
    return te.create_prim_func([a, c]).with_attr("global_symbol", "main")


def _measure(funcs, target):
    """Build each PrimFunc with the tuning builder, run them as one batch through the runner."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from edgekit.compiler import tune_qemu, tuning

    tgt = tuning.tuning_target(target)
    mods = [tvm.IRModule({"main": f}) for f in funcs]
    builder, runner = tune_qemu.object_builder(), tune_qemu.qemu_runner(target)
    try:
        built = builder.build([ms.builder.BuilderInput(m, tgt) for m in mods])
        assert [b.error_msg for b in built] == [None] * len(funcs)
        futures = runner.run([ms.runner.RunnerInput(b.artifact_path, "cpu", ms.arg_info.ArgInfo.from_prim_func(m["main"]))
                              for b, m in zip(built, mods)])
        return [f.result() for f in futures]
    finally:
        runner.shutdown()
        builder.cleanup()


def _tune_tiny_fc(tmp_path, monkeypatch, target, trials=2):
    """``edgekit tune`` of the Gemm+Relu model: (model path, database directory, CLI result)."""
    from edgekit.compiler.tune_command import tune_command

    monkeypatch.setenv("EDGEKIT_PLUGINS", "edgekit.compiler.plugin")
    model, db = tmp_path / "tiny_fc.onnx", tmp_path / "db"
    _tiny_fc(model)
    result = CliRunner().invoke(tune_command, [str(model), "--target", target, "--trials", str(trials),
                                               "--tuning-dir", str(db)])
    return model, db, result


@pytest.fixture(scope="module")
def m4(registry):
    return registry.target("cortex-m4")


def test_runner_counts_are_exact_and_grow_with_the_work(m4):
    from edgekit.compiler.tune_qemu import SCALE

    small, again, big = _measure([_matmul(16, 32, 24), _matmul(16, 32, 24), _matmul(32, 64, 24)], m4)
    assert small.error_msg is None and again.error_msg is None and big.error_msg is None
    counts = [round(float(r.run_secs[0]) * SCALE) for r in (small, again, big)]
    assert counts[0] == counts[1] > 16 * 32 * 24  # at least one instruction per multiply-add
    assert counts[2] > 3 * counts[0]               # 4x the multiply-adds


def test_failing_candidates_report_an_error_not_a_score(m4, tmp_path):
    from tvm.s_tir import meta_schedule as ms

    from edgekit.compiler import tune_qemu

    # needs 800 KB of workspace; the runner's bump allocator has 512 KB: the kernel returns nonzero
    (too_big,) = _measure([_needs_big_workspace(200_000)], m4)
    assert too_big.run_secs is None and "status 1" in too_big.error_msg
    assert _measure([_needs_big_workspace(1000)], m4)[0].error_msg is None  # the same kernel, smaller
    # an artifact that is no object file fails at the link
    garbage = tmp_path / "candidate.o"
    garbage.write_bytes(b"not an object")
    runner = tune_qemu.qemu_runner(m4)
    try:
        (future,) = runner.run([ms.runner.RunnerInput(str(garbage), "cpu",
                                                      ms.arg_info.ArgInfo.from_prim_func(_matmul(2, 2, 2)))])
        broken = future.result()
    finally:
        runner.shutdown()
    assert broken.run_secs is None and broken.error_msg.startswith("QemuCountRunner:")


def test_harness_source_fills_every_argument_and_calls_the_entry_once():
    from edgekit.compiler.tune_qemu import ENTRY, harness_source

    source = harness_source([("float32", [4, 8]), ("int8", [3]), ("float32", [4])], {ENTRY})
    assert source.count(f"status = {ENTRY}(NULL, args, 3, &result);") == 1
    assert "static float buf0[32]" in source and "static int8_t buf1[3]" in source
    assert source.index("ek_harness_begin();") < source.index(f"= {ENTRY}(") < source.index("ek_harness_end();")
    assert "cycles" not in source and " ms" not in source


def test_tune_cortex_m4_writes_records_a_build_applies(tmp_path, registry, monkeypatch):
    """The CI smoke test: 2 trials on a Gemm+Relu model, then a cortex-m4 build with --kernels tvm
    finds the kernel tuned and still matches onnxruntime on the emulated board."""
    from edgekit.compiler import tuning
    from edgekit.compiler.lower import tvm_target
    from edgekit.compiler.importer import import_onnx
    from edgekit.context import BuildContext
    from tests.tvm.test_mcu_kernels import mcu_build

    import onnx

    model, db, result = _tune_tiny_fc(tmp_path, monkeypatch, "cortex-m4")
    assert result.exit_code == 0, result.output
    # two trials, plus edgekit's default schedule measured first as a record of its own
    assert tuning.record_count(db) == 3 and "1 of them edgekit's default schedules" in result.output
    records = [json.loads(line) for line in (db / tuning.RECORDS_FILE).read_text().splitlines()]
    assert all(0 < r[1][1][0] < 1e-3 for r in records)  # instructions / 1e9: real counts, no failures
    assert "fused_matmul_add_relu" in result.output and "instructions per call" in result.output
    assert "latency" not in result.output.lower() and "cycles" not in result.output.lower()

    target = registry.target("cortex-m4")
    context = BuildContext(target=target, registry=registry, options={"tuning_dir": str(db)})
    _, decided = tuning.open_database(context, import_onnx(onnx.load(model)), tvm_target(target.tvm_target))
    assert sorted(decided["tuned"] + decided["default_best"]) == ["fused_matmul_add_relu"]
    report = mcu_build(model, "cortex-m4", tmp_path / "out", True, tuning_dir=str(db))
    assert from_database(report) == ["fused_matmul_add_relu"]
    assert report["run"]["max_abs_error"] <= 1e-4
    # the default schedule competes as a record: two trials cannot make the build slower
    untuned = mcu_build(model, "cortex-m4", tmp_path / "untuned", True, no_tuning=True)
    assert report["run"]["measurements"]["instructions"] <= untuned["run"]["measurements"]["instructions"]


def test_tune_refuses_a_gpu_target_in_one_line(tmp_path, monkeypatch):
    _, db, result = _tune_tiny_fc(tmp_path, monkeypatch, "mali-g78")
    assert result.exit_code == 2 and "supports CPU (llvm) targets" in result.output
    assert not (db / "database_tuning_record.json").exists()


def test_aarch64_candidates_are_counted_under_qemu_user(registry):
    from edgekit.compiler.tune_qemu import SCALE

    small, again, big = _measure([_matmul(16, 32, 24), _matmul(16, 32, 24), _matmul(32, 64, 24)],
                                 registry.target("cortex-a53"))
    counts = [round(float(r.run_secs[0]) * SCALE) for r in (small, again, big)]
    assert counts[0] == counts[1] > 0 and counts[2] > 3 * counts[0]


def test_tune_cortex_a53_then_the_tvm_build_applies_the_records(tmp_path, tvm_build, monkeypatch):
    from edgekit.compiler import tuning

    model, db, result = _tune_tiny_fc(tmp_path, monkeypatch, "cortex-a53")
    assert result.exit_code == 0, result.output
    assert tuning.record_count(db) == 3 and "1 of them edgekit's default schedules" in result.output
    report = tvm_build(model, "cortex-a53", tmp_path / "out", True, tuning_dir=str(db))
    assert from_database(report) == ["fused_matmul_add_relu"]
    assert report["run"]["max_abs_error"] <= 1e-4


# Two presses 0.3 s apart failed once in 5 runs after the seed records were added (timing of the
# second signal against the search's start); kept out of the default run until that is found.
@pytest.mark.parametrize("presses", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_ctrl_c_keeps_the_committed_batches_and_exits_130(tmp_path, presses):
    """SIGINT to the process group (what a terminal's Ctrl-C sends) once records exist. One press:
    the batch in flight is finished and committed. Two: it is abandoned at once. Either way nothing
    is recorded as a failure and the exit status is 130 (not a crash inside TVM)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from edgekit.compiler import tuning

    model = tmp_path / "tiny_fc.onnx"
    _tiny_fc(model)
    db = tmp_path / "db"
    records = db / tuning.RECORDS_FILE
    command = [sys.executable, "-m", "edgekit.cli", "tune", str(model), "--target", "cortex-m4",
               "--trials", "200", "--tuning-dir", str(db)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        # past the seed (the one kernel's default schedule, committed before the search starts):
        # the search's own batches are running
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and tuning.record_count(db) <= 1 and proc.poll() is None:
            time.sleep(0.2)
        assert tuning.record_count(db) > 1, proc.stderr.read() if proc.poll() is not None else "no batch in 90 s"
        time.sleep(1.0)  # into the next batch
        at_signal = tuning.record_count(db)
        os.killpg(proc.pid, signal.SIGINT)
        if presses == 2:
            time.sleep(0.3)
            os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    kept = tuning.record_count(db)
    # one press: the batch the signal hit (or the next one, if it came between batches) was
    # measured and committed rather than dropped; no candidate the signal killed is a failure
    assert at_signal < kept < 200 if presses == 1 else (at_signal <= kept < 200 and "abandoned" in err)
    assert all(0 < json.loads(line)[1][1][0] < 1e-3 for line in records.read_text().splitlines())
    assert f"interrupted: {kept} new records kept" in err and "run the same command again to resume" in err


@pytest.mark.slow
def test_tuning_the_autoencoder_beats_relax_schedules_and_resumes(tmp_path, models, registry, monkeypatch):
    """32 trials over the autoencoder's five kernels, then 16 more resume from the records."""
    from edgekit.compiler import tune_qemu, tuning
    from edgekit.compiler.importer import import_onnx
    from edgekit.compiler.lower import tvm_target
    from edgekit.compiler.tune_command import tune_command
    from tvm.s_tir import meta_schedule as ms

    import onnx

    monkeypatch.setenv("EDGEKIT_PLUGINS", "edgekit.compiler.plugin")
    db = tmp_path / "db"
    args = [str(models["autoencoder"]), "--target", "cortex-m4", "--tuning-dir", str(db)]
    first = CliRunner().invoke(tune_command, [*args, "--trials", "32"])
    assert first.exit_code == 0, first.output
    assert tuning.record_count(db) == 32
    second = CliRunner().invoke(tune_command, [*args, "--trials", "16"])
    assert second.exit_code == 0, second.output
    assert tuning.record_count(db) == 48
    target = registry.target("cortex-m4")
    fused = tuning.fuse(import_onnx(onnx.load(models["autoencoder"])), tvm_target(target.tvm_target))
    rows = tune_qemu.kernel_report(fused, target, ms.database.JSONDatabase(work_dir=str(db), allow_missing=False))
    assert len(rows) == 5
    assert all(r["best_instructions"] < r["relax_instructions"] for r in rows)
