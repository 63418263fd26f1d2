"""ONNX → Relax import, and the check that refuses ops TVM's ONNX importer cannot read.

The check runs before anything is compiled: it reads the importer's own converter table
(``tvm.relax.frontend.onnx``) so the list of supported ops is TVM's, not a copy that drifts.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import edgekit

if TYPE_CHECKING:
    import onnx


@lru_cache(maxsize=1)
def importer_ops() -> frozenset[str]:
    """ONNX op types (default domain) TVM's Relax ONNX importer converts."""
    from edgekit.compiler.requires import require_tvm

    require_tvm()  # every check of a TVM build starts here: a missing TVM is a usage error
    from tvm.relax.frontend.onnx import onnx_frontend

    return frozenset(onnx_frontend._get_convert_map())


def first_unsupported(model: onnx.ModelProto, supported: set[str] | frozenset[str]):
    """The first node whose op the importer lacks, or None."""
    from edgekit.model import op_key

    for node in model.graph.node:
        if op_key(node) not in supported:
            return node
    return None


def unsupported_error(node, context: edgekit.BuildContext, backend_name: str) -> edgekit.BuildError:
    """A one-line error naming node and op, suggesting every other registered back end that runs it
    on this target (e.g. ``mcu-c`` for LSTM on Cortex-M, ``onnxruntime`` on the host)."""
    from edgekit.model import op_key

    op = op_key(node)
    others = []
    for name, backend in sorted(context.registry.backends.items()):
        if name == backend_name:
            continue
        try:
            if op in backend.supported_ops(context.target):
                others.append(name)
        except Exception:  # a back end that cannot answer for this target simply is no suggestion
            continue
    hint = (f"; build it with --backend {' or --backend '.join(others)}" if others
            else "; no registered back end supports it on this target")
    return edgekit.BuildError(
        f"node '{node.name or '<unnamed>'}' (op {op}) is not supported by TVM's ONNX importer "
        f"(back end '{backend_name}', target '{context.target.name}'){hint}")


def import_onnx(model: onnx.ModelProto):
    """The model as a Relax IRModule with weights bound as constants and static input shapes."""
    from tvm.relax.frontend.onnx import from_onnx

    from edgekit.model import graph_inputs, tensor_dims

    shapes = {}
    for value in graph_inputs(model):
        dims = tensor_dims(value)
        if not all(isinstance(d, int) for d in dims):
            raise edgekit.UsageError(f"input '{value.name}' has a dynamic shape {dims}; "
                                     "fix it with --input-shape NAME=1,3,32,32")
        shapes[value.name] = dims
    try:
        return from_onnx(unaliased_outputs(model), shape_dict=shapes)
    except Exception as exc:  # the importer fails with assorted exception types
        from edgekit.errors import one_line

        raise edgekit.BuildError(f"TVM's ONNX importer failed: {one_line(exc)}") from exc


#: Ops that compute nothing when their output has their input's shape: the Relax pipeline drops
#: them, and their output is then the very tensor they read.
ALIAS_OPS = ("Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze")
NEGATIVE_ZERO = "edgekit_negative_zero"


def unaliased_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with an exact copy, ``y + (-0.0)``, before every float graph output that would be no
    kernel's result: one that is (through :data:`ALIAS_OPS` of unchanged shape) a graph input, a
    constant, or the same tensor as an earlier graph output. The C driver passes each output
    buffer to the kernel computing it, so such an output had none (a build error), or shared one
    with another output (one of the two left unwritten). Found by differential fuzzing."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    shapes = _static_shapes(model)
    producers = {o: n for n in graph.node for o in n.output}
    sources = {v.name for v in graph.input} | {t.name for t in graph.initializer}

    def root(name: str) -> str:
        node = producers.get(name)
        while node is not None and node.op_type in ALIAS_OPS and node.input and \
                shapes.get(node.input[0]) is not None and shapes.get(node.input[0]) == shapes.get(name):
            name = node.input[0]
            node = producers.get(name)
        return name

    roots, aliased = set(), []
    for out in graph.output:
        r = root(out.name)
        float32 = out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        if (r in sources or r in roots) and out.name in producers and float32:
            aliased.append(out.name)
        roots.add(r)
    if not aliased:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for name in aliased:
        inner = f"{name}__edgekit_aliased"
        for node in copy.graph.node:
            node.input[:] = [inner if i == name else i for i in node.input]
            node.output[:] = [inner if o == name else o for o in node.output]
        copy.graph.node.append(helper.make_node("Add", [inner, NEGATIVE_ZERO], [name], name=f"{name}__edgekit_copy"))
    copy.graph.initializer.append(numpy_helper.from_array(np.array(-0.0, np.float32), NEGATIVE_ZERO))
    return copy


def _static_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Every tensor's shape that shape inference knows statically (name -> dims)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # no inferred shapes: the declared ones (then no alias is seen through an op)
        inferred = model
    values = [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    for v in values:
        dims = v.type.tensor_type.shape.dim
        if v.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[v.name] = [d.dim_value for d in dims]
    return shapes
