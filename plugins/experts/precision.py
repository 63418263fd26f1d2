"""``experts-precision``: a weight bit width per expert, after EdgeMoE's expert-wise bitwidth
adaptation ("EdgeMoE: Fast On-Device Inference of MoE-based Large Language Models", Yi et al.,
2023): experts differ in how much quantization hurts the output and in how often they run, so a
flash budget is best spent on the experts that are both sensitive and frequently routed.

For every expert, its sensitivity to each width is measured on calibration data: the relative
RMS error of the model's outputs when only that expert's weights are quantized (weight-only,
symmetric, grouped along K; activations stay float). The expected cost of a width is that error
weighted by the expert's routing frequency. Every expert starts at int8; while the experts'
weights exceed the budget, the expert whose move to int4 costs least per byte saved moves. The
rewrite: each expert's MatMul/Gemm weights become ``DequantizeLinear`` of int8 or int4 constants
(the MCU back end keeps them packed in flash and runs ``ek_gemm_w8_f32`` / ``ek_gemm_w4_f32``).

Options: ``experts_flash_budget`` (bytes for all experts' weights; default: all int8 when that fits
the target's flash with the rest of the model, else the budget that does) and ``group_size``.
"""

from __future__ import annotations

import onnx

import edgekit
from edgekit.moe import MoeLayer, layer_regions, set_moe_layers
from edgekit.plugins.experts import routing
from edgekit.plugins.experts.accuracy import output_error, rounded
from edgekit.plugins.quantize.int4 import DEFAULT_GROUP, quantize_weights, stored_bytes
from edgekit.verify import run_onnxruntime

WIDTHS = (8, 4)
#: flash kept for code and the non-expert weights when the budget comes from the target
CODE_RESERVE_BYTES = 64 * 1024


def _linear_nodes(model: onnx.ModelProto, layer: MoeLayer) -> list[list[str]]:
    """Per expert, the names of its MatMul/Gemm nodes with constant weights (a node's name, or its
    first output's when it has none: what ``quantize_weights(only=...)`` matches)."""
    inits = {t.name for t in model.graph.initializer}
    experts, _ = layer_regions(model, layer)
    nodes = [[model.graph.node[i] for i in sorted(region)] for region in experts]
    return [[n.name or n.output[0] for n in region
             if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in inits]
            for region in nodes]


def _expert_initializers(model: onnx.ModelProto, layer: MoeLayer) -> list[list[str]]:
    """Per expert, the initializers only it reads."""
    inits = {t.name for t in model.graph.initializer}
    experts, _ = layer_regions(model, layer)
    return [sorted({t for i in region for t in model.graph.node[i].input if t in inits}) for region in experts]


def _expert_bytes(model: onnx.ModelProto, layer: MoeLayer, e: int) -> int:
    """Stored bytes of the initializers expert ``e`` reads (integers as the kernels keep them,
    scales and biases float)."""
    inits = {t.name: t for t in model.graph.initializer}
    return sum(stored_bytes(inits[t]) for t in _expert_initializers(model, layer)[e])


def _default_budget(model: onnx.ModelProto, context: edgekit.BuildContext, int8_bytes: int,
                    expert_bytes: int) -> int:
    """All int8 when that fits the target's flash with the rest of the model, else what is left
    (``expert_bytes``: what the experts' weights take now)."""
    flash = getattr(context.target, "flash_bytes", 0) or 0
    if not flash:
        return int8_bytes
    backbone = sum(stored_bytes(t) for t in model.graph.initializer) - expert_bytes
    return max(0, min(int8_bytes, flash - backbone - CODE_RESERVE_BYTES))


@edgekit.model_pass("experts-precision", approximate=True)
def choose_expert_precision(model: onnx.ModelProto, context: edgekit.BuildContext) -> onnx.ModelProto:
    """Choose int8 or int4 weights per expert from routing frequency and sensitivity, within a flash budget."""
    layers = routing.partitioned_layers(model, context)
    if not layers:
        return model
    group = context.number("group_size", DEFAULT_GROUP, low=2, integer=True)
    if group % 2:
        raise edgekit.UsageError(f"--group-size {group}: expected an even number (int4 packs two "
                                 f"weights per byte)")
    data = routing.samples(model, context, "expert sensitivity measured")
    reference = run_onnxruntime(model, data)
    freq = routing.frequencies(model, layers, data)
    candidates = []  # (layer index, expert index, node names, parameters, frequency)
    for li, layer in enumerate(layers):
        for e, nodes in enumerate(_linear_nodes(model, layer)):
            if nodes:
                candidates.append((li, e, nodes, layer.experts[e].parameters, freq[layer.name][e]))
            else:
                context.note(f"{layer.name}: expert {e} has no MatMul/Gemm with constant weights; it keeps "
                             f"its weights as they are ({layer.experts[e].precision})")
    if not candidates:
        context.note("no expert has MatMul/Gemm weights to quantize: nothing to do")
        return model
    sensitivity: dict[tuple[int, int], dict[int, float]] = {}
    size: dict[tuple[int, int], dict[int, int]] = {}  # stored bytes of the expert's weights per width
    for li, e, nodes, _, _ in candidates:
        sensitivity[(li, e)], size[(li, e)] = {}, {}
        for bits in WIDTHS:
            trial, _ = quantize_weights(model, bits=bits, group=group, only=set(nodes))
            sensitivity[(li, e)][bits] = output_error(reference, run_onnxruntime(trial, data))["relative_rms"]
            size[(li, e)][bits] = _expert_bytes(trial, layers[li], e)
    int8_bytes = sum(size[key][8] for key in size)
    int4_bytes = sum(size[key][4] for key in size)
    given = context.number("experts_flash_budget", None, integer=True)
    budget = given if given is not None else _default_budget(
        model, context, int8_bytes, sum(_expert_bytes(model, layers[li], e) for li, e, *_ in candidates))
    if budget < int4_bytes:
        where = (f"--option experts_flash_budget={budget}" if given is not None else
                 f"the flash of target '{context.target.name}' left for the experts ({budget} B)")
        raise edgekit.UsageError(f"{where}: below the experts' weights at int4 ({int4_bytes} B); raise the "
                                 f"budget or prune experts (experts-prune)")
    choice = {key: 8 for key in size}
    total = int8_bytes
    by_key = {(li, e): (nodes, p, f) for li, e, nodes, p, f in candidates}

    def cost(key):
        saved = size[key][8] - size[key][4]
        return by_key[key][2] * (sensitivity[key][4] - sensitivity[key][8]) / saved

    while total > budget:  # never runs out of movable experts: budget >= all at int4
        movable = [k for k, bits in choice.items() if bits == 8 and size[k][8] > size[k][4]]
        key = min(movable, key=lambda k: (cost(k), k))
        choice[key] = 4
        total -= size[key][8] - size[key][4]
    for bits in WIDTHS:  # quantize_weights leaves the model it is given as it was
        nodes = {n for key, b in choice.items() if b == bits for n in by_key[key][0]}
        if nodes:
            model, _ = quantize_weights(model, bits=bits, group=group, only=nodes)
    for li, layer in enumerate(layers):
        for e, expert in enumerate(layer.experts):
            if (li, e) in choice:
                expert.precision = f"int{choice[(li, e)]}"
        _refresh_weights(model, layer)
    set_moe_layers(model, layers)
    context.section("experts")["precision"] = {
        "budget_bytes": budget, "weights_bytes": total, "all_int8_bytes": int8_bytes,
        "all_int4_bytes": int4_bytes, "group_size": group, "calibration_samples": len(data),
        "output_error": rounded(output_error(reference, run_onnxruntime(model, data))),
        "experts": [{"layer": layers[li].name, "expert": e, "frequency": f, "parameters": p,
                     "relative_rms_error": {f"int{b}": round(sensitivity[(li, e)][b], 6) for b in WIDTHS},
                     "precision": f"int{choice[(li, e)]}", "bytes": size[(li, e)][choice[(li, e)]],
                     "bytes_per_width": {f"int{b}": size[(li, e)][b] for b in WIDTHS}}
                    for li, e, _, p, f in candidates]}
    widths = list(choice.values())
    context.note(f"experts at int8: {widths.count(8)}, at int4: {widths.count(4)}; weights {total} B "
                 f"(budget {budget} B, all int8 {int8_bytes} B)")
    routing.record(context, layers)
    return model


def _refresh_weights(model: onnx.ModelProto, layer: MoeLayer) -> None:
    """The initializers each expert reads, after its weights were replaced."""
    for expert, weights in zip(layer.experts, _expert_initializers(model, layer)):
        expert.weights = weights
