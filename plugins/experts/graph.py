"""The graph queries the experts passes share: who produces and reads a tensor, the ancestors and
descendants of tensors (as node positions), constants, and onnxruntime runs that expose
intermediate tensors."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgekit.model import infer_shapes, value_shapes


class Graph:
    """An index over ``model.graph`` (read-only: rebuild it after changing the graph)."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.nodes = list(model.graph.node)
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        for i, node in enumerate(self.nodes):
            for out in node.output:
                if out:
                    self.producer[out] = i
            for inp in node.input:
                if inp:
                    self.consumers.setdefault(inp, []).append(i)
        self.initializers = {t.name: t for t in model.graph.initializer}
        self.graph_outputs = {o.name for o in model.graph.output}
        self.shapes = value_shapes(infer_shapes(model, strict=False))

    def const(self, name: str) -> np.ndarray | None:
        """The value of an initializer or of a Constant node's output, else None."""
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        i = self.producer.get(name)
        if i is not None and self.nodes[i].op_type == "Constant":
            return numpy_helper.to_array(self.nodes[i].attribute[0].t) \
                if self.nodes[i].attribute[0].name == "value" else None
        return None

    def is_const(self, name: str) -> bool:
        return name in self.initializers or (name in self.producer and
                                             self.nodes[self.producer[name]].op_type == "Constant")

    def dynamic_inputs(self, i: int) -> list[str]:
        return [n for n in self.nodes[i].input if n and not self.is_const(n)]

    def ancestors(self, tensors: Iterable[str]) -> set[int]:
        """Positions of the nodes the tensors are computed from (their producers included)."""
        seen: set[int] = set()
        pending = [self.producer[t] for t in tensors if t in self.producer]
        while pending:
            i = pending.pop()
            if i in seen:
                continue
            seen.add(i)
            pending.extend(self.producer[n] for n in self.nodes[i].input if n in self.producer)
        return seen

    def descendants(self, tensors: Iterable[str]) -> set[int]:
        """Positions of the nodes that read the tensors, directly or through other nodes."""
        seen: set[int] = set()
        pending = [c for t in tensors for c in self.consumers.get(t, [])]
        while pending:
            i = pending.pop()
            if i in seen:
                continue
            seen.add(i)
            pending.extend(c for out in self.nodes[i].output for c in self.consumers.get(out, []))
        return seen

    def attrs(self, i: int) -> dict:
        return {a.name: helper.get_attribute_value(a) for a in self.nodes[i].attribute}

    def label(self, i: int) -> str:
        node = self.nodes[i]
        return f"'{node.name or node.output[0]}' ({node.op_type})"

    def static_shape(self, name: str) -> tuple[int, ...] | None:
        dims = self.shapes.get(name)
        if dims is None or not all(isinstance(d, int) and d > 0 for d in dims):
            return None
        return tuple(dims)


def run_exposing(model: onnx.ModelProto, tensors: list[str],
                 samples: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """onnxruntime outputs of ``model`` with ``tensors`` added as graph outputs, per sample."""
    from edgekit.verify import run_onnxruntime

    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    inferred = infer_shapes(exposed, strict=False)
    infos = {v.name: v for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    present = {o.name for o in exposed.graph.output}
    for name in tensors:
        if name not in present:
            exposed.graph.output.append(infos[name] if name in infos else
                                        helper.make_empty_tensor_value_info(name))
            present.add(name)
    return run_onnxruntime(exposed, samples, "model (MoE recognition)")


def topological_sort(model: onnx.ModelProto) -> None:
    """Reorder ``model``'s nodes (in place) so every node follows the producers of its inputs,
    keeping the existing order where it is already valid."""
    nodes = list(model.graph.node)
    available = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer} | {""}
    ordered, pending = [], nodes
    while pending:
        progress, rest = False, []
        for node in pending:
            if all(n in available for n in node.input):
                ordered.append(node)
                available.update(node.output)
                progress = True
            else:
                rest.append(node)
        if not progress:
            raise ValueError(f"graph has a cycle at node '{rest[0].name}'")
        pending = rest
    del model.graph.node[:]
    model.graph.node.extend(ordered)


def replace_nodes(model: onnx.ModelProto, old_nodes: set[int], nodes: list[onnx.NodeProto],
                  initializers: list[onnx.TensorProto]) -> None:
    """Remove the nodes at positions ``old_nodes``, add ``nodes`` and ``initializers`` (in place;
    the graph is left topologically ordered)."""
    graph = model.graph
    kept = [n for i, n in enumerate(graph.node) if i not in old_nodes]
    del graph.node[:]
    graph.node.extend(kept + nodes)
    graph.initializer.extend(initializers)
    topological_sort(model)


def remove_unused(model: onnx.ModelProto) -> None:
    """Drop (in place) nodes and initializers no graph output depends on."""
    needed = {o.name for o in model.graph.output}
    kept = []
    for node in reversed(list(model.graph.node)):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(n for n in node.input if n)
    del model.graph.node[:]
    model.graph.node.extend(reversed(kept))
    inits = [t for t in model.graph.initializer if t.name in needed]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
