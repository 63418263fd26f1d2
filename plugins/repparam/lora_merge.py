"""``merge-lora``: LoRA, "Low-Rank Adaptation of Large Language Models" (Hu et al., ICLR 2022).

A LoRA-adapted layer computes ``x W + s · (x A) B`` (``A[K, r]``, ``B[r, N]``, scale ``s = α/r``),
exported as MatMul/Gemm (with transposed weights or ``transB=1``) and a Mul by the scale. It is the
single layer ``x (W + s A B)``: the adapter chain is composed (``A B``) and summed with the base
weight. The convolution form (``A`` a k×k conv to r channels, ``B`` a 1×1 conv) composes to a k×k
kernel ``W_B · W_A`` and is summed like a parallel branch.
"""

from __future__ import annotations

import onnx

import edgekit
from edgekit.plugins.repparam.graph import GraphView
from edgekit.plugins.repparam.sum_merge import Policy, merge_sums

ADAPTERS = Policy(max_layers=2, min_chain=2, what="LoRA adapter")


@edgekit.model_pass("merge-lora", atol=1e-5, rtol=1e-5)
def merge_lora(model: onnx.ModelProto, context: edgekit.BuildContext) -> onnx.ModelProto:
    """Merge low-rank adapters (x·W + s·x·A·B) into the base layer's weights (LoRA)."""
    view = GraphView(model)
    merge_sums(view, ADAPTERS)
    view.findings.report(context, view.graph)
    return view.finish()
