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
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import onnx

from edgekit.errors import UsageError

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
        """A layer from its recorded form, checked field by field: the record may come from a model
        file (untrusted), and its layer name becomes part of C identifiers and file names."""
        if not isinstance(data, dict):
            raise ValueError("a layer is not a JSON object")
        experts = data.get("experts")
        if not isinstance(experts, list):
            raise ValueError("'experts' is not a list")
        layer = cls(**_typed(cls, {**data, "experts": []}))
        layer.experts = [Expert(**_typed(Expert, e)) for e in experts]
        if not _LAYER_NAME.match(layer.name):
            raise ValueError(f"layer name {layer.name!r} is not [A-Za-z][A-Za-z0-9_]* (at most 32 characters)")
        return layer


_LAYER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}\Z")


def _typed(cls, data: Any) -> dict[str, Any]:
    """``data``'s fields for dataclass ``cls``, each of its declared type (unknown or missing
    required fields, and values of another type, are errors)."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__.lower()} is not a JSON object")
    declared = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(declared))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}")
    hints = get_type_hints(cls)
    for name, value in data.items():
        if not _is_a(value, hints[name]):
            raise ValueError(f"field {name!r} has a value of the wrong type ({type(value).__name__})")
    missing = [n for n, f in declared.items() if n not in data and f.default is MISSING
               and f.default_factory is MISSING]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(map(repr, missing))}")
    return data


def _is_a(value: Any, hint: Any) -> bool:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, UnionType):
        return any(_is_a(value, a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(_is_a(v, args[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def moe_layers(model: onnx.ModelProto) -> list[MoeLayer]:
    """The MoE layers recorded in ``model`` (empty when none were partitioned). A malformed record
    is a usage error naming the metadata key."""
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            try:
                records = json.loads(prop.value)
                if not isinstance(records, list):
                    raise ValueError("not a JSON list of layers")
                layers = [MoeLayer.from_dict(d) for d in records]
                for layer in layers:
                    if not 1 <= layer.k <= layer.count:
                        raise ValueError(f"layer '{layer.name}': k={layer.k} is not between 1 and its "
                                         f"{layer.count} experts")
                names = [layer.name for layer in layers]
                if len(set(names)) != len(names):
                    raise ValueError("two layers have the same name")
            except (ValueError, TypeError, RecursionError) as exc:
                raise UsageError(f"model metadata '{METADATA_KEY}' is malformed: {exc}; remove it from the "
                                 "model (edgekit's experts passes record it themselves)") from None
            return layers
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
