"""``experts-partition``: mixture-of-experts layers for conditional execution, after EdgeMoE
("EdgeMoE: Fast On-Device Inference of MoE-based Large Language Models", Yi et al., 2023):
non-expert weights stay resident; each expert is a partition of its own that runs (and is loaded)
only when the router selects it.

The rewrite: each MoE layer (dense or gather form, see :mod:`.recognize`) becomes the backbone,
one sub-graph per expert computed from the layer's input alone, and the canonical top-k
combination (:mod:`.combine`); the layer is recorded in the model's metadata
(:mod:`edgekit.moe`) with its routing frequencies on calibration data. The graph stays standard
ONNX and computes the same values; back ends read the metadata to run only the k selected experts.
"""

from __future__ import annotations

import onnx

import edgekit
from edgekit.moe import moe_layers, set_moe_layers
from edgekit.plugins.experts import routing
from edgekit.plugins.experts.combine import replace_combine
from edgekit.plugins.experts.graph import Graph, remove_unused
from edgekit.plugins.experts.recognize import combination, find_layers


@edgekit.model_pass("experts-partition", atol=1e-5, rtol=1e-5)
def partition_experts(model: onnx.ModelProto, context: edgekit.BuildContext) -> onnx.ModelProto:
    """Partition mixture-of-experts layers into backbone and experts for conditional execution (EdgeMoE)."""
    if moe_layers(model):
        context.note("the model's MoE layers are already partitioned")
        return model
    purpose = "MoE routing frequencies measured"
    data = routing.samples(model, context, purpose, warn=False)
    found = find_layers(model, data)
    for reason in found.skipped:
        context.note(f"not a MoE layer: {reason}")
    working = found.model
    for layer in found.layers:
        g = Graph(working)
        tokens = g.static_shape(layer.probs)[:-1]
        replace_combine(working, layer, tokens, combination(g, layer))
        context.note(f"{layer.name}: {layer.count} experts, top-{layer.k} ({layer.form} form, router "
                     f"'{layer.router_node}')", input=layer.input, output=layer.output,
                     parameters_per_expert=layer.experts[0].parameters)
    if not found.layers:
        context.note("no mixture-of-experts layer found")
        return model
    routing.warn_random(context, purpose)
    remove_unused(working)
    for name, freq in routing.frequencies(working, found.layers, data).items():
        next(layer for layer in found.layers if layer.name == name).frequency = freq
    set_moe_layers(working, found.layers)
    routing.record(context, found.layers)
    return working
