"""The canonical combination of a MoE layer, in standard ONNX (what :mod:`edgekit.moe` describes):
the top-k of the router's probabilities, optionally renormalised, scattered into dense gates,
and the gate-weighted sum of the expert outputs. onnxruntime runs it densely; the MCU back end
recognises it from the metadata and runs only the selected experts."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgekit.moe import MoeLayer


def combine_nodes(layer: MoeLayer, tokens: tuple[int, ...]) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes and constants computing ``layer.output`` from ``layer.probs`` and the expert outputs;
    ``tokens`` are the leading dims of the probabilities (all but the expert axis)."""
    name = layer.name
    count = layer.count

    def t(suffix: str) -> str:
        return f"{name}/combine/{suffix}"

    consts = [numpy_helper.from_array(np.array([layer.k], dtype=np.int64), t("k")),
              numpy_helper.from_array(np.array([-1], dtype=np.int64), t("last_axis")),
              numpy_helper.from_array(np.zeros((*tokens, count), dtype=np.float32), t("zero_gates"))]
    nodes = [helper.make_node("TopK", [layer.probs, t("k")], [t("top_probs"), t("expert_index")],
                              axis=-1, largest=1, sorted=1, name=t("top_k"))]
    gates_k = t("top_probs")
    if layer.renormalize:
        nodes += [helper.make_node("ReduceSum", [gates_k, t("last_axis")], [t("top_sum")], keepdims=1,
                                   name=t("top_sum")),
                  helper.make_node("Div", [gates_k, t("top_sum")], [t("top_gates")], name=t("renormalize"))]
        gates_k = t("top_gates")
    nodes.append(helper.make_node("ScatterElements", [t("zero_gates"), t("expert_index"), gates_k],
                                  [t("gates")], axis=-1, name=t("scatter_gates")))
    weighted = []
    for e, expert in enumerate(layer.experts):
        consts += [numpy_helper.from_array(np.array([e], dtype=np.int64), t(f"start{e}")),
                   numpy_helper.from_array(np.array([e + 1], dtype=np.int64), t(f"end{e}"))]
        nodes += [helper.make_node("Slice", [t("gates"), t(f"start{e}"), t(f"end{e}"), t("last_axis")],
                                   [t(f"gate{e}")], name=t(f"gate{e}")),
                  helper.make_node("Mul", [t(f"gate{e}"), expert.output], [t(f"weighted{e}")],
                                   name=t(f"weight{e}"))]
        weighted.append(t(f"weighted{e}"))
    nodes.append(helper.make_node("Sum", weighted, [layer.output], name=t("sum")))
    return nodes, consts


def replace_combine(model: onnx.ModelProto, layer: MoeLayer, tokens: tuple[int, ...],
                    old_nodes: set[int]) -> None:
    """Remove the nodes at positions ``old_nodes`` (the layer's previous combination) and add the
    canonical one (in place; the graph is left topologically ordered)."""
    from edgekit.plugins.experts.graph import replace_nodes

    replace_nodes(model, old_nodes, *combine_nodes(layer, tokens))
