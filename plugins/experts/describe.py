"""``edgekit inspect``'s table of mixture-of-experts layers (hook ``edgekit_describe_model``).

A partitioned model (``experts-partition`` ran) is described from its metadata
(:mod:`edgekit.moe`). Any other model is recognised as the partition pass would recognise it
(:func:`.recognize.find_layers`), confirmed on a few seeded random inputs: inspecting is quick, and
the structure, unlike the routing frequencies, does not depend on the data.
"""

from __future__ import annotations

from typing import Any

import onnx

import edgekit
from edgekit.moe import MoeLayer, moe_layers

#: Seeded random inputs the numeric confirmation of a recognised layer runs on.
DESCRIBE_SAMPLES = 4
COLUMNS = ["layer", "form", "experts", "k", "renormalize", "router node", "parameters per expert"]


def describe_moe(model: onnx.ModelProto, context: edgekit.BuildContext) -> dict[str, Any] | None:
    """The MoE layers of ``model`` as a table, or None when it has none."""
    layers = moe_layers(model)
    source = "partitioned: from the model's metadata"
    if not layers:
        if not any(node.op_type == "TopK" for node in model.graph.node):
            return None  # no router: not worth a shape inference and onnxruntime runs
        from edgekit.model import graph_inputs, tensor_dims
        from edgekit.plugins.experts.recognize import find_layers
        from edgekit.verify import random_inputs

        dynamic = [v.name for v in graph_inputs(model) if not all(isinstance(d, int) for d in tensor_dims(v))]
        if dynamic:
            raise edgekit.UsageError(f"input(s) {', '.join(dynamic)} have dynamic dims: give --input-shape "
                                     "to look for mixture-of-experts layers")
        seed = int(context.option("seed", 0) or 0) + 1
        layers = find_layers(model, random_inputs(model, DESCRIBE_SAMPLES, seed)).layers
        source = f"recognised, confirmed on {DESCRIBE_SAMPLES} seeded random inputs"
    if not layers:
        return None
    return {"title": f"mixture-of-experts layers ({source})", "columns": list(COLUMNS),
            "rows": [_row(layer) for layer in layers]}


def _row(layer: MoeLayer) -> list[Any]:
    parameters = [e.parameters for e in layer.experts]
    per_expert: int | str = parameters[0] if len(set(parameters)) == 1 else \
        ", ".join(f"{p:,}" for p in parameters)
    return [layer.name, layer.form, layer.count, layer.k, layer.renormalize, layer.router_node, per_expert]
