"""Mixture-of-experts layers as a model carries them from the passes that find them to the back ends.

A pass that recognises MoE layers (plugin ``experts``) records each one in the model's metadata
(``metadata_props`` key :data:`METADATA_KEY`, JSON) in one canonical form, and back ends read it to
run only the routed experts. The graph itself stays standard ONNX, so onnxruntime still computes
(densely) exactly what the metadata promises::

    probs            tensor ``probs`` [*tokens, N]: the router's probabilities
    (g, idx)         the k largest probs per token (lowest index first among equals);
                     g /= sum(g) when ``renormalize``
    output[t]        sum_j g[t, j] * expert[idx[t, j]](input)[t]

where each expert's output tensor is computed from ``input`` alone, token by token (every op of
the expert sees one token's row independently), and ``tokens`` are the leading dims of ``input``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import onnx

METADATA_KEY = "edgekit.moe"


@dataclass
class Expert:
    """One expert: its output tensor, the initializers only it reads, and how they are stored."""

    output: str
    weights: list[str] = field(default_factory=list)
    parameters: int = 0
    precision: str = "float32"  # float32 | int8 | int4 (its weights), set by the precision pass
    device: str = ""  # compute unit planned for it: "" (no plan) | cpu | gpu, set by experts-device-split


@dataclass
class MoeLayer:
    name: str
    input: str
    probs: str
    output: str
    k: int
    renormalize: bool
    experts: list[Expert]
    router_node: str = ""  # the node computing the router's logits (for messages)
    form: str = "dense"    # how the model wrote it before partitioning: dense | gather
    # routing frequency per expert on calibration data (fraction of tokens whose top-k holds it)
    frequency: list[float] | None = None
    pruned: list[int] = field(default_factory=list)  # original indices of removed experts
    # compute unit planned for the layer's router and combination (the backbone): "" | cpu | gpu
    backbone_device: str = ""

    @property
    def count(self) -> int:
        return len(self.experts)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MoeLayer:
        experts = [Expert(**e) for e in data.get("experts", [])]
        return cls(**{**data, "experts": experts})


def moe_layers(model: onnx.ModelProto) -> list[MoeLayer]:
    """The MoE layers recorded in ``model`` (empty when none were partitioned)."""
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return [MoeLayer.from_dict(d) for d in json.loads(prop.value)]
    return []


def set_moe_layers(model: onnx.ModelProto, layers: list[MoeLayer]) -> None:
    """Record ``layers`` in ``model`` (in place), replacing what was recorded; none removes the key."""
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    if layers:
        model.metadata_props.add(key=METADATA_KEY,
                                 value=json.dumps([layer.as_dict() for layer in layers], sort_keys=True))


def _ancestors(graph: onnx.GraphProto, producer: dict[str, int], tensors) -> set[int]:
    seen: set[int] = set()
    pending = [producer[t] for t in tensors if t in producer]
    while pending:
        i = pending.pop()
        if i not in seen:
            seen.add(i)
            pending.extend(producer[n] for n in graph.node[i].input if n in producer)
    return seen


def layer_regions(model: onnx.ModelProto, layer: MoeLayer) -> tuple[list[set[int]], set[int]]:
    """Node positions of the layer's parts in ``model.graph``: per expert, the nodes only that
    expert's output depends on (its path from the layer's input); and the combination, the
    ancestors of the layer's output that neither the router's probabilities nor any expert output
    depend on. Everything else is backbone (the router included)."""
    graph = model.graph
    producer = {out: i for i, node in enumerate(graph.node) for out in node.output if out}
    probs_side = _ancestors(graph, producer, [layer.probs])
    shared = probs_side | (_ancestors(graph, producer, [layer.input]) if layer.input else set())
    own = [_ancestors(graph, producer, [e.output]) - shared for e in layer.experts]
    experts = [nodes - set().union(*(o for i, o in enumerate(own) if i != j)) for j, nodes in enumerate(own)]
    expert_side = _ancestors(graph, producer, [e.output for e in layer.experts])
    combination = _ancestors(graph, producer, [layer.output]) - probs_side - expert_side
    return experts, combination


def float_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes a quantizer must leave in float: each layer's combination and the Softmax
    giving its probabilities. Back ends run them as one MoE kernel, on float gates; quantizing them
    would put rounding into the reference that no device computes."""
    names: list[str] = []
    for layer in moe_layers(model):
        _, combination = layer_regions(model, layer)
        names += [model.graph.node[i].name for i in sorted(combination)]
        names += [n.name for n in model.graph.node if layer.probs in n.output]
    return [n for n in names if n]
