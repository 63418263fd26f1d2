"""``fold-batchnorm``: BatchNormalization (Ioffe & Szegedy, 2015) folded into a neighbouring layer.

Inference BN is the per-channel affine ``s = γ / sqrt(σ² + ε)``, ``t = β - μ s``. After a Conv,
ConvTranspose, Gemm or MatMul: ``W' = diag(s) W``, ``b' = s b + t``. Before a layer (when it is its
only reader): ``W' = W diag(s)``, ``b' = b + W t``, exact only when the layer reads no zero padding
(a padded convolution would need pad value ``-t/s``); such BNs are left and reported. BN in
training mode (``training_mode=1``) normalizes with batch statistics and is never folded.
"""

from __future__ import annotations

import onnx

import edgekit
from edgekit.plugins.repparam.affine_fold import fold_affines
from edgekit.plugins.repparam.graph import GraphView


def is_batchnorm(found) -> bool:
    return found.node.op_type == "BatchNormalization"


@edgekit.model_pass("fold-batchnorm", atol=1e-5, rtol=1e-5)
def fold_batchnorm(model: onnx.ModelProto, context: edgekit.BuildContext) -> onnx.ModelProto:
    """Fold inference BatchNormalization into the preceding (or an unpadded following) linear layer."""
    view = GraphView(model)
    fold_affines(view, is_batchnorm)
    note_left_batchnorms(view)
    view.findings.report(context, view.graph)
    return view.finish()


def note_left_batchnorms(view: GraphView) -> None:
    for node in view.nodes:
        if node.op_type != "BatchNormalization":
            continue
        if view.attrs(node).get("training_mode", 0):
            view.findings.skip(node, "training_mode=1 normalizes with batch statistics: not a constant affine")
        elif view.affine_at(node) is None:
            view.findings.skip(node, "parameters are not constants or the input shape is unknown")
        elif not any(name == (node.name or node.output[0]) for name, _ in view.findings.skipped):
            summed = any(r.op_type in ("Add", "Sub") for r in view.consumers.get(node.output[0], []))
            view.findings.skip(node, "a summed branch: merge-branches turns it into a delta kernel" if summed
                               else "no Conv/ConvTranspose/Gemm/MatMul next to it to fold into")
