"""``experts-prune``: expert pruning by routing frequency, after Lu et al., "Not All Experts are
Equal: Efficient Expert Pruning and Skipping for Mixture-of-Experts Large Language Models"
(ACL 2024): experts the router rarely selects contribute little to the output, so dropping them
saves their weights (flash) at a small, measured cost in accuracy.

On calibration data (``--calibration``, else seeded random inputs), the routing frequency of every
expert is measured (the fraction of tokens whose top-k holds it, see :mod:`.routing`); experts
routed for less than ``experts_prune_threshold`` of the tokens (option, default 0.01) are dropped,
never leaving fewer than k in a layer (that is a usage error naming the frequencies).

The rewrite, per partitioned layer (run ``experts-partition`` first): the dropped experts' nodes
and weights go; the router's linear layer loses their outputs (``Gemm`` with ``transB=1``: rows of
B; otherwise columns of B; the bias entries too), so its Softmax renormalises over the survivors;
the top-k combination is rebuilt for the smaller count (:mod:`.combine`); and the metadata
(:mod:`edgekit.moe`) keeps the survivors, with the original indices of the dropped ones in
``pruned``. The report's ``experts.prune`` lists, per layer, the pruned experts and their
frequencies, the parameters removed, and the output error against the input model on the
calibration data (max abs, relative RMS).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
from onnx import numpy_helper

import edgekit
from edgekit.moe import MoeLayer, layer_regions, set_moe_layers
from edgekit.plugins.experts import routing
from edgekit.plugins.experts.accuracy import copy_model, drop_value_info, output_error, rounded
from edgekit.plugins.experts.combine import replace_combine
from edgekit.plugins.experts.graph import Graph, remove_unused
from edgekit.verify import run_onnxruntime

OPTION = "experts_prune_threshold"
DEFAULT_THRESHOLD = 0.01
#: elementwise ops with a constant operand the router's logits may pass through (bias, temperature)
LOGIT_OPS = ("Add", "Sub", "Mul", "Div")


@edgekit.model_pass("experts-prune", approximate=True)
def prune_experts(model: onnx.ModelProto, context: edgekit.BuildContext) -> onnx.ModelProto:
    """Drop the experts the router rarely selects, and their router outputs (Lu et al., ACL 2024)."""
    layers = routing.partitioned_layers(model, context)
    if not layers:
        return model
    threshold = context.number(OPTION, DEFAULT_THRESHOLD, high=1.0)
    data = routing.samples(model, context, "routing frequencies for expert pruning measured")
    measured = routing.frequencies(model, layers, data)
    keeps = []
    for layer in layers:
        freq = measured[layer.name]
        keep = [e for e in range(layer.count) if freq[e] >= threshold]
        if len(keep) < layer.k:
            ranked = sorted(freq, reverse=True)
            raise edgekit.UsageError(
                f"--option {OPTION}={threshold:g} would leave {len(keep)} of the {layer.count} experts of MoE "
                f"layer '{layer.name}' (routing frequencies {', '.join(f'{f:.3g}' for f in freq)}), fewer than "
                f"the {layer.k} its top-{layer.k} routing needs; use a threshold of at most {ranked[layer.k - 1]:g}")
        keeps.append(keep)
    section = context.section("experts")
    report = {"threshold": threshold, "calibration_samples": len(data), "layers": [],
              "parameters_removed": 0, "output_error": rounded(output_error([], []))}
    section["prune"] = report
    if all(len(keep) == layer.count for layer, keep in zip(layers, keeps)):
        context.note(f"every expert is routed for at least {threshold:g} of the tokens: nothing to prune")
        return model
    reference = run_onnxruntime(model, data, "model before experts-prune")
    working = copy_model(model)  # the caller's model stays as it was
    error = output_error([], [])
    for layer, keep in zip(layers, keeps):
        freq = measured[layer.name]
        originals = original_indices(layer)
        dropped = [e for e in range(layer.count) if e not in keep]
        if not dropped:
            context.note(f"{layer.name}: every expert is routed for at least {threshold:g} of the tokens")
            report["layers"].append({"layer": layer.name, "experts_before": layer.count,
                                     "experts_after": layer.count, "pruned": [],
                                     "kept": originals, "parameters_removed": {"experts": 0, "router": 0, "total": 0}})
            continue
        experts_removed = sum(layer.experts[e].parameters for e in dropped)
        before = layer.count
        _remove_experts(working, layer, keep)
        router_removed, changed = _prune_router(working, layer, keep, before)
        layer.pruned = sorted(layer.pruned + [originals[e] for e in dropped])
        drop_value_info(working, changed)
        error = output_error(reference, run_onnxruntime(working, data, "model after experts-prune"))
        removed = experts_removed + router_removed
        report["parameters_removed"] += removed
        report["layers"].append({
            "layer": layer.name, "experts_before": before, "experts_after": layer.count,
            "pruned": [{"expert": originals[e], "frequency": freq[e]} for e in dropped],
            "kept": [originals[e] for e in keep],
            "parameters_removed": {"experts": experts_removed, "router": router_removed, "total": removed},
            "output_error": rounded(error)})
        context.note(f"{layer.name}: pruned experts {', '.join(str(originals[e]) for e in dropped)} (routed for "
                     f"{', '.join(f'{freq[e]:.3g}' for e in dropped)} of the tokens, below {threshold:g}); "
                     f"{layer.count} of {before} experts left, {removed} parameters removed; output error: max "
                     f"abs {error['max_abs']:.3g}, relative RMS {error['relative_rms']:.3g}",
                     pruned=[originals[e] for e in dropped], parameters_removed=removed)
    remove_unused(working)
    drop_value_info(working)
    for name, freq in routing.frequencies(working, layers, data).items():
        next(layer for layer in layers if layer.name == name).frequency = freq
    set_moe_layers(working, layers)
    report["output_error"] = rounded(error)
    routing.record(context, layers)
    for layer in layers:  # the picture keeps the original numbering, the pruned experts shown empty
        _attach_histogram(context, layer)
    return working


def original_indices(layer: MoeLayer) -> list[int]:
    """The index each of the layer's experts had when the layer was partitioned."""
    pruned = set(layer.pruned)
    return [i for i in range(layer.count + len(pruned)) if i not in pruned]


def _remove_experts(model: onnx.ModelProto, layer: MoeLayer, keep: list[int]) -> None:
    """Drop the nodes of the experts not in ``keep`` and rebuild the combination over the rest
    (in place; ``layer.experts`` becomes the kept ones)."""
    graph = model.graph
    tokens = Graph(model).static_shape(layer.probs)
    if tokens is None:
        raise edgekit.BuildError(f"MoE layer '{layer.name}': the router's probabilities '{layer.probs}' have no "
                                 f"static shape")
    experts, combination = layer_regions(model, layer)
    removed = combination.union(*(experts[e] for e in range(layer.count) if e not in keep))
    produced = {o for i in removed for o in graph.node[i].output}
    for i, node in enumerate(graph.node):
        if i not in removed:
            read = [t for t in node.input if t in produced and t != layer.output]
            if read:
                raise edgekit.BuildError(f"MoE layer '{layer.name}': node '{node.name or node.output[0]}' reads "
                                         f"'{read[0]}' of a pruned expert or of the combination; cannot prune")
    # the old combination's own constants: the new one recreates them under the same names
    readers: dict[str, set[int]] = {}
    for i, node in enumerate(graph.node):
        for t in node.input:
            readers.setdefault(t, set()).add(i)
    stale = {t for t, nodes in readers.items() if nodes <= combination}
    inits = [t for t in graph.initializer if t.name not in stale]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    layer.experts = [layer.experts[e] for e in keep]
    replace_combine(model, layer, tokens[:-1], removed)


def _prune_router(model: onnx.ModelProto, layer: MoeLayer, keep: list[int], count: int) -> tuple[int, set[str]]:
    """Keep only the ``keep`` outputs of the router's linear layer (and of its bias, scale...);
    returns the number of parameters removed and the tensors whose shapes changed."""
    g = Graph(model)
    soft = g.producer.get(layer.probs)
    if soft is None or g.nodes[soft].op_type != "Softmax":
        raise edgekit.BuildError(f"MoE layer '{layer.name}': '{layer.probs}' is not computed by a Softmax")
    changed = {layer.probs}
    removed = 0
    tensor, reader = g.nodes[soft].input[0], soft
    while True:
        if g.consumers.get(tensor, []) != [reader] or tensor in g.graph_outputs:
            raise edgekit.BuildError(f"MoE layer '{layer.name}': the router's logits '{tensor}' are read by more "
                                     f"than its Softmax; cannot drop experts from the router")
        i = g.producer.get(tensor)
        if i is None:
            raise edgekit.BuildError(f"MoE layer '{layer.name}': the router's logits '{tensor}' are a graph input")
        node = g.nodes[i]
        changed.add(tensor)
        if node.op_type in ("Gemm", "MatMul"):
            if len(g.dynamic_inputs(i)) != 1 or g.is_const(node.input[0]) or not g.is_const(node.input[1]):
                raise edgekit.BuildError(
                    f"MoE layer '{layer.name}': router {g.label(i)} has no constant weights (B); run "
                    f"experts-prune before passes that quantize the router")
            weights = g.const(node.input[1])
            axis = 0 if node.op_type == "Gemm" and g.attrs(i).get("transB", 0) else weights.ndim - 1
            if weights.shape[axis] != count:
                raise edgekit.BuildError(f"MoE layer '{layer.name}': router {g.label(i)} weights of shape "
                                         f"{list(weights.shape)} do not have {count} expert outputs")
            removed += _set_const(model, g, i, 1, np.take(weights, keep, axis=axis), changed)
            if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
                removed += _slice_last(model, g, i, 2, keep, count, layer, changed)
            return removed, changed
        if node.op_type in LOGIT_OPS and len(g.dynamic_inputs(i)) == 1 and len(node.input) == 2:
            slot = 0 if g.is_const(node.input[0]) else 1
            removed += _slice_last(model, g, i, slot, keep, count, layer, changed)
            tensor, reader = node.input[1 - slot], i
            continue
        raise edgekit.BuildError(f"MoE layer '{layer.name}': {g.label(i)} between the router's linear layer and "
                                 f"its Softmax is not understood; cannot drop experts from the router")


def _slice_last(model, g: Graph, i: int, slot: int, keep: list[int], count: int, layer: MoeLayer,
                changed: set[str]) -> int:
    """Keep the ``keep`` entries of a constant broadcast along the expert axis (the last one)."""
    value = g.const(g.nodes[i].input[slot])
    if value is None:
        raise edgekit.BuildError(f"MoE layer '{layer.name}': {g.label(i)} reads a computed tensor")
    if value.ndim == 0 or value.shape[-1] == 1:
        return 0  # the same for every expert
    if value.shape[-1] != count:
        raise edgekit.BuildError(f"MoE layer '{layer.name}': {g.label(i)} constant of shape {list(value.shape)} "
                                 f"does not run along the {count} experts")
    return _set_const(model, g, i, slot, np.take(value, keep, axis=-1), changed)


def _set_const(model: onnx.ModelProto, g: Graph, i: int, slot: int, value: np.ndarray, changed: set[str]) -> int:
    """Make input ``slot`` of node ``i`` the constant ``value`` (in place where only that node reads
    the initializer, else as a new one); returns the number of values removed."""
    node = model.graph.node[i]
    name = node.input[slot]
    old = g.const(name)
    tensor = numpy_helper.from_array(np.ascontiguousarray(value.astype(old.dtype)), name)
    if name in g.initializers and g.consumers.get(name, []) == [i] and name not in g.graph_outputs:
        g.initializers[name].CopyFrom(tensor)
    else:
        taken = {t.name for t in model.graph.initializer} | set(g.producer)
        new = f"{name}/pruned"
        while new in taken:
            new += "_"
        tensor.name = new
        model.graph.initializer.append(tensor)
        node.input[slot] = new
        name = new
    changed.add(name)
    return int(old.size - value.size)


def _attach_histogram(context: edgekit.BuildContext, layer: MoeLayer) -> None:
    if not layer.pruned:
        return
    originals = original_indices(layer)
    total = layer.count + len(layer.pruned)
    freq = [0.0] * total
    for j, e in enumerate(originals):
        freq[e] = (layer.frequency or [0.0] * layer.count)[j]
    shown = replace(layer, frequency=freq, experts=layer.experts + layer.experts[:1] * len(layer.pruned))
    labels = [f"e{e}" if e in originals else f"(e{e})" for e in range(total)]
    context.attach(f"experts_{layer.name}_routing.svg", routing.histogram_svg(shown, labels))
