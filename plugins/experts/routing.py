"""Routing statistics of MoE layers on calibration data, and their picture.

The routing frequency of an expert is the fraction of tokens whose top-k holds it (so the
frequencies of a layer sum to k). The prune, precision and device-split passes decide from it."""

from __future__ import annotations

import sys

import numpy as np
import onnx

import edgekit
from edgekit.moe import MoeLayer, moe_layers
from edgekit.naming import xml_text
from edgekit.plugins.experts.graph import run_exposing

#: Seeded random samples when the user gives no --calibration data.
RANDOM_SAMPLES = 64


def partitioned_layers(model: onnx.ModelProto, context: edgekit.BuildContext) -> list[MoeLayer]:
    """The MoE layers ``experts-partition`` recorded; when there are none, a note that the pass
    calling this has nothing to do."""
    layers = moe_layers(model)
    if not layers:
        context.note("no partitioned MoE layer (run experts-partition first): nothing to do")
    return layers


def samples(model: onnx.ModelProto, context: edgekit.BuildContext, purpose: str,
            warn: bool = True) -> list[dict[str, np.ndarray]]:
    """The calibration samples (``--calibration``), or seeded random inputs (with a warning unless
    ``warn`` is false: the caller then calls :func:`warn_random` once it knows it matters)."""
    from edgekit.plugins.quantize.calibration import load_samples
    from edgekit.verify import random_inputs

    spec = context.option("calibration")
    if spec:
        return load_samples(str(spec), model, "--calibration")
    if warn:
        warn_random(context, purpose)
    return random_inputs(model, RANDOM_SAMPLES, int(context.option("seed", 0) or 0) + 1)


def warn_random(context: edgekit.BuildContext, purpose: str) -> None:
    if context.option("calibration"):
        return
    message = (f"no --calibration data: {purpose} on {RANDOM_SAMPLES} seeded random inputs; routing "
               f"on random data may not be routing on yours")
    print(f"warning: {message}", file=sys.stderr)
    context.note(message)


def top_k(probs: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest per row, the lower index first among equals (as ONNX TopK)."""
    return np.argsort(-probs, axis=-1, kind="stable")[..., :k]


def frequencies(model: onnx.ModelProto, layers: list[MoeLayer],
                data: list[dict[str, np.ndarray]]) -> dict[str, list[float]]:
    """Per layer, the fraction of tokens routed to each expert."""
    runs = run_exposing(model, [layer.probs for layer in layers], data)
    result = {}
    for layer in layers:
        probs = np.concatenate([r[layer.probs].reshape(-1, layer.count) for r in runs])
        chosen = top_k(probs, layer.k)
        counts = np.bincount(chosen.reshape(-1), minlength=layer.count)
        result[layer.name] = [round(float(c) / probs.shape[0], 6) for c in counts]
    return result


def histogram_svg(layer: MoeLayer, labels: list[str] | None = None) -> str:
    """A bar chart of the layer's routing frequency per expert (pruned experts shown empty)."""
    freq = list(layer.frequency or [0.0] * layer.count)
    labels = labels or [f"e{i}" for i in range(len(freq))]
    width, height, left, bottom, top = max(440, 60 + 40 * len(freq)), 220, 44, 40, 30
    top_value = max(max(freq, default=0.0), 1e-9)
    plot_h = height - bottom - top
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<text x="{left}" y="16" font-size="13">{xml_text(layer.name)}: routing frequency '
             f'(top-{layer.k} of {len(freq)}, fraction of tokens)</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="black"/>']
    for i, (value, label) in enumerate(zip(freq, labels)):
        h = plot_h * value / top_value
        x = left + 8 + 40 * i
        parts.append(f'<rect x="{x}" y="{height - bottom - h:.1f}" width="28" height="{h:.1f}" fill="#3b7dd8"/>')
        parts.append(f'<text x="{x + 14}" y="{height - bottom - h - 4:.1f}" text-anchor="middle">{value:.2f}</text>')
        parts.append(f'<text x="{x + 14}" y="{height - bottom + 14}" text-anchor="middle">{xml_text(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def record(context: edgekit.BuildContext, layers: list[MoeLayer]) -> None:
    """The report's ``experts`` section: each layer, its routing frequencies and their picture."""
    section = context.section("experts")
    entries = []
    for layer in layers:
        picture = context.attach(f"experts_{layer.name}_routing.svg", histogram_svg(layer))
        entries.append({"name": layer.name, "experts": layer.count, "k": layer.k,
                        "renormalize": layer.renormalize, "form": layer.form, "router": layer.router_node,
                        "parameters_per_expert": [e.parameters for e in layer.experts],
                        "precision": [e.precision for e in layer.experts],
                        "frequency": layer.frequency, "pruned": layer.pruned,
                        "routing_histogram": picture})
    section["layers"] = entries
