"""Ops whose outputs are int64 (ArgMax/ArgMin indices, TopK's indices) have no lowering: the
schedule has no int64 tensors. The refusal is one line naming the node, the op and the dtype."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from edgekit.errors import BuildError

from .helpers import generate_model


def _model(op: str, **attrs) -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["r"])]
    outputs = [helper.make_tensor_value_info("idx", TensorProto.INT64, None)]
    inits = []
    if op == "TopK":
        nodes.append(helper.make_node("TopK", ["r", "k"], ["vals", "idx"], name="top", **attrs))
        inits = [helper.make_tensor("k", TensorProto.INT64, [1], [2])]
        outputs.insert(0, helper.make_tensor_value_info("vals", TensorProto.FLOAT, None))
    else:
        nodes.append(helper.make_node(op, ["r"], ["idx"], name="pick", **attrs))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
                              outputs, inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("op,attrs,node", [("ArgMax", {"axis": 1, "keepdims": 0}, "pick"),
                                           ("ArgMin", {"axis": 0, "select_last_index": 1}, "pick"),
                                           ("TopK", {"axis": -1}, "top")])
def test_int64_output_op_is_refused_naming_node_op_and_dtype(tmp_path, op, attrs, node):
    with pytest.raises(BuildError) as exc:
        generate_model(_model(op, **attrs), tmp_path / "g", "m", with_kernels=False, with_integration=False)
    msg = str(exc.value)
    assert "\n" not in msg
    assert f"node '{node}' (op {op})" in msg
    assert "output 'idx' is int64" in msg
    assert "no int64 tensors" in msg
