"""``experts-average``: a MoE layer becomes one feed-forward network whose weights are the
element-wise mean of its experts' weights, as at the end of Experts Weights Averaging (Huang et
al., "Experts Weights Averaging: A New General Training Scheme for Vision Transformers", 2023):
a model trained so that its experts stay close to their mean loses (almost) nothing when the
layer is replaced by that mean, and then needs neither the router nor N sets of weights.

The rewrite, per partitioned layer (run ``experts-partition`` first): one copy of an expert's
sub-graph (every expert must have the same structure), reading the layer's input, with each float
constant the mean of the experts' corresponding constants (integer constants, such as quantized
weights, must agree: average before ``experts-precision`` and quantization), computes the layer's
output; the router and the combination go, and the layer leaves the MoE metadata.

Averaging is only as good as the experts are alike, so the pass measures it: on calibration data
(``--calibration``, else seeded random inputs), the max relative error of the model's outputs
against its input model, per output ``max |y - y_ref| / max |y_ref|`` (the largest over outputs).
Above ``experts_average_tolerance`` (option, default 0.01) the build fails with that number,
unless ``experts_average_force=true``. The report's ``experts.average`` has, per layer, the
experts averaged, the parameters removed and the error (max abs, relative RMS, max relative).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

import edgekit
from edgekit.model import parameter_count
from edgekit.moe import MoeLayer, layer_regions, set_moe_layers
from edgekit.plugins.experts import routing
from edgekit.plugins.experts.accuracy import copy_model, drop_value_info, output_error, rounded
from edgekit.plugins.experts.graph import Graph, remove_unused, replace_nodes
from edgekit.verify import run_onnxruntime

TOLERANCE_OPTION = "experts_average_tolerance"
FORCE_OPTION = "experts_average_force"
DEFAULT_TOLERANCE = 0.01


@edgekit.model_pass("experts-average", approximate=True)
def average_experts(model: onnx.ModelProto, context: edgekit.BuildContext) -> onnx.ModelProto:
    """Replace each MoE layer by one FFN of its experts' mean weights (Experts Weights Averaging, Huang et al.)."""
    layers = routing.partitioned_layers(model, context)
    if not layers:
        return model
    tolerance = context.number(TOLERANCE_OPTION, DEFAULT_TOLERANCE)
    force = context.flag(FORCE_OPTION, False)
    data = routing.samples(model, context, "the error of averaging experts measured")
    reference = run_onnxruntime(model, data, "model before experts-average")
    working = copy_model(model)  # the caller's model stays as it was
    entries = []
    error = output_error([], [])
    for layer in layers:
        before = parameter_count(working)
        _average_layer(working, layer)
        remove_unused(working)
        drop_value_info(working)
        error = output_error(reference, run_onnxruntime(working, data, "model after experts-average"))
        # all the initializers' values: N - 1 experts' weights, the router's and the combination's constants
        entries.append({"layer": layer.name, "experts": layer.count, "k": layer.k,
                        "expert_parameters_removed": sum(e.parameters for e in layer.experts[1:]),
                        "parameters_removed": before - parameter_count(working), "output_error": rounded(error)})
        context.note(f"{layer.name}: {layer.count} experts averaged into one FFN, router and combination removed, "
                     f"{before - parameter_count(working)} parameters removed; output error so far: max relative "
                     f"{error['max_relative']:.3g}, max abs {error['max_abs']:.3g}, relative RMS "
                     f"{error['relative_rms']:.3g}")
    context.section("experts")["average"] = {
        "tolerance": tolerance, "forced": force, "calibration_samples": len(data), "layers": entries,
        "parameters_removed": sum(e["parameters_removed"] for e in entries), "output_error": rounded(error),
        "max_relative_error": "max over outputs of max |y - y_ref| / max |y_ref| on the calibration data"}
    measured = error["max_relative"]
    if measured > tolerance:
        if not force:
            raise edgekit.BuildError(
                f"experts-average: averaging the experts of {', '.join(repr(l.name) for l in layers)} changes "
                f"the model's outputs by a max relative error of {measured:.4g} (max abs error "
                f"{error['max_abs']:.4g}) on {len(data)} calibration samples, above {TOLERANCE_OPTION}="
                f"{tolerance:g}: these experts are not close to their mean; keep the MoE layer, or accept the "
                f"error with --option {FORCE_OPTION}=true (or a larger --option {TOLERANCE_OPTION})")
        context.note(f"max relative error {measured:.4g} is above {TOLERANCE_OPTION}={tolerance:g}; kept "
                     f"({FORCE_OPTION}=true)")
    set_moe_layers(working, [])
    for layer in layers:  # the routing pictures of layers that no longer exist
        context.attachments.pop(f"experts_{layer.name}_routing.svg", None)
    routing.record(context, [])
    return working


def _canonical(g: Graph, region: set[int], output: str) -> list[int]:
    """The expert's nodes in one order that depends on its structure alone (depth first from its
    output, inputs in order), so corresponding nodes of two experts share a position."""
    order: list[int] = []
    seen: set[int] = set()
    stack = [(g.producer[output], False)]
    while stack:
        i, expanded = stack.pop()
        if expanded:
            order.append(i)
            continue
        if i in seen:
            continue
        seen.add(i)
        stack.append((i, True))
        for t in reversed(g.nodes[i].input):
            p = g.producer.get(t)
            if p is not None and p in region and p not in seen:
                stack.append((p, False))
    return order


def _describe(g: Graph, order: list[int], layer: MoeLayer, output: str) -> list[tuple]:
    """The structure of an expert: per node, its op, attributes and where each input comes from."""
    position = {i: j for j, i in enumerate(order)}
    result = []
    for i in order:
        node = g.nodes[i]
        inputs = []
        for t in node.input:
            p = g.producer.get(t)
            if not t:
                inputs.append(("none",))
            elif t == layer.input:
                inputs.append(("input",))
            elif p in position:
                inputs.append(("node", position[p], list(g.nodes[p].output).index(t)))
            elif g.is_const(t):
                value = g.const(t)
                inputs.append(("const", str(value.dtype) if value is not None else t,
                               value.shape if value is not None else ()))
            else:
                inputs.append(("tensor", t))
        attrs = []
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                value = numpy_helper.to_array(a.t)
                attrs.append((a.name, "tensor", str(value.dtype), value.shape))
            elif a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                attrs.append((a.name, "graph", id(a)))  # never equal: sub-graphs are not averaged
            else:
                attrs.append((a.name, repr(helper.get_attribute_value(a))))
        outs = tuple(o == output for o in node.output)
        result.append((node.op_type, node.domain, tuple(inputs), tuple(sorted(attrs)), outs))
    return result


def _mean(values: list[np.ndarray], what: str, layer: MoeLayer) -> np.ndarray:
    if np.issubdtype(values[0].dtype, np.floating):
        return np.mean(np.stack([v.astype(np.float64) for v in values]), axis=0).astype(values[0].dtype)
    for e, v in enumerate(values[1:], 1):
        if not np.array_equal(v, values[0]):
            raise edgekit.BuildError(
                f"MoE layer '{layer.name}': {what} of expert {e} differs from expert 0's and is not float "
                f"({v.dtype}): integer (quantized) weights cannot be averaged; run experts-average before "
                f"experts-precision and quantization")
    return values[0]


def _average_layer(model: onnx.ModelProto, layer: MoeLayer) -> None:
    """Replace the layer's experts, router and combination by one FFN of the mean weights (in place;
    the router is left unread, for :func:`remove_unused`)."""
    g = Graph(model)
    regions, combination = layer_regions(model, layer)
    orders = [_canonical(g, region, expert.output) for region, expert in zip(regions, layer.experts)]
    shapes = [_describe(g, order, layer, expert.output) for order, expert in zip(orders, layer.experts)]
    for e, (order, region) in enumerate(zip(orders, regions)):
        if set(order) != region:
            raise edgekit.BuildError(f"MoE layer '{layer.name}': expert {e} has nodes its output does not "
                                     f"depend on; cannot average")
        if shapes[e] != shapes[0]:
            differing = [j for j, (a, b) in enumerate(zip(shapes[0], shapes[e])) if a != b]
            j = differing[0] if differing else min(len(shapes[0]), len(shapes[e]))
            raise edgekit.BuildError(
                f"MoE layer '{layer.name}': expert {e} differs in structure from expert 0 (at its node {j}: "
                f"{_label(g, orders[e], j)} vs {_label(g, orders[0], j)}); averaging needs experts of one "
                f"architecture")
    produced = {o for i in combination for o in g.nodes[i].output}
    for i, node in enumerate(g.nodes):
        if i not in combination and any(t in produced and t != layer.output for t in node.input):
            raise edgekit.BuildError(f"MoE layer '{layer.name}': {g.label(i)} reads the layer's combination; "
                                     f"cannot replace it")
    prefix = f"{layer.name}/average"
    taken = set(g.producer) | set(g.initializers) | {i.name for i in model.graph.input}

    def fresh(name: str) -> str:
        new = f"{prefix}/{name}"
        while new in taken:
            new += "_"
        taken.add(new)
        return new

    renamed: dict[str, str] = {}
    nodes, inits = [], []
    for j, i in enumerate(orders[0]):
        node = g.nodes[i]
        counterparts = [g.nodes[order[j]] for order in orders]
        new = helper.make_node(node.op_type, [], [], name=fresh(node.name or node.output[0]), domain=node.domain)
        for slot, t in enumerate(node.input):
            names = [n.input[slot] for n in counterparts]
            if not t or t == layer.input:
                new.input.append(t)
            elif t in renamed:
                new.input.append(renamed[t])
            elif g.is_const(t):
                if len(set(names)) == 1:  # one constant all experts read
                    new.input.append(t)
                    continue
                value = _mean([g.const(n) for n in names], f"constant '{names[0]}' (input {slot} of "
                              f"{g.label(i)})", layer)
                inits.append(numpy_helper.from_array(np.ascontiguousarray(value), fresh(t)))
                new.input.append(inits[-1].name)
            else:
                new.input.append(t)
        for attribute in node.attribute:
            copy = onnx.AttributeProto()
            copy.CopyFrom(attribute)
            if attribute.type == onnx.AttributeProto.TENSOR:
                value = _mean([numpy_helper.to_array(_attribute(n, attribute.name).t) for n in counterparts],
                              f"attribute '{attribute.name}' of {g.label(i)}", layer)
                copy.t.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), attribute.t.name))
            new.attribute.append(copy)
        for o in node.output:
            renamed[o] = layer.output if o == layer.experts[0].output else (fresh(o) if o else "")
            new.output.append(renamed[o])
        nodes.append(new)
    replace_nodes(model, combination, nodes, inits)


def _attribute(node: onnx.NodeProto, name: str) -> onnx.AttributeProto:
    return next(a for a in node.attribute if a.name == name)


def _label(g: Graph, order: list[int], j: int) -> str:
    return g.label(order[j]) if j < len(order) else "none"
