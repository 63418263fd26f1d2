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
        return from_onnx(model, shape_dict=shapes)
    except Exception as exc:  # the importer fails with assorted exception types
        from edgekit.errors import one_line

        raise edgekit.BuildError(f"TVM's ONNX importer failed: {one_line(exc)}") from exc
