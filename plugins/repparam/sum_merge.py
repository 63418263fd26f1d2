"""Merging a sum of linear branches that read the same input into one layer: the engine behind
``merge-branches`` (RepVGG, ACNet, DEConv) and ``merge-lora``.

A *sum tree* is a maximal tree of Add/Sub nodes whose inner values feed nothing else. Each of its
terms is traced back through a chain of linear steps (layers with constant weights, per-channel
affines) whose intermediate values feed nothing else; every value on the way is a candidate
*source*. The source shared by the most terms wins; the chains of those terms are composed into one
layer each (an empty chain is the identity: a delta kernel) and summed with kernels zero-padded to a
common aligned size (see :mod:`algebra`). The remaining terms are added back unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import onnx
from onnx import helper

from edgekit.plugins.repparam import algebra
from edgekit.plugins.repparam.algebra import Linear, NotExact
from edgekit.plugins.repparam.graph import AffineNode, GraphView, Unit

Step = Unit | AffineNode


@dataclass(frozen=True)
class Policy:
    """Which branches a pass merges: at most ``max_layers`` weighted layers per branch, and at least
    one branch with ``min_chain`` of them (2 for a low-rank adapter)."""

    max_layers: int
    min_chain: int
    what: str


@dataclass
class Term:
    value: str
    sign: float


@dataclass
class Chain:
    term: int
    nodes: list[onnx.NodeProto]
    steps: list[Step]  # from the source to the term

    @property
    def layers(self) -> int:
        return sum(isinstance(s, Unit) for s in self.steps)


def merge_sums(view: GraphView, policy: Policy) -> None:
    view.rewrite_all(lambda node: node.op_type in ("Add", "Sub") and not _absorbed(view, node)
                     and _merge_tree(view, node, policy))


def _same_shape_sum(view: GraphView, node: onnx.NodeProto) -> bool:
    shape = view.shape(node.output[0])
    return (node.op_type in ("Add", "Sub") and node.domain in ("", "ai.onnx") and shape is not None
            and all(view.shape(i) == shape for i in node.input))


def _absorbed(view: GraphView, node: onnx.NodeProto) -> bool:
    """True when ``node`` is an inner node of a larger sum tree (its root handles it)."""
    parent = view.sole_consumer(node.output[0])
    return parent is not None and _same_shape_sum(view, parent) and _same_shape_sum(view, node)


def _terms(view: GraphView, root: onnx.NodeProto) -> tuple[list[Term], list[onnx.NodeProto]]:
    terms: list[Term] = []
    tree: list[onnx.NodeProto] = []

    def expand(node: onnx.NodeProto, sign: float) -> None:
        tree.append(node)
        for index, value in enumerate(node.input):
            inner = sign * (-1.0 if node.op_type == "Sub" and index == 1 else 1.0)
            producer = view.producer.get(value)
            if (producer is not None and _same_shape_sum(view, producer)
                    and view.sole_consumer(value) is node and _same_shape_sum(view, node)):
                expand(producer, inner)
            else:
                terms.append(Term(value, inner))

    expand(root, 1.0)
    return terms, tree


def _chains(view: GraphView, term_index: int, value: str) -> dict[str, Chain]:
    """Every source a term can be traced back to, with the chain of linear steps from it."""
    found = {value: Chain(term_index, [], [])}
    nodes: list[onnx.NodeProto] = []
    steps: list[Step] = []
    current = value
    while view.sole_consumer(current) is not None:
        unit = view.unit_ending_at(current)
        if unit is not None and unit.linear.kind != algebra.CONVTRANSPOSE:
            step, source = unit, unit.input
            nodes = unit.nodes + nodes
        else:
            producer = view.producer.get(current)
            step = view.affine_at(producer) if producer is not None else None
            if step is None:
                break
            source = step.input
            nodes = [producer] + nodes
        steps = [step] + steps
        current = source
        if current in found:
            break
        found[current] = Chain(term_index, list(nodes), list(steps))
    return found


def _compose(chain: Chain, template: Unit, view: GraphView, source: str) -> Linear:
    """One layer computing a chain (raises NotExact when none does)."""
    shape = view.shape(source)
    axis = template.channel_axis(len(shape))
    pending: list = []  # affines before the first layer
    layer: Linear | None = None
    for step in chain.steps:
        if isinstance(step, Unit):
            if step.linear.kind != template.linear.kind:
                raise NotExact(f"a {step.op} branch next to a {template.op} branch")
            if layer is None:
                layer = step.linear
                for affine in reversed(pending):
                    layer = algebra.affine_before(layer, affine)
            else:
                layer = algebra.compose(layer, step.linear)
            continue
        affine = step.along(axis)
        if affine is None:
            raise NotExact(f"{step.node.op_type} '{step.node.name}' is not per-channel on the layer's channel axis")
        if layer is None:
            pending.append(affine)
        else:
            layer = algebra.affine_after(layer, affine)
    if layer is None:
        layer = algebra.identity_like(template.linear, shape[axis])
        for affine in pending:
            layer = algebra.affine_after(layer, affine)
    return layer


def _merge_tree(view: GraphView, root: onnx.NodeProto, policy: Policy) -> bool:
    shape = view.shape(root.output[0])
    if not shape:
        return False
    terms, tree = _terms(view, root)
    if len(terms) < 2:
        return False
    by_source: dict[str, list[Chain]] = {}
    for index, term in enumerate(terms):
        if view.shape(term.value) != shape:
            continue
        for source, chain in _chains(view, index, term.value).items():
            if chain.layers <= policy.max_layers:
                by_source.setdefault(source, []).append(chain)
    groups = [(s, c) for s, c in by_source.items()
              if len(c) >= 2 and any(ch.layers >= policy.min_chain for ch in c) and any(ch.layers for ch in c)]
    if not groups:
        return False
    source, chains = max(groups, key=lambda item: len(item[1]))
    units = [s for ch in chains for s in ch.steps if isinstance(s, Unit)]
    template = max(units, key=lambda u: u.linear.weight.size)
    layers, merged_chains = [], []
    for chain in chains:
        try:
            layer = _compose(chain, template, view, source)
        except NotExact as exc:
            view.findings.skip(root, f"branch '{terms[chain.term].value}' not merged: {exc}")
            continue
        layers.append(layer if terms[chain.term].sign > 0 else algebra.negate(layer))
        merged_chains.append(chain)
    if len(merged_chains) < 2 or not any(ch.layers >= policy.min_chain for ch in merged_chains):
        return False
    try:
        merged = algebra.add(layers)
    except NotExact as exc:
        view.findings.skip(root, f"{policy.what} not merged: {exc}")
        return False
    removed = [n for ch in merged_chains for n in ch.nodes]
    before = view.macs(removed)
    after = math.prod(shape) * merged.macs_per_output()
    if after > before:
        view.findings.skip(root, f"{policy.what} not merged: one layer would cost {after} MACs, "
                                 f"the branches cost {before}")
        return False
    _emit_sum(view, root, tree, terms, merged_chains, merged, source, template, removed)
    view.findings.match(f"merged {policy.what} ({len(merged_chains)} branches) into one {template.op}")
    return True


def _emit_sum(view: GraphView, root, tree, terms, merged_chains, merged, source, template, removed) -> None:
    output = root.output[0]
    rest = [t for i, t in enumerate(terms) if i not in {ch.term for ch in merged_chains}]
    if not rest:
        view.replace(removed + tree, {id(root): view.emit(merged, source, output, template)})
        return
    partial = view.fresh(f"{output}_merged")
    view.shapes[partial] = view.shapes[output]  # later matches cost this layer by its output shape
    new_nodes = view.emit(merged, source, partial, template)
    current = partial
    for i, term in enumerate(rest):
        target = output if i == len(rest) - 1 else view.fresh(f"{output}_sum")
        view.shapes[target] = view.shapes[output]
        op = "Add" if term.sign > 0 else "Sub"
        new_nodes.append(helper.make_node(op, [current, term.value], [target], name=view.fresh(f"{root.name}_{op}")))
        current = target
    view.replace(removed + tree, {id(root): new_nodes})
