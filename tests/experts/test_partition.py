"""experts-partition on the example MoE models: both PyTorch forms are recognised, the rewrite is
exact (onnxruntime), and the metadata names what the back ends need."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edgekit.context import BuildContext
from edgekit.moe import moe_layers
from edgekit.registry import default_registry
from edgekit.verify import random_inputs, run_onnxruntime

EXPERT_PARAMETERS = 32 * 128 + 128 + 128 * 32 + 32  # Linear(32, 128) + Linear(128, 32)


def partition(model: onnx.ModelProto, **options) -> tuple[onnx.ModelProto, BuildContext]:
    registry = default_registry()
    context = BuildContext(target=None, registry=registry, options=options)
    return registry.passes["experts-partition"](model, context), context


@pytest.mark.parametrize("factory,form", [("make_moe_mlp", "dense"), ("make_gather_moe_mlp", "gather"),
                                          ("make_moe_block", "dense")])
def test_recognises_and_partitions_exactly(moe_onnx, factory, form):
    original = onnx.load(moe_onnx(factory))
    partitioned, context = partition(original)
    [layer] = moe_layers(partitioned)
    assert (layer.count, layer.k, layer.renormalize, layer.form) == (8, 2, True, form)
    assert [e.parameters for e in layer.experts] == [EXPERT_PARAMETERS] * 8
    assert len({e.output for e in layer.experts}) == 8
    ops = [n.op_type for n in partitioned.graph.node]
    assert ops.count("TopK") == 1 and "GatherND" not in ops and "Einsum" not in ops
    assert len(layer.frequency) == 8 and sum(layer.frequency) == pytest.approx(2.0)
    inputs = random_inputs(original, 8, seed=5)
    for want, got in zip(run_onnxruntime(original, inputs), run_onnxruntime(partitioned, inputs)):
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
    assert context.report["experts"]["layers"][0]["routing_histogram"] in context.attachments


def test_gather_form_specialises_into_the_dense_experts(moe_onnx):
    """Same weights in both forms: the specialised gather experts compute the dense experts."""
    dense, _ = partition(onnx.load(moe_onnx("make_moe_mlp")))
    gather, _ = partition(onnx.load(moe_onnx("make_gather_moe_mlp")))
    assert moe_layers(dense)[0].frequency == moe_layers(gather)[0].frequency
    inputs = random_inputs(dense, 4, seed=9)
    for a, b in zip(run_onnxruntime(dense, inputs), run_onnxruntime(gather, inputs)):
        np.testing.assert_allclose(next(iter(a.values())), next(iter(b.values())), rtol=1e-5, atol=1e-6)


def test_a_classifier_top_k_is_not_a_moe_layer():
    """Softmax -> TopK alone (a classifier's top-k) is left as it is, with the reason noted."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32), "w")
    k = numpy_helper.from_array(np.array([2], dtype=np.int64), "k")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["logits"]), helper.make_node("Softmax", ["logits"], ["p"]),
         helper.make_node("TopK", ["p", "k"], ["values", "indices"])], "top_k",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("values", onnx.TensorProto.FLOAT, [1, 2]),
         helper.make_tensor_value_info("indices", onnx.TensorProto.INT64, [1, 2])], [w, k])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    result, context = partition(model)
    assert result is model and not moe_layers(result)
    notes = [n if isinstance(n, str) else n["message"] for n in context.take_notes()]
    assert any(n.startswith("not a MoE layer") for n in notes) and "no mixture-of-experts layer found" in notes


def test_partitioning_twice_changes_nothing(moe_onnx):
    once, _ = partition(onnx.load(moe_onnx("make_moe_mlp")))
    twice, context = partition(once)
    assert twice is once
    assert "already partitioned" in str(context.take_notes())
