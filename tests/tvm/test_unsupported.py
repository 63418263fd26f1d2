"""Ops TVM's ONNX importer lacks are refused before anything is compiled or written."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgekit


def _lstm_model(path):
    rng = np.random.default_rng(0)
    hidden, features = 4, 3
    weights = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
               for n, s in (("W", (1, 4 * hidden, features)), ("R", (1, 4 * hidden, hidden)))]
    graph = helper.make_graph(
        [helper.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=hidden, name="encoder_lstm")],
        "lstm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 1, 1, hidden])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)


def test_lstm_is_refused_naming_node_op_and_alternative(tmp_path, tvm_build):
    _lstm_model(tmp_path / "lstm.onnx")
    out = tmp_path / "out"
    with pytest.raises(edgekit.BuildError) as error:
        tvm_build(tmp_path / "lstm.onnx", "cortex-a76", out, run=False)
    message = str(error.value)
    assert "'encoder_lstm'" in message and "LSTM" in message
    assert "--backend onnxruntime" in message
    assert not out.exists()


def test_bare_metal_target_points_to_the_mcu_back_end(tmp_path, tvm_build, models):
    with pytest.raises(edgekit.UsageError, match=r"bare-metal.*--kernels tvm"):
        tvm_build(models["resnet8"], "cortex-m4", tmp_path / "out", run=False)
