"""Dead-code elimination: nodes whose outputs no graph output depends on, ``Identity`` nodes, and
initializers nobody reads are removed (the classic mark-and-sweep from graph outputs). Exact."""

from __future__ import annotations

import onnx

import edgekit


@edgekit.model_pass("eliminate-dead-code", atol=0.0, rtol=0.0)
def eliminate_dead_code(model: onnx.ModelProto, context: edgekit.BuildContext) -> onnx.ModelProto:
    """Remove Identity nodes, unused nodes and unused initializers."""
    import onnx_ir as ir
    import onnx_ir.passes.common as common

    ir_model = ir.serde.deserialize_model(model)
    before_nodes = len(ir_model.graph)
    before_inits = len(ir_model.graph.initializers)
    _identity_elimination(common)(ir_model)
    common.RemoveUnusedNodesPass()(ir_model)
    common.RemoveInitializersFromInputsPass()(ir_model)
    removed_nodes = before_nodes - len(ir_model.graph)
    removed_inits = before_inits - len(ir_model.graph.initializers)
    if removed_nodes or removed_inits:
        context.note("removed dead code", nodes=removed_nodes, initializers=removed_inits)
    return ir.serde.serialize_model(ir_model)


def _identity_elimination(common):
    """onnx_ir's IdentityEliminationPass, except that it keeps ``y = Identity(x)`` when x and y are
    both graph outputs: onnx_ir (1.1) renames x to y there and lists that one value twice, so
    output x disappears (found by differential fuzzing: two chained Reshapes, both outputs)."""

    class KeepOutputs(common.IdentityEliminationPass):
        def _try_eliminate_identity_node(self, node) -> bool:
            x = node.inputs[0] if len(node.inputs) == 1 else None
            if node.op_type == "Identity" and x is not None and x.is_graph_output() and \
                    all(y.is_graph_output() for y in node.outputs):
                return False
            return super()._try_eliminate_identity_node(node)

    return KeepOutputs()
