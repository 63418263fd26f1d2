"""Folding per-channel affines (``y = s*x + t``) into the linear layer next to them: the engine behind
``fold-ssf`` and ``fold-batchnorm`` (and the affine part of ``collapse-linear-chains``).

An affine *after* a layer folds into its weights and bias when the layer's output feeds nothing
else; otherwise an affine *before* layers folds into every one of them when they are its only
readers (each gets its own copy of the weights when they were shared). LayerNormalization over the
last axis counts as a layer for an affine after it (its own scale and bias absorb it), and its own
affine folds into the dense layers that read it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper

from edgekit.plugins.repparam import algebra
from edgekit.plugins.repparam.algebra import Affine, NotExact
from edgekit.plugins.repparam.graph import WEIGHT_OPS, AffineNode, GraphView

Accept = Callable[[AffineNode], bool]


def fold_affines(view: GraphView, accept: Accept, layernorm: bool = False) -> None:
    """Fold every accepted affine, one rewrite at a time, until none applies."""
    view.rewrite_all(lambda node: _fold_one(view, node, accept, layernorm))


def _fold_one(view: GraphView, node: onnx.NodeProto, accept: Accept, layernorm: bool) -> bool:
    if layernorm and node.op_type == "LayerNormalization":
        return _layernorm_into_layers(view, node)
    found = view.affine_at(node)
    if found is None or not accept(found) or _is_matmul_bias(view, found):
        return False
    return _into_producer(view, found, layernorm) or _into_consumers(view, found)


def _is_matmul_bias(view: GraphView, found: AffineNode) -> bool:
    """A MatMul's bias Add is part of the plain layer, not an affine to fold."""
    unit = view.unit_ending_at(found.node.output[0])
    return unit is not None and found.node in unit.nodes


def _into_producer(view: GraphView, found: AffineNode, layernorm: bool) -> bool:
    producer = view.producer.get(found.input)
    if producer is None:
        return False
    if layernorm and producer.op_type == "LayerNormalization":
        return _into_layernorm(view, found, producer)
    unit = view.unit_ending_at(found.input)
    if unit is None:
        return False
    if view.sole_consumer(found.input) is not found.node:
        view.findings.skip(found.node, f"the {unit.op} output it follows is also read elsewhere")
        return False
    affine = found.along(unit.channel_axis(len(found.shape)))
    if affine is None:
        return False
    if unit.op == "MatMul" and len(unit.nodes) == 1 and not np.any(affine.scale != 1):
        return False  # a shift after a bare MatMul is its bias: the plain layer already
    folded = algebra.affine_after(unit.linear, affine)
    new_nodes = view.emit(folded, unit.input, found.node.output[0], unit)
    view.replace(unit.nodes + [found.node], {id(found.node): new_nodes})
    view.findings.match(f"folded {found.node.op_type} into the preceding {unit.op}")
    return True


def _into_consumers(view: GraphView, found: AffineNode) -> bool:
    output = found.node.output[0]
    readers = view.consumers.get(output, [])
    if output in view.outputs or not readers or not all(r.op_type in WEIGHT_OPS for r in readers):
        return False
    units = [view.unit_at(r) for r in readers]
    if any(u is None or list(u.head.input).count(output) != 1 or u.head.input[0] != output for u in units):
        view.findings.skip(found.node, "a layer reading it has non-constant weights or reads it twice")
        return False
    affines = [found.along(u.channel_axis(len(found.shape))) for u in units]
    if any(a is None for a in affines):
        return False
    try:
        folded = [algebra.affine_before(u.linear, a) for u, a in zip(units, affines)]
    except NotExact as exc:
        view.findings.skip(found.node, f"not folded into the following {units[0].op}: {exc}")
        return False
    insert = {id(u.nodes[-1]): view.emit(f, found.input, u.output, u) for u, f in zip(units, folded)}
    view.replace([found.node] + [n for u in units for n in u.nodes], insert)
    view.findings.match(f"folded {found.node.op_type} into the following {units[0].op}")
    return True


# ---------------------------------------------------------------------------------------------------
# LayerNormalization's elementwise affine
# ---------------------------------------------------------------------------------------------------

def _layernorm_parts(view: GraphView, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
    """Scale and bias of a LayerNormalization that normalizes the last axis only, else None."""
    shape = view.shape(node.input[0])
    axis = view.attrs(node).get("axis", -1)
    if not shape or axis % len(shape) != len(shape) - 1 or len(node.output) != 1:
        return None
    scale = view.const(node.input[1])
    bias = view.const(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(shape[-1])
    if scale is None or bias is None:
        return None
    channels = shape[-1]
    scale, bias = algebra.per_channel(scale, 1, 0, channels), algebra.per_channel(bias, 1, 0, channels)
    return None if scale is None or bias is None else (scale, bias)


def _layernorm_node(view: GraphView, node: onnx.NodeProto, scale: np.ndarray, bias: np.ndarray | None,
                    output: str) -> onnx.NodeProto:
    dtype = view.const(node.input[1]).dtype
    inputs = [node.input[0], view.add_constant(scale.astype(dtype), f"{node.name or output}_scale")]
    if bias is not None:
        inputs.append(view.add_constant(bias.astype(dtype), f"{node.name or output}_bias"))
    return helper.make_node("LayerNormalization", inputs, [output], name=node.name,
                            **{a.name: helper.get_attribute_value(a) for a in node.attribute})


def _into_layernorm(view: GraphView, found: AffineNode, norm: onnx.NodeProto) -> bool:
    parts = _layernorm_parts(view, norm)
    affine = found.along(-1)
    if parts is None or affine is None or view.sole_consumer(found.input) is not found.node:
        return False
    s, t = affine.scale, affine.shift
    scale, bias = parts[0] * s, parts[1] * s + t
    new = _layernorm_node(view, norm, scale, bias if np.any(bias != 0) or len(norm.input) > 2 else None,
                          found.node.output[0])
    view.replace([norm, found.node], {id(found.node): [new]})
    view.findings.match(f"folded {found.node.op_type} into the preceding LayerNormalization")
    return True


def _layernorm_into_layers(view: GraphView, norm: onnx.NodeProto) -> bool:
    """``LN(x)·γ + β`` read only by dense layers: γ, β move into their weights and biases."""
    parts = _layernorm_parts(view, norm)
    if parts is None or (not np.any(parts[0] != 1) and not np.any(parts[1] != 0)):
        return False
    output = norm.output[0]
    readers = view.consumers.get(output, [])
    if output in view.outputs or not readers:
        return False
    units = [view.unit_at(r) if r.op_type in ("Gemm", "MatMul") else None for r in readers]
    if any(u is None or u.head.input[0] != output or list(u.head.input).count(output) != 1 for u in units):
        return False
    affine = Affine(parts[0], parts[1])
    folded = [algebra.affine_before(u.linear, affine) for u in units]
    insert = {id(u.nodes[-1]): view.emit(f, output, u.output, u) for u, f in zip(units, folded)}
    plain = _layernorm_node(view, norm, np.ones_like(parts[0]), None, output)
    insert[id(norm)] = [plain]
    view.replace([norm] + [n for u in units for n in u.nodes], insert)
    view.findings.match("folded LayerNormalization's affine into the following dense layers")
    return True
