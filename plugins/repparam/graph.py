"""The small graph matcher the re-parameterization passes share.

:class:`GraphView` indexes a model (producers, consumers, constants, static shapes) and applies
replacements that keep value names, so shapes inferred once stay valid for the whole pass. Passes
ask it for *linear units* (a Conv / ConvTranspose / Gemm / MatMul with constant weights, plus the
bias ``Add`` an exporter emits after a MatMul) and *affines* (a Mul/Add/Sub by a per-channel
constant, an inference BatchNormalization) instead of walking node lists themselves.

Only initializers (that are not also graph inputs) and ``Constant`` nodes count as constants: a
Mul or Add by a computed tensor is never folded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgekit.model import fresh_name, infer_shapes, node_macs, value_shapes
from edgekit.plugins.repparam import algebra
from edgekit.plugins.repparam.algebra import CONV, CONVTRANSPOSE, DENSE, Affine, ConvGeometry, Linear

WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass
class Unit:
    """A linear layer found in the graph: its nodes (in order), data input and output value."""

    linear: Linear
    nodes: list[onnx.NodeProto]
    input: str
    output: str
    op: str  # the weight node's op type: the form to emit again
    dtype: np.dtype
    trans_b: bool = False  # Gemm stored W transposed

    @property
    def head(self) -> onnx.NodeProto:
        return self.nodes[0]

    def channel_axis(self, rank: int) -> int:
        """The channel axis of the layer's rank-``rank`` input and output: last for dense layers, else 1."""
        return rank - 1 if self.linear.kind == DENSE else 1


@dataclass
class AffineNode:
    """A node computing a per-channel affine of ``input``: Mul/Add/Sub by a constant or an inference
    BatchNormalization. :meth:`along` gives the affine for the channel axis of the adjacent layer."""

    node: onnx.NodeProto
    input: str
    shape: list[int]
    constant: np.ndarray | None = None  # Mul/Add/Sub
    fixed: Affine | None = None  # BatchNormalization: channel axis 1

    def along(self, axis: int) -> Affine | None:
        axis %= len(self.shape)
        channels = self.shape[axis]
        if self.fixed is not None:
            return self.fixed if axis == 1 and len(self.fixed.scale) == channels else None
        vector = algebra.per_channel(self.constant, len(self.shape), axis, channels)
        if vector is None:
            return None
        ones, zeros = np.ones(channels), np.zeros(channels)
        return {"Mul": Affine(vector, zeros), "Add": Affine(ones, vector),
                "Sub": Affine(ones, -vector)}[self.node.op_type]


@dataclass
class Findings:
    """What a pass matched and skipped, turned into report notes once at the end."""

    matched: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    skipped: dict[tuple[str, str], None] = field(default_factory=dict)

    def match(self, what: str) -> None:
        self.matched[what] += 1

    def skip(self, node: onnx.NodeProto, reason: str) -> None:
        self.skipped[(node.name or node.output[0], reason)] = None

    def report(self, context, graph: onnx.GraphProto) -> None:
        """Notes for the report: matches with counts, then skips of nodes still in the graph (a node
        skipped once may have been folded by a later rewrite)."""
        for what, count in self.matched.items():
            context.note(what, matches=count)
        live = {key for node in graph.node for key in (node.name, node.output[0] if node.output else "")}
        for node, reason in self.skipped:
            if node in live:
                context.note(f"skipped: {reason}", node=node)


def _subgraph_reads(node: onnx.NodeProto) -> list[str]:
    """Outer-scope names the subgraphs of an If/Loop/Scan node may read (their node inputs)."""
    names: list[str] = []
    for attribute in node.attribute:
        graphs = [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)
        for graph in graphs:
            for inner in graph.node:
                names.extend(inner.input)
                names.extend(_subgraph_reads(inner))
    return names


class GraphView:
    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.graph = model.graph
        self.shapes = value_shapes(infer_shapes(model, strict=False))
        self.findings = Findings()
        # Edits happen on this list; the graph proto is written once, by finish(): rewriting protobuf
        # containers per match would copy every weight each time.
        self.nodes: list[onnx.NodeProto] = list(self.graph.node)
        self.outputs = {o.name for o in self.graph.output}
        self.graph_inputs = {i.name for i in self.graph.input}
        self.initializers = {t.name: t for t in self.graph.initializer if t.name not in self.graph_inputs}
        self._initializer_names = {t.name for t in self.graph.initializer}
        self._constants: dict[str, np.ndarray | None] = {}
        self._touched: set[str] = set()
        self.changed = False
        self._index()

    # -- indexing ------------------------------------------------------------------------------------

    def _index(self) -> None:
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        self.names = self._initializer_names | self.graph_inputs  # every name in use, for fresh()
        for node in self.nodes:
            self._link(node)

    def _link(self, node: onnx.NodeProto) -> None:
        for name in node.output:
            self.producer[name] = node
        for name in dict.fromkeys([*node.input, *_subgraph_reads(node)]):
            if name:
                self.consumers[name].append(node)
        self.names.update(node.output)
        self.names.update(node.input)

    def _unlink(self, node: onnx.NodeProto) -> None:
        for name in node.output:
            if self.producer.get(name) is node:
                del self.producer[name]
        for name in dict.fromkeys([*node.input, *_subgraph_reads(node)]):
            if name:
                self.consumers[name] = [c for c in self.consumers[name] if c is not node]

    def const(self, name: str) -> np.ndarray | None:
        """The value of a floating-point constant input, else None. (Cached: a rewrite never changes an
        initializer in place, it writes a new one under a fresh name.)"""
        if name not in self._constants:
            self._constants[name] = self._read_const(name)
        return self._constants[name]

    def _read_const(self, name: str) -> np.ndarray | None:
        array = None
        if name in self.initializers:
            array = numpy_helper.to_array(self.initializers[name])
        elif name in self.producer and self.producer[name].op_type == "Constant":
            attrs = self.attrs(self.producer[name])
            if "value" in attrs:
                array = numpy_helper.to_array(attrs["value"])
        if array is None or not np.issubdtype(array.dtype, np.floating):
            return None
        return array

    def sole_consumer(self, name: str) -> onnx.NodeProto | None:
        """The one node reading ``name`` when nothing else (another node, a graph output) does."""
        readers = self.consumers.get(name, [])
        if len(readers) != 1 or name in self.outputs:
            return None
        return readers[0]

    def shape(self, name: str) -> list[int] | None:
        dims = self.shapes.get(name)
        return dims if dims is not None and all(isinstance(d, int) and d > 0 for d in dims) else None

    @staticmethod
    def attrs(node: onnx.NodeProto) -> dict:
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def macs(self, nodes: list[onnx.NodeProto]) -> int:
        return sum(node_macs(n, self.shapes) for n in nodes)

    def rewrite_all(self, rewrite_at: Callable[[onnx.NodeProto], bool]) -> None:
        """Call ``rewrite_at`` on every node, in sweeps over the graph, until a sweep changes nothing
        (one rewrite can enable another one earlier in the graph, e.g. the next affine of a chain)."""
        budget = 8 * len(self.nodes) + 64  # each rewrite removes structure, so this is never reached
        changed = True
        while changed:
            changed, index = False, 0
            while index < len(self.nodes):
                if not rewrite_at(self.nodes[index]):
                    index += 1
                    continue
                changed = True  # the list changed around ``index``: look at that position again
                budget -= 1
                if budget < 0:
                    raise RuntimeError("rewrites did not converge (a rule keeps matching its own output)")

    # -- editing -------------------------------------------------------------------------------------

    def fresh(self, hint: str) -> str:
        return fresh_name(hint.replace("/", "_").strip("_") or "repparam", self.names)

    def add_constant(self, array: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        self.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        self.initializers[name] = self.graph.initializer[-1]
        self._initializer_names.add(name)
        return name

    def replace(self, remove: list[onnx.NodeProto], insert: dict[int, list[onnx.NodeProto]]) -> None:
        """Drop ``remove`` and put ``insert[id(anchor)]`` where each anchor node stood (anchors are
        among ``remove``, and each is the last of its group in graph order, so every input of the new
        nodes is already computed there)."""
        removed = {id(n) for n in remove}
        self._touched.update(name for n in remove for name in n.input)
        new_nodes: list[onnx.NodeProto] = []
        for node in self.nodes:
            if id(node) in insert:
                new_nodes.extend(insert[id(node)])
            elif id(node) not in removed:
                new_nodes.append(node)
        self.nodes = new_nodes
        self.changed = True
        for node in remove:
            self._unlink(node)
        for group in insert.values():
            for node in group:
                self._link(node)

    def finish(self) -> onnx.ModelProto:
        """Write the edited nodes into the model; drop initializers the rewrites left unread and shapes
        of values that no longer exist. An unchanged model is returned as it came."""
        if not self.changed:
            return self.model
        nodes = []
        for node in self.nodes:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            nodes.append(copy)
        del self.graph.node[:]
        self.graph.node.extend(nodes)
        live = {name for n in nodes for name in n.output}
        for i in reversed(range(len(self.graph.value_info))):
            if self.graph.value_info[i].name not in live:
                del self.graph.value_info[i]
        still_read = {name for n in nodes for name in [*n.input, *_subgraph_reads(n)]} | self.outputs
        for i in reversed(range(len(self.graph.initializer))):
            name = self.graph.initializer[i].name
            if name in self._touched and name not in still_read:
                del self.graph.initializer[i]
        return self.model

    # -- linear units --------------------------------------------------------------------------------

    def unit_at(self, node: onnx.NodeProto, with_bias_add: bool = True) -> Unit | None:
        """The linear unit whose weight node is ``node`` (and, for a MatMul, the bias Add after it)."""
        if node.op_type not in WEIGHT_OPS or node.domain not in ("", "ai.onnx"):
            return None
        reader = {"Conv": self._conv, "ConvTranspose": self._conv, "Gemm": self._gemm, "MatMul": self._matmul}
        found = reader[node.op_type](node)
        if found is None:
            return None
        linear, dtype, trans_b = found
        unit = Unit(linear, [node], node.input[0], node.output[0], node.op_type, dtype, trans_b)
        if node.op_type == "MatMul" and with_bias_add:
            add = self.sole_consumer(node.output[0])
            bias = self._bias_of_add(add, node.output[0], linear.out_channels) if add is not None else None
            if bias is not None:
                linear.bias, linear.has_bias = bias, True
                unit.nodes.append(add)
                unit.output = add.output[0]
        return unit

    def unit_ending_at(self, value: str) -> Unit | None:
        """The linear unit computing ``value`` (for a MatMul's bias Add, the MatMul and the Add)."""
        node = self.producer.get(value)
        if node is None:
            return None
        if node.op_type == "Add":
            for data in node.input:
                mm = self.producer.get(data)
                if mm is not None and mm.op_type == "MatMul":
                    unit = self.unit_at(mm)
                    if unit is not None and unit.output == value:
                        return unit
            return None
        unit = self.unit_at(node)
        return unit if unit is not None and unit.output == value else None

    def _bias_of_add(self, add: onnx.NodeProto, data: str, channels: int) -> np.ndarray | None:
        if add.op_type != "Add" or len(add.input) != 2:
            return None
        other = add.input[1] if add.input[0] == data else add.input[0]
        constant = self.const(other)
        rank = len(self.shape(data) or [])
        if constant is None or not rank:
            return None
        return algebra.per_channel(constant, rank, rank - 1, channels)

    def _conv(self, node):
        weight = self.const(node.input[1]) if len(node.input) > 1 else None
        if weight is None or weight.ndim < 3:
            return None
        bias = self.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if len(node.input) > 2 and node.input[2] and bias is None:
            return None
        attrs = self.attrs(node)
        rank = weight.ndim - 2
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        pads = tuple(attrs.get("pads", (0,) * (2 * rank)))
        if auto_pad == "VALID":
            pads = (0,) * (2 * rank)
        elif auto_pad not in ("NOTSET", ""):
            pads = None
        geometry = ConvGeometry(tuple(attrs.get("strides", (1,) * rank)), tuple(attrs.get("dilations", (1,) * rank)),
                                pads, int(attrs.get("group", 1)))
        kind = CONV if node.op_type == "Conv" else CONVTRANSPOSE
        out_channels = weight.shape[0] if kind == CONV else weight.shape[1] * geometry.group
        extra = {} if kind == CONV else dict(attrs)
        linear = Linear(kind, algebra.as_float64(weight),
                        algebra.as_float64(bias) if bias is not None else np.zeros(out_channels),
                        bias is not None, geometry, extra)
        return linear, weight.dtype, False

    def _gemm(self, node):
        attrs = self.attrs(node)
        weight = self.const(node.input[1])
        rank = len(self.shape(node.input[0]) or [])
        if weight is None or attrs.get("transA", 0) or weight.ndim != 2 or rank != 2:
            return None
        trans_b = bool(attrs.get("transB", 0))
        w = algebra.as_float64(weight.T if trans_b else weight) * attrs.get("alpha", 1.0)
        bias, has_bias = np.zeros(w.shape[1]), False
        if len(node.input) > 2 and node.input[2]:
            c = self.const(node.input[2])
            vector = algebra.per_channel(c, 2, 1, w.shape[1]) if c is not None else None
            if vector is None:
                return None
            bias, has_bias = vector * attrs.get("beta", 1.0), True
        return Linear(DENSE, w, bias, has_bias), weight.dtype, trans_b

    def _matmul(self, node):
        weight = self.const(node.input[1])
        if weight is None or weight.ndim != 2 or len(self.shape(node.input[0]) or []) < 2:
            return None
        return Linear(DENSE, algebra.as_float64(weight), np.zeros(weight.shape[1])), weight.dtype, False

    def emit(self, linear: Linear, source: str, output: str, like: Unit) -> list[onnx.NodeProto]:
        """Nodes computing ``linear`` from ``source`` into ``output``, in the form of ``like``."""
        dtype = like.dtype
        hint = like.head.name or like.output
        weight_name = self.add_constant((linear.weight.T if like.trans_b else linear.weight).astype(dtype),
                                        f"{hint}_weight")
        bias_name = self.add_constant(linear.bias.astype(dtype), f"{hint}_bias") if linear.has_bias else None
        name = self.fresh(hint) if like.head.name else ""
        if linear.kind == DENSE and like.op == "Gemm":
            inputs = [source, weight_name] + ([bias_name] if bias_name else [])
            return [helper.make_node("Gemm", inputs, [output], name=name, transB=int(like.trans_b))]
        if linear.kind == DENSE:
            if not bias_name:
                return [helper.make_node("MatMul", [source, weight_name], [output], name=name)]
            product = self.fresh(f"{hint}_matmul")
            if output in self.shapes:  # later matches read this value's shape (the bias Add's rank)
                self.shapes[product] = self.shapes[output]
            return [helper.make_node("MatMul", [source, weight_name], [product], name=name),
                    helper.make_node("Add", [product, bias_name], [output], name=self.fresh(f"{hint}_bias_add"))]
        inputs = [source, weight_name] + ([bias_name] if bias_name else [])
        if linear.kind == CONVTRANSPOSE:
            return [helper.make_node("ConvTranspose", inputs, [output], name=name, **linear.extra)]
        g = linear.geometry
        return [helper.make_node("Conv", inputs, [output], name=name, kernel_shape=list(linear.kernel),
                                 strides=list(g.strides), dilations=list(g.dilations), pads=list(g.pads),
                                 group=g.group)]

    # -- affines -------------------------------------------------------------------------------------

    def affine_at(self, node: onnx.NodeProto) -> AffineNode | None:
        """The per-channel constant affine computed by ``node``, if it is one."""
        if node.domain not in ("", "ai.onnx"):
            return None
        if node.op_type == "BatchNormalization":
            return self._batchnorm(node)
        if node.op_type not in ("Mul", "Add", "Sub") or len(node.input) != 2:
            return None
        for data_index in (0, 1):
            data, other = node.input[data_index], node.input[1 - data_index]
            constant = self.const(other)
            if constant is None or self.const(data) is not None:
                continue
            if node.op_type == "Sub" and data_index == 1:
                return None  # c - x negates x: not folded
            shape = self.shape(data)
            if not shape or self.shape(node.output[0]) != shape:
                return None  # the constant broadcasts the value to a larger shape
            return AffineNode(node, data, shape, constant=constant)
        return None

    def _batchnorm(self, node: onnx.NodeProto) -> AffineNode | None:
        attrs = self.attrs(node)
        if attrs.get("training_mode", 0) or len(node.output) != 1:
            return None
        params = [self.const(name) for name in node.input[1:5]]
        shape = self.shape(node.input[0])
        if any(p is None for p in params) or not shape or len(shape) < 2:
            return None
        return AffineNode(node, node.input[0], shape,
                          fixed=algebra.batchnorm_affine(*params, attrs.get("epsilon", 1e-5)))
