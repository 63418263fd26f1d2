"""Conditional mixture-of-experts on TVM CPU targets: the model split into segments that TVM
compiles as separate Relax functions of one IRModule (so one ``kernels.o`` serves them all).

A model whose MoE layers were recorded by ``experts-partition`` (see :mod:`edgekit.moe`) becomes
a sequence of steps:

* backbone segments: the nodes before a layer (from the graph inputs to the layer's input, the
  router's probabilities and every tensor needed later), between layers, and after the last;
* per MoE layer, one sub-model per expert computing ONE token's row (``[1, ..., 1, dim_in]`` →
  ``[1, ..., 1, dim_out]``; built and checked by the mcu-c back end's analysis,
  :func:`edgekit.plugins.mcu.ops_moe.expert_row_model`), run by the generated driver only for the
  k experts the router selects per token (``ek_moe_f32``, the kernel mcu-c uses), replacing the
  layer's combination nodes.

A backbone node goes into the earliest segment whose inputs are available: segment ``s`` runs
after the layers at stage ``s - 1``; a layer's stage is that of the later of its input and
probabilities. Layers at the same stage are independent of each other. Nodes no graph output
needs are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

import edgekit
from edgekit.moe import MoeLayer, moe_layers


@dataclass
class Part:
    """One sub-model, compiled as the Relax function ``name`` (also its C prefix)."""

    name: str
    model: onnx.ModelProto
    inputs: list[str]   # ONNX tensor names, in parameter order
    outputs: list[str]  # in result order


@dataclass
class LayerStep:
    """One MoE layer run by ``ek_moe_f32``: tensors are names of the model's tensors."""

    index: int          # position in the model's MoE metadata
    layer: MoeLayer
    experts: list[Part]
    input: str
    probs: str
    output: str
    tokens: int
    dim_in: int
    dim_out: int


@dataclass
class Split:
    steps: list[Part | LayerStep]   # in execution order
    tensors: dict[str, tuple[list[int], str]] = field(default_factory=dict)  # boundary tensors: shape, dtype
    inputs: list[str] = field(default_factory=list)   # graph inputs, graph order
    outputs: list[str] = field(default_factory=list)  # graph outputs, graph order

    @property
    def parts(self) -> list[Part]:
        return [p for s in self.steps for p in ([s] if isinstance(s, Part) else s.experts)]

    @property
    def layers(self) -> list[LayerStep]:
        return [s for s in self.steps if isinstance(s, LayerStep)]


def split_model(model: onnx.ModelProto, target_name: str = "") -> Split | None:
    """The model as backbone segments and per-token expert sub-models, or None when it records
    no MoE layer. A layer that cannot run token by token is a BuildError (the message suggests
    ``moe_conditional=false``)."""
    from edgekit.plugins.mcu.graph import GraphView, prepare
    from edgekit.plugins.mcu.schedule import Lowerer

    if not moe_layers(model):
        return None
    prepared = prepare(model, "model")
    layers = moe_layers(prepared)
    view = GraphView.of(prepared)
    lw = Lowerer(view, target_name)
    try:
        return _split(prepared, layers, view, lw)
    except edgekit.BuildError as exc:
        raise edgekit.BuildError(f"{exc}; build the MoE layers densely with --option moe_conditional=false") from exc


def _split(model: onnx.ModelProto, layers: list[MoeLayer], view, lw) -> Split:
    from edgekit.plugins.mcu.ops_moe import expert_row_model, layer_nodes, layer_shapes

    nodes = list(model.graph.node)
    initializers = {t.name: t for t in model.graph.initializer}
    graph_inputs = [i.name for i in model.graph.input]
    graph_outputs = [o.name for o in model.graph.output]
    if len(set(graph_outputs)) != len(graph_outputs) or set(graph_outputs) & set(graph_inputs):
        raise edgekit.BuildError("a graph output repeats another or is a graph input")
    computed = {o for n in nodes for o in n.output if o} | set(graph_inputs)

    # the layers' nodes, experts as per-token row models
    owner: dict[int, int] = {}  # id(node) -> layer position, for expert and combination nodes
    anchors: dict[int, int] = {}  # id(anchor node) -> layer position
    rows: list[tuple[list[tuple[onnx.ModelProto, object]], tuple[int, ...], tuple[int, ...]]] = []
    for li, layer in enumerate(layers):
        experts, combination, anchor = layer_nodes(model, layer)
        x_shape, _, y_shape = layer_shapes(lw, layer, anchor)
        models = [expert_row_model(lw, layer, e, region, x_shape, y_shape, computed)
                  for e, region in enumerate(experts)]
        absorbed = {id(n) for _, graph in models for n in graph.nodes}
        for region in experts:
            owner.update((id(n), li) for n in region)
        owner.update((id(n), li) for n in combination)
        # the combination reads the probabilities and the experts' outputs only
        produced = {o for n in combination for o in n.output}
        allowed = {layer.probs, *(e.output for e in layer.experts)} | produced | set(initializers)
        for n in combination:
            if id(n) in absorbed:
                continue
            stray = [t for t in n.input if t and t not in allowed]
            if stray:
                raise lw.error(n, f"MoE layer '{layer.name}': its combination reads {', '.join(stray)}, "
                                  f"not only the router's probabilities and the experts' outputs")
        anchors[id(anchor)] = li
        rows.append((models, x_shape, y_shape))
        if {g.input for _, g in models} != {layer.input}:
            raise lw.error(anchor, f"MoE layer '{layer.name}': its experts do not read the layer's input")

    # nothing outside a layer reads what its experts or combination compute inside it
    inside = {o: owner[id(n)] for n in nodes if id(n) in owner for o in n.output if o}
    layer_outputs = {layer.output for layer in layers}
    for n in nodes:
        for t in n.input:
            if t in inside and t not in layer_outputs and owner.get(id(n)) != inside[t]:
                raise lw.error(n, f"it reads '{t}', computed inside MoE layer '{layers[inside[t]].name}'")
    for t in graph_outputs:
        if t in inside and t not in layer_outputs:
            raise edgekit.BuildError(f"graph output '{t}' is computed inside MoE layer '{layers[inside[t]].name}'")

    # live items (backbone nodes and layers) in graph order: what the graph outputs need
    needed = set(graph_outputs)
    live: list[tuple[str, object]] = []
    for n in reversed(nodes):
        if id(n) in anchors:
            layer = layers[anchors[id(n)]]
            if layer.output in needed:
                needed.update((layer.input, layer.probs))
                live.append(("layer", anchors[id(n)]))
        elif id(n) not in owner and any(o in needed for o in n.output):
            needed.update(t for t in n.input if t)
            live.append(("node", n))
    live.reverse()

    # segments: the earliest at which every input is available
    stage_of_tensor = {t: 0 for t in graph_inputs}
    segment_nodes: dict[int, list[onnx.NodeProto]] = {}
    layer_stage: dict[int, int] = {}
    for kind, item in live:
        if kind == "layer":
            layer = layers[item]
            stage = max(stage_of_tensor.get(layer.input, 0), stage_of_tensor.get(layer.probs, 0))
            layer_stage[item] = stage
            stage_of_tensor[layer.output] = stage + 1
        else:
            s = max((stage_of_tensor.get(t, 0) for t in item.input if t), default=0)
            segment_nodes.setdefault(s, []).append(item)
            stage_of_tensor.update((o, s) for o in item.output if o)
    if not layer_stage:
        raise edgekit.BuildError("no graph output depends on a MoE layer")

    # what each segment passes on: tensors later segments, layers or the graph outputs read
    after: dict[int, set[str]] = {}  # segment -> tensors read by the steps after it
    last = max([*segment_nodes, *(s + 1 for s in layer_stage.values())])
    reads: set[str] = set()
    for s in range(last, -1, -1):
        reads.update(t for li, st in layer_stage.items() if st == s for t in (layers[li].input, layers[li].probs))
        after[s] = set(reads)
        reads.update(t for n in segment_nodes.get(s, []) for t in n.input if t)

    split = Split(steps=[], inputs=graph_inputs, outputs=graph_outputs)
    used_names: set[str] = set()

    def part_name(wanted: str) -> str:
        from edgekit.naming import identifier

        base = name = identifier(wanted)
        n = 1
        while name in used_names:
            name, n = f"{base}_{n}", n + 1
        used_names.add(name)
        return name

    def boundary(t: str) -> None:
        split.tensors[t] = (list(view.shape(t)), _np_dtype(view.dtypes.get(t, onnx.TensorProto.FLOAT)))

    for t in [*graph_inputs, *graph_outputs]:
        boundary(t)
    for s in range(last + 1):
        seg = segment_nodes.get(s, [])
        if seg:
            produced = [o for n in seg for o in n.output if o]
            produced_set = set(produced)
            ins = list(dict.fromkeys(t for n in seg for t in n.input
                                     if t and t not in produced_set and t not in initializers))
            outs = [t for t in produced if t in graph_outputs or t in after[s]]
            if outs:
                for t in ins + outs:
                    boundary(t)
                sub = _sub_model(model, f"segment{s}", seg, ins, outs, view, initializers)
                split.steps.append(Part(part_name(f"segment{s}"), sub, ins, outs))
        for li in sorted(i for i, st in layer_stage.items() if st == s):
            layer = layers[li]
            models, x_shape, y_shape = rows[li]
            for t in (layer.input, layer.probs, layer.output):
                boundary(t)
            for t in (layer.input, layer.probs, layer.output):
                if split.tensors[t][1] != "float32":
                    raise edgekit.BuildError(f"MoE layer '{layer.name}': tensor '{t}' is {split.tensors[t][1]}, "
                                             "not float32")
            experts = [Part(part_name(f"{layer.name}_e{e}"), sub, [graph.input], [graph.output])
                       for e, (sub, graph) in enumerate(models)]
            tokens = int(np.prod(x_shape[:-1], dtype=np.int64))
            split.steps.append(LayerStep(li, layer, experts, layer.input, layer.probs, layer.output,
                                         tokens, int(x_shape[-1]), int(y_shape[-1])))
    return split


def _np_dtype(onnx_type: int) -> str:
    return str(np.dtype(helper.tensor_dtype_to_np_dtype(onnx_type)))


def _sub_model(model: onnx.ModelProto, name: str, nodes: list[onnx.NodeProto], inputs: list[str],
               outputs: list[str], view, initializers: dict[str, onnx.TensorProto]) -> onnx.ModelProto:
    def info(t: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(t, view.dtypes.get(t, onnx.TensorProto.FLOAT), list(view.shape(t)))

    reads = {t for n in nodes for t in n.input}
    graph = helper.make_graph(nodes, name, [info(t) for t in inputs], [info(t) for t in outputs],
                              [initializers[t] for t in initializers if t in reads])
    return helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)


def import_split(split: Split):
    """Every part imported to Relax, as the functions ``part.name`` of one IRModule."""
    import tvm

    from edgekit.compiler.importer import import_onnx

    functions = {}
    for part in split.parts:
        func = import_onnx(part.model)["main"]
        functions[tvm.ir.GlobalVar(part.name)] = func.with_attr("global_symbol", part.name)
    return tvm.IRModule(functions)
