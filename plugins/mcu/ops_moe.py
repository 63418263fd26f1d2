"""Lowering of mixture-of-experts layers (recorded by the ``experts-partition`` pass, see
:mod:`edgekit.moe`) onto ``ek_moe_f32``: conditional execution of the k routed experts.

Each expert becomes a sub-library of its own (``<prefix>_<layer>_e<i>``): its sub-graph, lowered
for one token's row, with its weights in one struct placed in a named section
(``.rodata.edgekit_expert.<prefix>_<layer>_e<i>``) so a linker script can put it in internal or
external flash. The layer's combination nodes are replaced by one ``ek_moe_f32`` call that
picks the top-k experts per token and runs only those, reusing one expert working memory; with
option ``expert_memory=ram`` each selected expert is first copied into one of k RAM slots by the
firmware hook ``<prefix>_expert_load`` (weak default: memcpy), so experts may live in memory the
core cannot execute from quickly. Option ``moe_conditional=false`` runs all N experts (the dense
reference the benchmark compares against)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import helper

from edgekit.errors import BuildError, UsageError
from edgekit.moe import MoeLayer, layer_regions, moe_layers

if TYPE_CHECKING:
    from edgekit.plugins.mcu.planner import MemoryPlan
    from edgekit.plugins.mcu.schedule import Lowerer, Schedule

#: Ops an expert may hold: each computes every token's row on its own (no mixing across tokens).
TOKENWISE_OPS = frozenset({
    "MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu", "Relu", "Gelu", "Sigmoid",
    "Tanh", "Erf", "Elu", "Selu", "LeakyRelu", "HardSwish", "HardSigmoid", "Softplus", "Softsign", "Neg",
    "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Clip", "Identity", "Dropout", "LayerNormalization",
    "Softmax", "LogSoftmax", "QuantizeLinear", "DequantizeLinear"})
LAST_AXIS_OPS = ("LayerNormalization", "Softmax", "LogSoftmax")
WEIGHT_ALIGN = 8
MAX_K = 16  # ek_moe.c keeps the top-k on the stack


@dataclass
class MoeOptions:
    conditional: bool = True
    expert_memory: str = "flash"  # flash: run from where stored | ram: load into k RAM slots
    expert_region: str = "FLASH"  # linker memory region named in the generated fragment

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> MoeOptions:
        conditional = options.get("moe_conditional", True)
        if not isinstance(conditional, bool):
            raise UsageError(f"--option moe_conditional={conditional}: expected true or false")
        memory = str(options.get("expert_memory", "flash")).lower()
        if memory not in ("flash", "ram"):
            raise UsageError(f"--option expert_memory={memory}: expected flash or ram")
        region = str(options.get("expert_region", "FLASH"))
        if not region.isidentifier():
            raise UsageError(f"--option expert_region={region}: expected a linker memory region name")
        return cls(conditional, memory, region)


@dataclass
class ExpertPart:
    """One expert's lowered sub-library (named when the model's prefix is known)."""

    index: int
    schedule: Schedule
    plan: MemoryPlan
    weight_bytes: int
    model: onnx.ModelProto
    graph: ExpertGraph


@dataclass
class LoweredMoe:
    layer: MoeLayer
    experts: list[ExpertPart]
    options: MoeOptions
    scratch: dict[str, int] = field(default_factory=dict)


def weights_struct_bytes(sched: Schedule) -> int:
    """sizeof the expert's weights struct: each array aligned to WEIGHT_ALIGN bytes."""
    total = 0
    for c in sched.consts.values():
        total = _align(total, WEIGHT_ALIGN) + max(c.array.nbytes, c.array.itemsize)
    return _align(max(total, 1), WEIGHT_ALIGN)


def _align(n: int, a: int) -> int:
    return -(-n // a) * a


def claim(lw: Lowerer, options: MoeOptions) -> dict[int, Any]:
    """Mark the experts' and combinations' nodes as handled; return, per node producing a layer's
    output, the function that lowers the whole layer in its place."""
    model = lw.view.model
    replacements = {}
    for layer in moe_layers(model):
        experts, combination, anchor = layer_nodes(model, layer)
        lw.skipped.update(id(n) for region in experts for n in region)
        lw.skipped.update(id(n) for n in combination)
        replacements[id(anchor)] = (lambda layer=layer, experts=experts, anchor=anchor:
                                    _lower_layer(lw, layer, experts, anchor, options))
    return replacements


def layer_nodes(model: onnx.ModelProto, layer: MoeLayer) -> tuple[list[list[onnx.NodeProto]], list[onnx.NodeProto],
                                                                 onnx.NodeProto]:
    """The layer's nodes in ``model.graph``: per expert (graph order), the combination, and the
    node producing the layer's output (a BuildError when the recorded tensors are not there)."""
    experts, combination = layer_regions(model, layer)
    nodes = list(model.graph.node)
    producer = {o: n for n in nodes for o in n.output}
    if layer.output not in producer or any(not e for e in experts):
        raise BuildError(f"MoE layer '{layer.name}': its recorded tensors are not in the graph; "
                         f"run experts-partition after the passes that rewrite the model")
    return ([[nodes[i] for i in sorted(r)] for r in experts], [nodes[i] for i in sorted(combination)],
            producer[layer.output])


def layer_shapes(lw: Lowerer, layer: MoeLayer, anchor: onnx.NodeProto) -> tuple[tuple[int, ...], ...]:
    """Shapes of the layer's input, probabilities and output, checked to share the token dims
    (all but the last), with 1 <= k <= MAX_K."""
    from edgekit.plugins.mcu.schedule import dims_str

    x_shape, probs_shape, y_shape = (lw.shape(t, anchor) for t in (layer.input, layer.probs, layer.output))
    tokens = x_shape[:-1]
    if probs_shape[:-1] != tokens or y_shape[:-1] != tokens or probs_shape[-1] != layer.count:
        raise lw.error(anchor, f"MoE layer '{layer.name}': input {dims_str(x_shape)}, probabilities "
                               f"{dims_str(probs_shape)} and output {dims_str(y_shape)} do not share tokens")
    if not 1 <= layer.k <= min(layer.count, MAX_K):
        raise lw.error(anchor, f"MoE layer '{layer.name}': top-{layer.k} of {layer.count} experts; the kernel "
                               f"takes 1 <= k <= {MAX_K}")
    return x_shape, probs_shape, y_shape


def _lower_layer(lw: Lowerer, layer: MoeLayer, expert_nodes: list[list[onnx.NodeProto]],
                 anchor: onnx.NodeProto, options: MoeOptions) -> None:
    from edgekit.plugins.mcu.schedule import CSymbol, dims_str

    x_shape, _, y_shape = layer_shapes(lw, layer, anchor)
    tokens = x_shape[:-1]
    computed = {o for layer_ in lw.schedule.layers for o in layer_.outputs} | set(lw.schedule.aliases) | \
        set(lw.schedule.inputs)
    if layer.probs not in computed:
        raise lw.error(anchor, f"MoE layer '{layer.name}': the router's probabilities '{layer.probs}' are "
                               f"quantized; quantize with edgekit's quantize-int8 pass, which keeps them float")
    parts = [_lower_expert(lw, layer, e, nodes, x_shape, y_shape, computed) for e, nodes in enumerate(expert_nodes)]
    inputs = {p.graph.input for p in parts}
    if len(inputs) != 1 or next(iter(inputs)) not in computed:
        raise lw.error(anchor, f"MoE layer '{layer.name}': the experts' input '{layer.input}' is not computed "
                               f"by the back end ({', '.join(sorted(inputs))})")
    x = inputs.pop()
    lw.require_float(anchor, layer.probs, layer.output)
    arena = _align(max(p.plan.arena_bytes for p in parts), 16)
    row = _align(4 * y_shape[-1], 16)
    slot = _align(max(p.weight_bytes for p in parts), 16)
    slots = layer.k * slot if options.expert_memory == "ram" else 0
    lowered = LoweredMoe(layer, parts, options,
                         {"expert_arena_bytes": arena, "row_bytes": row, "slot_bytes": slot if slots else 0,
                          "slots": layer.k if slots else 0, "scratch_bytes": arena + row + slots})
    lw.schedule.moe.append(lowered)
    tokens_count = int(np.prod(tokens, dtype=np.int64)) if tokens else 1
    params = {"tokens": tokens_count, "dim_in": x_shape[-1], "dim_out": y_shape[-1], "experts": layer.count,
              "k": layer.k, "renormalize": int(layer.renormalize), "conditional": int(options.conditional),
              "input_bytes": 1 if parts[0].graph.int8_input else 4,
              "layer": len(lw.schedule.moe) - 1, "table": CSymbol(f"{layer.name}_experts"),
              "load": CSymbol("expert_load") if slots else None, "slot_bytes": slot if slots else 0,
              "expert_arena_offset": 0, "row_offset": arena, "slots_offset": arena + row}
    per_expert = sum(p.schedule.layers and sum(layer_.macs for layer_ in p.schedule.layers) for p in parts)
    runs = layer.k if options.conditional else layer.count
    lw.add(anchor, "ek_moe", "ek_moe_f32", "ek_moe_params", params,
           [("in", x), ("in", layer.probs), ("out", layer.output), ("scratch",)],
           summary=(f"{dims_str(x_shape)} -> {dims_str(y_shape)}, top-{layer.k} of {layer.count} experts"
                    f"{'' if options.conditional else ' (all run)'}"),
           macs=tokens_count * per_expert * runs // layer.count, scratch_bytes=arena + row + slots, op="MoE")
    for p in parts:
        lw.schedule.families |= p.schedule.families


def _lower_expert(lw: Lowerer, layer: MoeLayer, e: int, nodes: list[onnx.NodeProto],
                  x_shape: tuple[int, ...], y_shape: tuple[int, ...], computed: set[str]) -> ExpertPart:
    """Expert ``e``'s sub-graph as a model of one token's row, lowered and planned."""
    from edgekit.plugins.mcu.generator import lower_model
    from edgekit.plugins.mcu.planner import plan

    sub, graph = expert_row_model(lw, layer, e, nodes, x_shape, y_shape, computed)
    sched = lower_model(sub, lw.target_name, int8_io="inputs" if graph.int8_input else False,
                        soft_float=lw.soft_float)
    if any(_holds_symbol(v) for layer_ in sched.layers for v in layer_.params.values()):
        raise BuildError(f"expert {e} of MoE layer '{layer.name}': a layer needs a constant table in its "
                         f"parameters, which expert sub-libraries do not support")
    return ExpertPart(e, sched, plan(sched, borrow_outputs=False), weights_struct_bytes(sched), sub, graph)


def expert_row_model(lw: Lowerer, layer: MoeLayer, e: int, nodes: list[onnx.NodeProto], x_shape: tuple[int, ...],
                     y_shape: tuple[int, ...], computed: set[str]) -> tuple[onnx.ModelProto, ExpertGraph]:
    """Expert ``e``'s sub-graph as a model of one token's row (input ``[1, ..., 1, dim_in]``),
    after checking that each of its ops computes every token's row on its own. ``computed``: the
    tensors the back end computes in float (see :func:`_expert_graph`)."""
    for node in nodes:
        if node.op_type not in TOKENWISE_OPS | {"Reshape"} or node.domain not in ("", "ai.onnx"):
            raise lw.error(node, f"in expert {e} of MoE layer '{layer.name}': op {node.op_type} may mix "
                                 f"tokens; conditional execution runs each token's row through the expert "
                                 f"alone (supported: {', '.join(sorted(TOKENWISE_OPS))})")
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type in LAST_AXIS_OPS and attrs.get("axis", -1) not in (-1, len(x_shape) - 1):
            raise lw.error(node, f"in expert {e} of MoE layer '{layer.name}': {node.op_type} over axis "
                                 f"{attrs.get('axis')} mixes tokens; only the last axis is per token")
        if node.op_type in ("MatMul", "Gemm") and not lw.view.is_const(node.input[1]):
            raise lw.error(node, f"in expert {e} of MoE layer '{layer.name}': {node.op_type} with a computed "
                                 f"second operand mixes tokens")
    graph = _expert_graph(lw, layer, e, nodes, computed)
    row = [1] * (len(x_shape) - 1)
    reads = {t for n in graph.nodes for t in n.input}
    model = lw.view.model
    sub = helper.make_model(
        helper.make_graph(graph.nodes, f"{layer.name}_e{e}",
                          [helper.make_tensor_value_info(layer.input, onnx.TensorProto.FLOAT, row + [x_shape[-1]])],
                          [helper.make_tensor_value_info(graph.output, onnx.TensorProto.FLOAT, row + [y_shape[-1]])],
                          [t for t in model.graph.initializer if t.name in reads] + graph.constants),
        opset_imports=list(model.opset_import), ir_version=model.ir_version)
    return sub, graph


@dataclass
class ExpertGraph:
    """The nodes of one expert's sub-library and the tensors it reads and writes."""

    nodes: list[onnx.NodeProto]
    input: str        # the tensor of the main graph the MoE layer passes row by row
    int8_input: bool  # that tensor is int8 (a QDQ model whose experts start with DequantizeLinear)
    output: str
    constants: list[onnx.TensorProto] = field(default_factory=list)  # row shapes of its Reshapes


def _expert_graph(lw: Lowerer, layer: MoeLayer, e: int, nodes: list[onnx.NodeProto],
                  computed: set[str]) -> ExpertGraph:
    """The expert's nodes, from the layer's input to its output. In a QDQ model the experts share
    the input's QuantizeLinear -> DequantizeLinear pair (backbone nodes): when the backbone leaves
    the input in int8, the expert reads the int8 rows (its first layer an int8 kernel); and the
    QuantizeLinear -> DequantizeLinear after the expert's output belongs to the expert."""
    view = lw.view
    nodes, constants = _row_reshapes(lw, layer, e, nodes)
    produced = {o for n in nodes for o in n.output}
    row_shapes = {c.name for c in constants}
    entering = {t for n in nodes for t in n.input
                if t and t not in produced and t not in row_shapes and not view.is_const(t)}
    output = layer.experts[e].output
    q_out = view.consumers.get(output, [])
    if len(q_out) == 1 and q_out[0].op_type == "QuantizeLinear" and output not in view.graph_outputs:
        dq_out = view.consumers.get(q_out[0].output[0], [])
        if len(dq_out) == 1 and dq_out[0].op_type == "DequantizeLinear":
            nodes = [*nodes, q_out[0], dq_out[0]]
            output = dq_out[0].output[0]
    if entering == {layer.input}:
        return ExpertGraph(nodes, layer.input, False, output, constants)
    dq = view.producers.get(next(iter(entering))) if len(entering) == 1 else None
    q = view.producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
    if q is None or q.op_type != "QuantizeLinear" or q.input[0] != layer.input:
        raise BuildError(f"expert {e} of MoE layer '{layer.name}' reads {', '.join(sorted(entering))}, not the "
                         f"layer's input '{layer.input}'; run experts-partition after the passes that "
                         f"rewrite the model")
    if layer.input in computed:  # float in the backbone: each expert quantizes its rows itself
        return ExpertGraph([q, dq, *nodes], layer.input, False, output, constants)
    # the library's int8 input boundary takes the rows as they are: QuantizeLinear is not run
    return ExpertGraph([q, dq, *nodes], q.output[0], True, output, constants)


def _row_reshapes(lw: Lowerer, layer: MoeLayer, e: int,
                  nodes: list[onnx.NodeProto]) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Reshapes that only merge or split the token dims (keeping the last one), as quantization
    pre-processing writes around a Gemm, get the row's shape; any other Reshape mixes tokens."""
    from onnx import numpy_helper

    result, constants = [], []
    for node in nodes:
        if node.op_type != "Reshape":
            result.append(node)
            continue
        before, after = lw.shape(node.input[0], node), lw.shape(node.output[0], node)
        if not before or not after or before[-1] != after[-1] or not lw.view.is_const(node.input[1]):
            raise lw.error(node, f"in expert {e} of MoE layer '{layer.name}': a Reshape that changes the "
                                 f"last dim mixes tokens; conditional execution runs each token's row alone")
        shape = numpy_helper.from_array(np.array([1] * (len(after) - 1) + [after[-1]], dtype=np.int64),
                                        f"{node.output[0]}__row_shape")
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[1] = shape.name
        constants.append(shape)
        result.append(copy)
    return result, constants


def _holds_symbol(value: Any) -> bool:
    from edgekit.plugins.mcu.schedule import ConstRef

    if isinstance(value, (list, tuple)):
        return any(_holds_symbol(v) for v in value)
    return isinstance(value, ConstRef)
