"""``collapse-linear-chains``: consecutive linear layers with no nonlinearity between them.

Composition of linear maps: ``W2 (W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2)``, for Gemm/MatMul
chains and for convolutions where one of the two is a 1x1, stride-1, unpadded, ungrouped
convolution (a k×k conv followed by a 1×1 one is one k×k conv). A BatchNormalization before or
after a layer is folded too (BN → 1x1 conv), with the exactness rules of ``fold-batchnorm``.
A chain merges only when the merged layer needs fewer MACs: a low-rank bottleneck
(``K·r + r·N < K·N``) or a depthwise-then-pointwise pair is cheaper as two layers and is left,
with the MAC counts in the report.
"""

from __future__ import annotations

import math

import onnx

import edgekit
from edgekit.plugins.repparam import algebra
from edgekit.plugins.repparam.affine_fold import fold_affines
from edgekit.plugins.repparam.algebra import NotExact
from edgekit.plugins.repparam.batchnorm_fold import is_batchnorm
from edgekit.plugins.repparam.graph import GraphView


@edgekit.model_pass("collapse-linear-chains", atol=1e-5, rtol=1e-5)
def collapse_linear_chains(model: onnx.ModelProto, context: edgekit.BuildContext) -> onnx.ModelProto:
    """Merge consecutive linear layers (1x1 Conv→Conv, Gemm→Gemm, BN→1x1 Conv) when it lowers MACs."""
    view = GraphView(model)
    fold_affines(view, is_batchnorm)
    view.rewrite_all(lambda node: _collapse_one(view, node))
    view.findings.report(context, view.graph)
    return view.finish()


def _collapse_one(view: GraphView, node: onnx.NodeProto) -> bool:
    second = view.unit_at(node)
    if second is None or second.linear.kind == algebra.CONVTRANSPOSE:
        return False
    first = view.unit_ending_at(second.input)
    if first is None or first.linear.kind != second.linear.kind or view.sole_consumer(first.output) is not node:
        return False
    try:
        merged = algebra.compose(first.linear, second.linear)
    except NotExact as exc:
        view.findings.skip(node, f"not merged with the preceding {first.op}: {exc}")
        return False
    before = view.macs(first.nodes + second.nodes)
    after = math.prod(view.shape(second.output) or [0]) * merged.macs_per_output()
    if not after or after >= before:
        view.findings.skip(node, f"not merged with the preceding {first.op}: one layer would cost {after} MACs, "
                                 f"the chain costs {before}")
        return False
    view.replace(first.nodes + second.nodes, {id(second.nodes[-1]): view.emit(merged, first.input, second.output, first)})
    view.findings.match(f"merged {first.op} → {second.op} chains")
    return True
