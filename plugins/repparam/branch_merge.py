"""``merge-branches``: parallel convolutions summed into one (structural re-parameterization).

RepVGG (Ding et al., CVPR 2021): 3x3 conv + 1x1 conv + identity (BN) branches, summed. ACNet
(Ding et al., ICCV 2019): 3x3 + 1x3 + 3x1 branches. DEA-Net's DEConv (Chen et al., IEEE TIP 2024):
a vanilla conv plus central, angular, horizontal and vertical *difference* convolutions, each of
which is an ordinary kernel (a linear transform of the learned one), so they merge the same way.

Algebra: convolution is linear in its kernel, ``Σ_i sign_i conv(x, W_i) + b_i = conv(x, Σ_i sign_i
pad(W_i)) + Σ_i sign_i b_i``, where ``pad`` zero-pads each kernel so that every branch reads the
same input positions: with common padding ``P = max_i p_i`` a kernel gains ``(P - p_i)/dilation``
zeros in front (same at the end). Branches need the same stride, dilation and groups; an identity
branch is a delta kernel, a BN-only branch a scaled delta plus bias. Branches whose BN or SSF
affines were not folded yet are composed on the way. Merges that would raise MACs are skipped.
"""

from __future__ import annotations

import onnx

import edgekit
from edgekit.plugins.repparam.graph import GraphView
from edgekit.plugins.repparam.sum_merge import Policy, merge_sums

BRANCHES = Policy(max_layers=1, min_chain=1, what="parallel branches")


@edgekit.model_pass("merge-branches", atol=1e-5, rtol=1e-5)
def merge_branches(model: onnx.ModelProto, context: edgekit.BuildContext) -> onnx.ModelProto:
    """Merge summed parallel convolutions/dense layers reading one input (RepVGG, ACNet, DEConv)."""
    view = GraphView(model)
    merge_sums(view, BRANCHES)
    view.findings.report(context, view.graph)
    return view.finish()
