"""Constant folding (classic compiler constant propagation, as in onnxscript's optimizer).

Rewrite: every node whose inputs are all constants (initializers or ``Constant`` nodes) is evaluated
at build time and replaced by an initializer holding its result; ``Constant`` nodes become
initializers. Shape arithmetic (Shape → Gather → Concat → Reshape), casts of weights and weights
stored as Constant nodes therefore never reach a back end. Exact: the folded values are what the
graph would compute.
"""

from __future__ import annotations

import onnx

import edgekit

# Larger folded tensors would bloat the model with precomputed intermediates (e.g. an expanded
# broadcast); weights up to this size are folded, which covers MLPerf Tiny and typical MCU models.
OUTPUT_SIZE_LIMIT = 16 * 1024 * 1024


# Folding evaluates sub-graphs with onnx's reference implementation (numpy), whose summation order
# differs from onnxruntime's: a folded ReduceSum can land one float32 ulp away, which at a near-zero
# output is ~5e-7 absolute. That is round-off, not a change of the computation.
@edgekit.model_pass("fold-constants", atol=1e-6, rtol=1e-6)
def fold_constants(model: onnx.ModelProto, context: edgekit.BuildContext) -> onnx.ModelProto:
    """Evaluate constant sub-graphs at build time and store the results as initializers."""
    import onnx_ir as ir
    import onnx_ir.passes.common as common
    from onnxscript.optimizer import fold_constants as fold

    ir_model = ir.serde.deserialize_model(model)
    nodes_before = len(ir_model.graph)
    fold(ir_model, onnx_shape_inference=True, output_size_limit=OUTPUT_SIZE_LIMIT)
    common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(ir_model)
    common.RemoveUnusedNodesPass()(ir_model)
    if len(ir_model.graph) != nodes_before:
        context.note("folded constant nodes", nodes_removed=nodes_before - len(ir_model.graph))
    return ir.serde.serialize_model(ir_model)
