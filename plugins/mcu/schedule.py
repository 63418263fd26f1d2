"""The schedule: an ONNX graph lowered to one kernel call per layer.

:func:`lower` walks the prepared graph in its (topological) node order and asks the op's lowering
function (see :mod:`.optable`) to append :class:`Layer` objects, declare aliases (Reshape and
friends share their input's storage: no kernel, no copy) and register constants (weights). Fusion
of a Conv/Gemm/MatMul/binary op with a following Relu/Clip is decided here
(:meth:`Lowerer.take_fused_activation`): the activation node is consumed and its clamp range goes
into the producing kernel's ``act_min``/``act_max``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from edgekit.errors import BuildError
from edgekit.plugins.mcu.graph import GraphView, attrs_of

FLOAT = onnx.TensorProto.FLOAT
INF = math.inf

#: Element types a tensor of the schedule can have: ONNX type -> (name, C type, bytes).
TENSOR_TYPES = {onnx.TensorProto.FLOAT: ("float32", "float", 4),
                onnx.TensorProto.INT8: ("int8", "int8_t", 1),
                onnx.TensorProto.UINT8: ("uint8", "uint8_t", 1),
                onnx.TensorProto.INT16: ("int16", "int16_t", 2),
                onnx.TensorProto.INT32: ("int32", "int32_t", 4)}
C_TYPES = {name: ctype for name, ctype, _ in TENSOR_TYPES.values()}
ITEM_BYTES = {name: size for name, _, size in TENSOR_TYPES.values()}


@dataclass(frozen=True)
class ConstRef:
    """A params-struct field that points at a constant array (e.g. Concat's block table)."""

    key: str


@dataclass(frozen=True)
class CSymbol:
    """A params-struct field naming a generated C object ``<prefix>_<suffix>`` (e.g. a MoE layer's
    expert table): the prefix is known only when the C is emitted."""

    suffix: str


@dataclass
class Const:
    """A constant array emitted into ``<name>_weights.c``."""

    key: str
    array: np.ndarray  # float32 or int32, C order
    node: str          # ONNX node it belongs to (for the comment)
    c_name: str = ""


@dataclass
class Tensor:
    """An activation tensor. ``kind``: input, output or arena; ``dtype``: a key of ITEM_BYTES."""

    name: str
    shape: tuple[int, ...]
    kind: str = "arena"
    index: int = -1          # position among the graph inputs/outputs
    c_name: str = ""
    dtype: str = "float32"

    @property
    def count(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return ITEM_BYTES[self.dtype] * self.count

    @property
    def ctype(self) -> str:
        return C_TYPES[self.dtype]


@dataclass
class Layer:
    """One kernel call. ``args`` are, in call order: ("in", tensor), ("out", tensor),
    ("const", key), ("null",), ("scratch",), ("in_list", [tensors])."""

    node: str
    op: str
    family: str
    function: str
    params_type: str | None
    params: dict[str, Any]
    args: list[tuple]
    summary: str = ""
    macs: int = 0
    scratch_bytes: int = 0
    inplace: tuple[str, str] | None = None  # (output, input) the planner may put in one buffer
    # the kernel reads element i before writing output element i, last to first, so its (narrower)
    # input may start at the output's first byte
    widens_in_place: bool = False
    index: int = -1

    @property
    def inputs(self) -> list[str]:
        names = []
        for a in self.args:
            if a[0] == "in":
                names.append(a[1])
            elif a[0] == "in_list":
                names.extend(a[1])
        return names

    @property
    def outputs(self) -> list[str]:
        return [a[1] for a in self.args if a[0] == "out"]


@dataclass
class Schedule:
    layers: list[Layer] = field(default_factory=list)
    tensors: dict[str, Tensor] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # tensor -> tensor whose storage it shares
    consts: dict[str, Const] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    families: set[str] = field(default_factory=set)
    source_ops: set[str] = field(default_factory=set)  # op types of the lowered (folded) graph
    int8_nodes: list[str] = field(default_factory=list)  # nodes that run as int8 kernels
    int8_arithmetic: str = "onnx"  # how the int8 kernels round (qmath.ARITHMETICS)
    # int8 inputs/outputs (option io=int8): tensor -> (scale, zero point), and the graph tensor
    # (float, outside the library) each stands for
    io_quant: dict[str, tuple[float, int]] = field(default_factory=dict)
    io_names: dict[str, str] = field(default_factory=dict)
    moe: list = field(default_factory=list)  # ops_moe.LoweredMoe per mixture-of-experts layer

    def root(self, name: str) -> str:
        while name in self.aliases:
            name = self.aliases[name]
        return name


def dims_str(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


class Lowerer:
    """State of one lowering: the graph view, the schedule under construction, fused nodes."""

    def __init__(self, view: GraphView, target_name: str = "", soft_float: bool = False,
                 int8_arithmetic: str = "onnx"):
        self.view = view
        self.target_name = target_name
        # how the int8 kernels round (a name of qmath.ARITHMETICS)
        self.int8_arithmetic = int8_arithmetic
        # the target has no FPU: float <-> int8 boundaries take the integer-only kernels
        self.soft_float = soft_float
        self.schedule = Schedule()
        self.skipped: set[int] = set()  # id() of nodes consumed by fusion
        # int8 tensors passed out as graph outputs (io=int8) in place of their dequantized graph output
        self.int8_outputs: set[str] = set()
        self._index = {id(n): i for i, n in enumerate(view.model.graph.node)}

    def position(self, node: onnx.NodeProto) -> int:
        """The node's index in the graph's (topological) node order; -1 if it is not a graph node."""
        return self._index.get(id(node), -1)

    def node_name(self, node: onnx.NodeProto) -> str:
        """The node's name, or '<op>_<position in the graph>' for an unnamed node."""
        return node.name or f"{node.op_type}_{self._index.get(id(node), 0)}"

    # -- errors ------------------------------------------------------------------------------
    def error(self, node: onnx.NodeProto, why: str) -> BuildError:
        where = f" on target '{self.target_name}'" if self.target_name else ""
        outputs = [o for o in node.output if o]
        label = f"'{node.name}'" if node.name else \
            f"(unnamed, output '{outputs[0] if outputs else '?'}')"
        return BuildError(f"node {label} (op {node.op_type}){where}: {why}")

    def expect(self, node: onnx.NodeProto, condition: bool, why: str) -> None:
        """Refuse inconsistent constants that shape inference lets through (a kernel would read
        past the end of an array)."""
        if not condition:
            raise self.error(node, why)

    # -- tensors -----------------------------------------------------------------------------
    def shape(self, name: str, node: onnx.NodeProto | None = None) -> tuple[int, ...]:
        return self.view.shape(name, node)

    def require_float(self, node: onnx.NodeProto, *names: str) -> None:
        for n in names:
            if n and self.view.dtypes.get(n, FLOAT) != FLOAT:
                dtype = onnx.helper.tensor_dtype_to_np_dtype(self.view.dtypes[n])
                raise self.error(node, f"tensor '{n}' is {dtype}; the mcu-c back end computes "
                                       f"{node.op_type} in float32 (int8 only inside QDQ groups: "
                                       f"DequantizeLinear -> op -> QuantizeLinear)")

    def kernel_suffix(self, node: onnx.NodeProto, *names: str) -> str:
        """'f32' or 's8': the element type of a data-movement op's tensors (all the same)."""
        kinds = {self.tensor(n).dtype for n in names if n}
        if kinds == {"int8"}:
            return "s8"
        self.require_float(node, *names)
        return "f32"

    def tensor(self, name: str) -> Tensor:
        t = self.schedule.tensors.get(name)
        if t is None:
            elem = self.view.dtypes.get(name, FLOAT)
            t = Tensor(name, self.view.shapes.get(name, ()),
                       dtype=TENSOR_TYPES[elem][0] if elem in TENSOR_TYPES else "float32")
            self.schedule.tensors[name] = t
        return t

    def operand(self, node: onnx.NodeProto, name: str, kind: str = "in") -> tuple:
        """An input argument: a constant array or an activation tensor."""
        if self.view.is_const(name):
            return ("const", self.const(name, self.view.const(name).astype(np.float32), node))
        self.tensor(name)
        return (kind, name)

    def const(self, key: str, array: np.ndarray, node: onnx.NodeProto, dtype=np.float32) -> str:
        arr = np.ascontiguousarray(np.asarray(array, dtype=dtype))
        existing = self.schedule.consts.get(key)
        if existing is not None and (existing.array.shape != arr.shape or
                                     existing.array.dtype != arr.dtype or
                                     not np.array_equal(existing.array, arr, equal_nan=True)):
            key = f"{key}__{self.node_name(node)}"
            n = 2
            base = key
            while key in self.schedule.consts:
                key, n = f"{base}_{n}", n + 1
        if key not in self.schedule.consts:
            self.schedule.consts[key] = Const(key, arr, self.node_name(node))
        return key

    # -- layers ------------------------------------------------------------------------------
    def add(self, node: onnx.NodeProto, family: str, function: str, params_type: str | None,
            params: dict[str, Any], args: list[tuple], summary: str = "", macs: int = 0,
            scratch_bytes: int = 0, inplace: tuple[str, str] | None = None,
            op: str | None = None) -> Layer:
        for a in args:
            if a[0] in ("in", "out"):
                self.tensor(a[1])
            elif a[0] == "in_list":
                for n in a[1]:
                    self.tensor(n)
        layer = Layer(node=self.node_name(node),
                      op=op or node.op_type, family=family, function=function,
                      params_type=params_type, params=params, args=args, summary=summary,
                      macs=int(macs), scratch_bytes=int(scratch_bytes), inplace=inplace)
        layer.index = len(self.schedule.layers)
        self.schedule.layers.append(layer)
        self.schedule.families.add(family)
        return layer

    def alias(self, node: onnx.NodeProto, out: str, src: str) -> None:
        """``out`` is ``src`` reinterpreted (same bytes): no kernel, unless a copy is unavoidable
        (the output is a graph output, or the source is a graph input/constant)."""
        if self.view.is_const(src):
            raise self.error(node, "constant input to a view op was not folded")
        if out in self.view.graph_outputs or out in self.int8_outputs:  # its own (caller's) buffer
            self.copy(node, src, out)
            return
        self.tensor(src)
        self.tensor(out)
        self.schedule.aliases[out] = src

    def copy(self, node: onnx.NodeProto, src: str, out: str) -> None:
        n = int(np.prod(self.shape(out, node), dtype=np.int64))
        function = {"float32": "ek_copy_f32", "int8": "ek_copy_s8"}.get(self.tensor(src).dtype)
        if function is None:
            raise self.error(node, f"cannot copy a {self.tensor(src).dtype} tensor")
        self.add(node, "ek_transform", function, "ek_copy_params", {"size": n},
                 [self.operand(node, src), ("out", out)],
                 summary=f"{dims_str(self.shape(src, node))} -> {dims_str(self.shape(out, node))} copy")

    # -- fusion ------------------------------------------------------------------------------
    def take_fused_activation(self, node: onnx.NodeProto) -> tuple[float, float, str, str]:
        """If the only consumer of ``node``'s output is Relu or a constant Clip, consume it and
        return (act_min, act_max, final output, op suffix); else (-inf, inf, output, "")."""
        out = node.output[0]
        users = self.view.consumers.get(out, [])
        if len(users) != 1 or out in self.view.graph_outputs:
            return -INF, INF, out, ""
        act = users[0]
        if act.op_type == "Relu":
            lo, hi = 0.0, INF
        elif act.op_type == "Clip":
            bounds = clip_bounds(self, act)
            if bounds is None:
                return -INF, INF, out, ""
            lo, hi = bounds
        else:
            return -INF, INF, out, ""
        self.skipped.add(id(act))
        return lo, hi, act.output[0], "+" + act.op_type


def clip_bounds(lw: Lowerer, node: onnx.NodeProto) -> tuple[float, float] | None:
    """Clip's [min, max] from attributes (opset < 11) or constant inputs; None if not constant."""
    attrs = attrs_of(node)
    if lw.view.opset < 11:
        return float(attrs.get("min", -3.4028234663852886e38)), float(attrs.get("max", 3.4028234663852886e38))
    lo, hi = -INF, INF
    for i, name in ((1, "min"), (2, "max")):
        if len(node.input) > i and node.input[i]:
            v = lw.view.const(node.input[i])
            if v is None:
                return None
            if i == 1:
                lo = float(np.float32(v.reshape(-1)[0]))
            else:
                hi = float(np.float32(v.reshape(-1)[0]))
    return lo, hi


def model_int8_arithmetic(model) -> str:
    """The int8 arithmetic a front end asked for in the model's metadata (qmath.METADATA_KEY), else onnx."""
    from edgekit.plugins.mcu import qmath

    value = next((p.value for p in model.metadata_props if p.key == qmath.METADATA_KEY), "onnx")
    if value not in qmath.ARITHMETICS:
        raise BuildError(f"model metadata {qmath.METADATA_KEY}={value!r}: expected {' or '.join(qmath.ARITHMETICS)}")
    return value


def _unlowered_reason(lw: Lowerer, node: onnx.NodeProto, supported: list[str]) -> str:
    """Why a node without a lowering is refused. An output of an element type the schedule has no
    tensors of (the int64 indices of ArgMax/ArgMin/TopK) is named: no kernel could write it."""
    for out in node.output:
        elem = lw.view.dtypes.get(out) if out else None
        if elem is not None and elem not in TENSOR_TYPES:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(elem)
            kinds = ", ".join(name for name, _, _ in TENSOR_TYPES.values())
            return (f"op not supported by back end 'mcu-c': its output '{out}' is {dtype}, and the "
                    f"back end has no {dtype} tensors (only {kinds}); compute {node.op_type} in the "
                    f"application on a float32 graph output instead")
    return f"op not supported by back end 'mcu-c'; supported ops: {', '.join(supported)}"


def lower(view: GraphView, target_name: str = "", int8_io: bool | str = False, soft_float: bool = False,
          moe_options: dict[str, Any] | None = None, int8_arithmetic: str | None = None) -> Schedule:
    """Lower every node of the prepared graph; raises BuildError naming the first node that
    cannot be lowered. ``int8_io``: a graph input whose only consumer quantizes it to int8, and a
    graph output dequantized from int8, are passed as int8 (the boundary conversion is left to
    the caller, who gets the scales and zero points); ``int8_io="inputs"``: only the inputs.
    ``soft_float``: the target has no FPU.
    ``moe_options``: how mixture-of-experts layers run (see :mod:`.ops_moe`).
    ``int8_arithmetic``: how the int8 kernels round (``onnx`` or ``tflite``, see :mod:`.qmath`);
    None: the model's ``edgekit.int8_arithmetic`` metadata, else ``onnx``."""
    from edgekit.plugins.mcu import ops_moe, ops_quant
    from edgekit.plugins.mcu.optable import LOWERINGS, supported_ops_list

    lw = Lowerer(view, target_name, soft_float, int8_arithmetic or model_int8_arithmetic(view.model))
    sched = lw.schedule
    sched.int8_arithmetic = lw.int8_arithmetic
    graph = view.model.graph
    boundary = ops_quant.int8_boundary(lw, outputs=int8_io is True) if int8_io else {}
    lw.skipped.update(id(node) for _, _, node in boundary.values() if node is not None)
    lw.int8_outputs = {src for name, (src, _, _) in boundary.items() if name in view.graph_outputs}
    moe_layers = ops_moe.claim(lw, ops_moe.MoeOptions.from_options(moe_options or {}))
    for i, inp in enumerate(graph.input):
        name = inp.name
        if name in boundary:
            name, q, node = boundary[name]
            sched.io_quant[name], sched.io_names[name] = q, inp.name
        t = lw.tensor(name)
        t.kind, t.index = "input", i
        t.shape = view.shape(name)
        sched.inputs.append(name)
        if name == inp.name and view.dtypes.get(inp.name, FLOAT) != FLOAT:
            raise BuildError(f"graph input '{inp.name}' is not float32; the mcu-c back end takes "
                             f"float32 inputs (quantized models quantize them with QuantizeLinear)")
    sched.source_ops = {n.op_type for n in graph.node}
    for node in graph.node:
        if id(node) in moe_layers:
            moe_layers[id(node)]()
            continue
        if id(node) in lw.skipped or ops_quant.try_lower(lw, node):
            continue
        fn = LOWERINGS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if fn is None:
            raise lw.error(node, _unlowered_reason(lw, node, supported_ops_list()))
        fn(lw, node)
    for i, out in enumerate(graph.output):
        name = out.name
        if name in boundary:
            name, q, _ = boundary[name]
            sched.io_quant[name], sched.io_names[name] = q, out.name
        if name in sched.inputs or view.is_const(name):
            raise BuildError(f"graph output '{name}' is a graph input or a constant; the mcu-c back "
                             f"end needs outputs computed by the graph")
        t = lw.tensor(name)
        if name in sched.aliases:  # defensive: alias() already copies graph outputs
            raise BuildError(f"graph output '{name}' aliases another tensor")
        if t.kind == "output":
            raise BuildError(f"graph outputs '{sched.io_names.get(name, name)}' and another output are "
                             f"the same int8 tensor; build with io=float")
        t.kind, t.index = "output", i
        t.shape = view.shape(name)
        sched.outputs.append(name)
    if not sched.layers:
        raise BuildError("the model has no computing node after folding; nothing to generate")
    return sched
