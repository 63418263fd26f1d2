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
    """onnx_ir's IdentityEliminationPass, except that it keeps ``y = Identity(x)`` when y is a graph
    output and x cannot simply be renamed to y, which is what onnx_ir (1.1) does there:
    - x is a graph output too: the renamed value is listed twice, so output x disappears (found by
      differential fuzzing: two chained Reshapes, both outputs);
    - x is not computed in y's graph: an ``If``/``Loop`` branch returning a value of the outer
      graph (a real export's ``then: y = Identity(a)``); renaming the outer value leaves the branch
      output produced by no node of the branch, which the checker rejects."""

    class KeepOutputs(common.IdentityEliminationPass):
        def _try_eliminate_identity_node(self, node) -> bool:
            x = node.inputs[0] if len(node.inputs) == 1 else None
            if node.op_type == "Identity" and x is not None and \
                    any(y.is_graph_output() for y in node.outputs) and \
                    (x.is_graph_output() or not _computed_in(x, node.graph)):
                return False
            return super()._try_eliminate_identity_node(node)

    return KeepOutputs()


def _computed_in(value, graph) -> bool:
    """Whether a node of ``graph`` itself (not an outer graph, not an input) produces ``value``."""
    producer = value.producer()
    return producer is not None and producer.graph is graph
