"""``fold-ssf``: SSF, "Scaling & Shifting Your Features" (Lian et al., NeurIPS 2022).

SSF tunes a per-channel scale γ and shift β after each operation: ``y = γ ⊙ x + β``, exported as a
Mul and an Add by constants. After a Conv, Gemm or MatMul (+bias) they fold into the layer:
``W' = diag(γ) W``, ``b' = γ ⊙ b + β``, chains of them one after another. Before a layer they fold
into its input channels, ``W' = W diag(γ)``, ``b' = b + W β``, where exact: the scale always (zero
padding scales to zero), the shift only before an unpadded convolution or a dense layer; a shift
before a zero-padded convolution is left in place and the report says why. After a
LayerNormalization over the last axis the affine folds into its scale and bias, and a LayerNorm's
own affine folds into the dense layers reading it (the same algebra). Mul/Add by computed tensors
are never touched.
"""

from __future__ import annotations

import onnx

import edgekit
from edgekit.plugins.repparam.affine_fold import fold_affines
from edgekit.plugins.repparam.graph import GraphView

SSF_OPS = ("Mul", "Add", "Sub")


@edgekit.model_pass("fold-ssf", atol=1e-5, rtol=1e-5)
def fold_ssf(model: onnx.ModelProto, context: edgekit.BuildContext) -> onnx.ModelProto:
    """Fold per-channel scale/shift (SSF, LayerNorm affine) into adjacent Conv/Gemm/MatMul weights."""
    view = GraphView(model)
    fold_affines(view, lambda found: found.node.op_type in SSF_OPS, layernorm=True)
    view.findings.report(context, view.graph)
    return view.finish()
