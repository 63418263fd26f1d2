"""Finding mixture-of-experts layers in ONNX as PyTorch exports them.

The anchor is the router: ``Softmax`` over the last axis followed by ``TopK``. From there:

* **dense form** (every expert runs, each weighted by a gate that is zero outside the top-k): the
  expert outputs are the tensors computed from the router's input alone (not from the gates) that
  the gate-dependent part reads; the layer's output is the first tensor that depends on all of them.
* **gather form** (stacked expert weights ``W[N, ...]`` gathered with the top-k indices, one slot per
  selected expert, then ``sum_k(slot * gate)``): each expert's path is specialised by replacing
  ``Gather(W, indices)`` with ``W[e]`` (Einsum over the gathered weights becomes MatMul), which gives
  the dense form.

A structural match is then confirmed numerically with onnxruntime: on sample inputs, the layer's
output must equal the top-k weighted sum of the expert outputs, which also tells which
probability column belongs to which expert and whether the gates are renormalised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgekit.moe import Expert, MoeLayer, layer_regions
from edgekit.plugins.experts.graph import Graph, run_exposing, topological_sort

GATHERS = ("Gather", "GatherND")
ELEMENTWISE_BINARY = ("Add", "Sub", "Mul", "Div")
ELEMENTWISE_UNARY = ("Relu", "Gelu", "Sigmoid", "Tanh", "Erf", "Elu", "LeakyRelu", "HardSwish",
                     "HardSigmoid", "Softplus", "Neg", "Abs", "Exp", "Sqrt", "Clip", "Identity")
#: bound on |coefficient - gate| when the combination is confirmed numerically
COEFFICIENT_TOLERANCE = 1e-3


@dataclass
class Candidate:
    """A structural match, before the numeric check."""

    router_node: str
    probs: str
    k: int
    count: int
    output: str
    expert_outputs: list[str]
    form: str


@dataclass
class Recognition:
    model: onnx.ModelProto                  # with the gather form specialised into per-expert paths
    layers: list[MoeLayer] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why a Softmax->TopK was not a MoE layer
    combines: dict[str, set[int]] = field(default_factory=dict)  # layer -> node positions of its combination


def _router(g: Graph, topk: int) -> tuple[str, int, int, str] | None:
    """(probs, k, experts, router node name) when TopK reads a last-axis Softmax, else None."""
    node = g.nodes[topk]
    probs = node.input[0]
    soft = g.producer.get(probs)
    if soft is None or g.nodes[soft].op_type != "Softmax":
        return None
    shape = g.static_shape(probs)
    k = g.const(node.input[1]) if len(node.input) > 1 else None
    if shape is None or k is None or g.attrs(topk).get("axis", -1) not in (-1, len(shape) - 1) or \
            g.attrs(soft).get("axis", -1) not in (-1, len(shape) - 1) or not g.attrs(topk).get("largest", 1):
        return None
    logits = g.nodes[soft].input[0]
    router = g.producer.get(logits)
    router_name = g.nodes[router].name or logits if router is not None else logits
    return probs, int(np.asarray(k).reshape(-1)[0]), shape[-1], router_name


def find_layers(model: onnx.ModelProto, samples: list[dict[str, np.ndarray]]) -> Recognition:
    """Every MoE layer of ``model``, confirmed on ``samples``; the returned model has the gather form
    specialised (its combination is still the original one: see :mod:`.combine`)."""
    working = onnx.ModelProto()
    working.CopyFrom(model)
    result = Recognition(working)
    candidates: list[Candidate] = []
    g = Graph(working)
    for i, node in enumerate(g.nodes):
        if node.op_type != "TopK":
            continue
        router = _router(g, i)
        if router is None:
            continue
        probs, k, count, router_name = router
        found = _dense(g, i, probs, k, count, router_name)
        if isinstance(found, str):
            found = _gather(g, i, probs, k, count, router_name)
        if isinstance(found, str):
            result.skipped.append(f"TopK {g.label(i)}: {found}")
            continue
        candidates.append(found)
    if any(c.form == "gather" for c in candidates):
        topological_sort(working)
        g = Graph(working)
    if not candidates:
        return result
    exposed = [t for c in candidates for t in (c.probs, c.output, *c.expert_outputs)]
    runs = run_exposing(working, exposed, samples)
    for n, candidate in enumerate(candidates):
        layer = _confirm(g, candidate, runs, f"moe{n}")
        if isinstance(layer, str):
            result.skipped.append(f"router {candidate.router_node!r}: {layer}")
            continue
        result.layers.append(layer)
        result.combines[layer.name] = combination(g, layer)
    return result


def combination(g: Graph, layer: MoeLayer) -> set[int]:
    """Positions of the nodes that combine the layer's experts (see :func:`edgekit.moe.layer_regions`)."""
    return layer_regions(g.model, layer)[1]


def expert_nodes(g: Graph, layer: MoeLayer) -> list[set[int]]:
    """Per expert, the positions of the nodes only it depends on (its own path from the input)."""
    return layer_regions(g.model, layer)[0]


def _dense(g: Graph, topk: int, probs: str, k: int, count: int, router: str) -> Candidate | str:
    gate_side = g.descendants(g.nodes[topk].output)
    router_side = g.ancestors([probs])
    x = _router_input(g, probs)
    if x is None:
        return "the router is not a linear layer (MatMul/Gemm, optionally + bias) before the Softmax"
    expert_side = g.descendants([x]) - gate_side - router_side - {topk}
    outputs = []
    for i in sorted(expert_side):
        for out in g.nodes[i].output:
            if any(c in gate_side for c in g.consumers.get(out, [])) and out not in outputs:
                outputs.append(out)
    if len(outputs) != count:
        return (f"{len(outputs)} gate-weighted tensors computed from the router's input '{x}', "
                f"expected one per expert ({count})")
    shapes = {g.static_shape(o) for o in outputs}
    if len(shapes) != 1 or None in shapes:
        return "the expert outputs differ in shape"
    reach = [g.descendants([o]) & gate_side for o in outputs]
    common = set.intersection(*reach)
    if not common:
        return "no tensor depends on every expert output"
    output = g.nodes[min(common)].output[0]
    return Candidate(router, probs, k, count, output, outputs, "dense")


def _router_input(g: Graph, probs: str) -> str | None:
    """The tensor the router's linear layer reads (Softmax <- [Add bias <-] MatMul/Gemm)."""
    i = g.producer.get(g.nodes[g.producer[probs]].input[0])
    if i is not None and g.nodes[i].op_type == "Add":
        dynamic = g.dynamic_inputs(i)
        i = g.producer.get(dynamic[0]) if len(dynamic) == 1 else None
    if i is None or g.nodes[i].op_type not in ("MatMul", "Gemm") or len(g.dynamic_inputs(i)) != 1:
        return None
    return g.dynamic_inputs(i)[0]


class _NotMoe(Exception):
    """Why a matched structure is not a MoE layer after all."""


def _gather(g: Graph, topk: int, probs: str, k: int, count: int, router: str) -> Candidate | str:
    """Specialise the gathered slot path per expert (adds nodes to ``g.model``)."""
    values, indices = g.nodes[topk].output[0], g.nodes[topk].output[1]
    index_side = g.descendants([indices])
    gathers = {}
    for i in sorted(index_side):
        node = g.nodes[i]
        if node.op_type in GATHERS and g.is_const(node.input[0]) and \
                g.const(node.input[0]).shape[0] == count and not g.is_const(node.input[1]):
            if node.op_type == "Gather" and g.attrs(i).get("axis", 0) != 0:
                continue
            gathers[node.output[0]] = g.const(node.input[0])
    if not gathers:
        return "neither a dense combination of experts nor stacked expert weights gathered by index"
    gate_side = g.descendants([values])
    slot = (g.descendants(gathers) - gate_side) - {g.producer[t] for t in gathers}
    leaving = [out for i in slot for out in g.nodes[i].output
               if any(c not in slot for c in g.consumers.get(out, []))]
    if len(leaving) != 1:
        return f"the gathered expert path ends in {len(leaving)} tensors, expected one"
    slot_out = leaving[0]
    mul = [c for c in g.consumers.get(slot_out, [])]
    if len(mul) != 1 or g.nodes[mul[0]].op_type != "Mul":
        return f"the gathered expert output '{slot_out}' is not multiplied by the gates"
    reduce = g.consumers.get(g.nodes[mul[0]].output[0], [])
    tokens = len(g.static_shape(indices) or ()) - 1
    if len(reduce) != 1 or g.nodes[reduce[0]].op_type != "ReduceSum" or g.attrs(reduce[0]).get("keepdims", 1):
        return "the gate-weighted slots are not summed (ReduceSum, keepdims=0)"
    axes = g.const(g.nodes[reduce[0]].input[1]) if len(g.nodes[reduce[0]].input) > 1 else None
    rank = len(g.static_shape(slot_out) or ())
    if axes is None or [int(a) % rank for a in np.asarray(axes).reshape(-1)] != [tokens]:
        return "the gate-weighted slots are not summed over the top-k axis"
    outputs = []
    try:
        outputs = [_specialise(g, sorted(slot), gathers, e, tokens, slot_out) for e in range(count)]
    except _NotMoe as exc:
        return str(exc)
    return Candidate(router, probs, k, count, g.nodes[reduce[0]].output[0], outputs, "gather")


def _specialise(g: Graph, slot: list[int], gathers: dict[str, np.ndarray], e: int, tokens: int,
                slot_out: str) -> str:
    """Append expert ``e``'s copy of the slot path (the k axis dropped, W[e] for every gathered W)
    and return its output tensor; raises _NotMoe when the path cannot be specialised."""
    graph = g.model.graph
    renamed: dict[str, str] = {}
    new_nodes, new_inits = [], []

    def name(t: str) -> str:
        return f"moe/expert{e}/{t}"

    def operand(t: str) -> str:
        if t in gathers:
            if name(t) not in {i.name for i in new_inits}:
                new_inits.append(numpy_helper.from_array(np.ascontiguousarray(gathers[t][e]), name(t)))
            return name(t)
        return renamed.get(t, t)

    for i in slot:
        node = g.nodes[i]
        label = g.label(i)
        ins = [operand(t) for t in node.input]
        outs = [name(o) for o in node.output]
        if node.op_type == "Einsum":
            equation = _per_expert_equation(g.attrs(i)["equation"], node.input, gathers, renamed, tokens)
            if equation is None:
                raise _NotMoe(f"Einsum {label}: not a per-token product with the gathered weights")
            if _is_matmul(equation):
                new_nodes.append(helper.make_node("MatMul", ins, outs, name=name(node.name or node.output[0])))
            else:
                new_nodes.append(helper.make_node("Einsum", ins, outs, equation=equation,
                                                  name=name(node.name or node.output[0])))
        elif node.op_type in ELEMENTWISE_BINARY + ELEMENTWISE_UNARY:
            if any(t not in gathers and t not in renamed and not g.is_const(t) and t not in slot_inputs(g, slot)
                   for t in node.input if t):
                raise _NotMoe(f"{label}: mixes the expert slots with another tensor")
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            del copy.input[:]
            copy.input.extend(ins)
            del copy.output[:]
            copy.output.extend(outs)
            copy.name = name(node.name or node.output[0])
            new_nodes.append(copy)
        else:
            raise _NotMoe(f"{label}: op {node.op_type} in the gathered expert path is not understood")
        renamed.update(zip(node.output, outs))
    graph.node.extend(new_nodes)
    graph.initializer.extend(new_inits)
    return renamed[slot_out]


def slot_inputs(g: Graph, slot: list[int]) -> set[str]:
    """Tensors the slot path reads from outside (the expert input)."""
    produced = {o for i in slot for o in g.nodes[i].output}
    return {t for i in slot for t in g.dynamic_inputs(i) if t not in produced}


def _per_expert_equation(equation: bytes | str, inputs, gathers, renamed, tokens: int) -> str | None:
    text = equation.decode() if isinstance(equation, bytes) else equation
    if "..." in text or "->" not in text:
        return None
    lhs, out = text.replace(" ", "").split("->")
    terms = lhs.split(",")
    if len(terms) != len(inputs):
        return None
    k_label = None
    new_terms = []
    for term, t in zip(terms, inputs):
        if t in gathers:  # [*tokens, k, ...]: the weights of the selected experts
            k_label = term[tokens]
            new_terms.append(term[tokens + 1:])
        elif t in renamed:  # a slot tensor [*tokens, k, ...]
            k_label = term[tokens]
            new_terms.append(term[:tokens] + term[tokens + 1:])
        else:
            new_terms.append(term)
    if k_label is None or k_label not in out:
        return None
    return ",".join(new_terms) + "->" + out.replace(k_label, "")


def _is_matmul(equation: str) -> bool:
    """``<P>a,ab-><P>b``: a product with a 2-D constant that MatMul computes."""
    lhs, out = equation.split("->")
    terms = lhs.split(",")
    if len(terms) != 2 or len(terms[1]) != 2:
        return False
    a, (b0, b1) = terms[0], terms[1]
    return a.endswith(b0) and out == a[:-1] + b1 and len(set(a + b1)) == len(a) + 1


def _confirm(g: Graph, c: Candidate, runs: list[dict[str, np.ndarray]], name: str) -> MoeLayer | str:
    """Which probability column weights which expert output, and whether the top-k gates are
    renormalised, from the outputs on the samples; a reason when the output is no such sum."""
    probs = np.concatenate([r[c.probs].reshape(-1, c.count) for r in runs]).astype(np.float64)
    def rows(name: str) -> np.ndarray:
        return np.concatenate([r[name].reshape(-1, r[name].shape[-1]) for r in runs]).astype(np.float64)

    y = rows(c.output)
    ys = np.stack([rows(o) for o in c.expert_outputs], axis=1)  # [tokens, experts, features]
    if ys.shape[2] != y.shape[1]:
        return "the expert outputs and the layer output differ in width"
    order = np.argsort(-probs, axis=1, kind="stable")[:, :c.k]
    best = None
    for renormalize in (True, False):
        top = np.take_along_axis(probs, order, axis=1)
        if renormalize:
            top = top / top.sum(axis=1, keepdims=True)
        gates = np.zeros_like(probs)
        np.put_along_axis(gates, order, top, axis=1)
        assignment = _assign(ys, y, gates, c.count)
        if assignment is None:
            continue
        recon = np.einsum("te,tef->tf", gates, ys[:, assignment])
        error = float(np.max(np.abs(recon - y)))
        if error <= 1e-4 + 1e-4 * float(np.max(np.abs(y))) and (best is None or error < best[0]):
            best = (error, renormalize, assignment)
    if best is None:
        return "its output is not the top-k gate-weighted sum of the expert outputs"
    _, renormalize, assignment = best
    expert_outputs = [c.expert_outputs[j] for j in assignment]
    layer = MoeLayer(name=name, input="", probs=c.probs, output=c.output, k=c.k, renormalize=renormalize,
                     experts=[Expert(output=o) for o in expert_outputs], router_node=c.router_node, form=c.form)
    try:
        layer.input = _expert_inputs(g, layer)
    except _NotMoe as exc:
        return str(exc)
    for expert, nodes in zip(layer.experts, expert_nodes(g, layer)):
        expert.weights = sorted({t for i in nodes for t in g.nodes[i].input if t in g.initializers})
        expert.parameters = int(sum(np.prod(g.initializers[t].dims, dtype=np.int64) for t in expert.weights))
    return layer


def _assign(ys: np.ndarray, y: np.ndarray, gates: np.ndarray, count: int) -> list[int] | None:
    """For each probability column, the expert output it weights (least squares per token), or
    None when the per-token coefficients do not match the gates."""
    tokens, _, features = ys.shape
    if features < count:  # too few equations per token to solve: the structural order stands
        return list(range(count))
    coefficients = np.stack([np.linalg.lstsq(ys[t].T, y[t], rcond=None)[0] for t in range(tokens)])
    assignment: list[int] = []
    for column in range(count):
        distance = np.max(np.abs(coefficients - gates[:, column:column + 1]), axis=0)
        fits = [j for j in range(count) if distance[j] <= COEFFICIENT_TOLERANCE and j not in assignment]
        if not fits:
            return None
        # experts never routed on the samples fit any unrouted column: keep the graph's order then
        assignment.append(column if column in fits else min(fits, key=lambda j: distance[j]))
    return assignment


def _expert_inputs(g: Graph, layer: MoeLayer) -> str:
    """The one tensor every expert is computed from (_NotMoe when there is not one)."""
    sets = expert_nodes(g, layer)
    entering = set()
    for nodes in sets:
        if not nodes:
            raise _NotMoe("an expert has no nodes of its own")
        produced = {o for i in nodes for o in g.nodes[i].output}
        entering |= {t for i in nodes for t in g.dynamic_inputs(i) if t not in produced}
    if len(entering) != 1:
        raise _NotMoe(f"the experts read {len(entering)} tensors ({', '.join(sorted(entering))}), expected one")
    return entering.pop()
