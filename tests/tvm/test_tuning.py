"""Tuning: ``edgekit tune`` writes MetaSchedule records; a later build applies them, reports which
kernels were tuned, and still matches onnxruntime. MetaSchedule starts worker processes (tens of
seconds even for a few trials), so these are slow tests: ``pytest -m slow tests/tvm``."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper


def from_database(report) -> list[str]:
    """Kernels whose code came from the tuning database: tuned, or the measured default schedule."""
    backend = report["backend"]
    return sorted(backend["tuned_kernels"] + backend["default_schedule_kernels"])


def _tiny_fc(path):
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "W"),
               numpy_helper.from_array(rng.standard_normal((64,)).astype(np.float32), "B")]
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["h"], transB=1, name="fc"),
         helper.make_node("Relu", ["h"], ["y"], name="relu")], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)


@pytest.mark.slow
def test_tune_smoke_then_build_uses_records(tmp_path, tvm_build, monkeypatch):
    from edgekit.compiler import tuning
    from edgekit.compiler.tune_command import tune_command

    monkeypatch.setenv("EDGEKIT_PLUGINS", "edgekit.compiler.plugin")
    model = tmp_path / "tiny_fc.onnx"
    _tiny_fc(model)
    db = tmp_path / "db"
    result = CliRunner().invoke(tune_command, [str(model), "--target", "x86-64", "--trials", "2",
                                               "--tuning-dir", str(db)])
    assert result.exit_code == 0, result.output
    assert tuning.record_count(db) >= 1
    report = tvm_build(model, "x86-64", tmp_path / "out", True, tuning_dir=str(db), timing_repeats=3)
    assert from_database(report) == ["fused_matmul_add_relu"]
    assert report["run"]["max_abs_error"] <= 1e-4
    untuned = tvm_build(model, "x86-64", tmp_path / "plain", False, tuning_dir=str(db), no_tuning=True)
    assert from_database(untuned) == []


def test_rpc_options_must_come_together():
    from edgekit.compiler.tune_command import tune_command

    result = CliRunner().invoke(tune_command, ["m.onnx", "--target", "x86-64", "--rpc-tracker", "127.0.0.1:9190"])
    assert result.exit_code == 2 and "--rpc-key" in result.output


@pytest.mark.slow
def test_tune_through_rpc_tracker_on_loopback(tmp_path, tvm_build, monkeypatch):
    """A tracker and a server on 127.0.0.1; MetaSchedule measures through them (key 'loopback')."""
    pytest.importorskip("tornado", reason="TVM's RPC tracker needs tornado")
    from tvm.rpc.server import Server
    from tvm.rpc.tracker import Tracker

    from edgekit.compiler import tuning
    from edgekit.compiler.tune_command import tune_command

    monkeypatch.setenv("EDGEKIT_PLUGINS", "edgekit.compiler.plugin")
    tracker = Tracker(host="127.0.0.1", port=9190, port_end=9290, silent=True)
    server = Server(host="127.0.0.1", port=9300, port_end=9400, key="loopback",
                               tracker_addr=("127.0.0.1", tracker.port), silent=True)
    try:
        model = tmp_path / "tiny_fc.onnx"
        _tiny_fc(model)
        db = tmp_path / "db"
        result = CliRunner().invoke(tune_command, [
            str(model), "--target", "x86-64", "--trials", "2", "--tuning-dir", str(db),
            "--rpc-tracker", f"127.0.0.1:{tracker.port}", "--rpc-key", "loopback"])
        assert result.exit_code == 0, result.output
    finally:
        server.terminate()
        tracker.terminate()
    report = tvm_build(model, "x86-64", tmp_path / "out", True, tuning_dir=str(db), timing_repeats=3)
    assert from_database(report) == ["fused_matmul_add_relu"]
    assert tuning.record_count(db) >= 1
