"""Hook implementations of the quantize plugin: the ``quantize-int8`` pass (``--quantize int8``)."""

from __future__ import annotations

import sys

import onnx

import edgekit
from edgekit.moe import float_nodes
from edgekit.plugins.quantize import accuracy, mixed
from edgekit.plugins.quantize.calibration import load_samples
from edgekit.plugins.quantize.int4 import DEFAULT_GROUP, quantize_weights_int4, stored_bytes
from edgekit.plugins.quantize.static import METHODS, quantize_int8

#: Seeded random calibration samples when the user gives no data.
RANDOM_SAMPLES = 32


def _weights_bytes(model: onnx.ModelProto) -> int:
    """Stored bytes of the initializers (4-bit types take half a byte per value)."""
    return sum(stored_bytes(t) for t in model.graph.initializer)


def _calibration(model: onnx.ModelProto, context: edgekit.BuildContext) -> tuple[list[dict], str]:
    from edgekit.verify import random_inputs

    spec = context.option("calibration")
    if spec:
        return load_samples(str(spec), model, "--calibration"), str(spec)
    message = (f"no --calibration data: calibrating on {RANDOM_SAMPLES} seeded random inputs; the "
               f"accuracy figures describe random data, not yours")
    print(f"warning: {message}", file=sys.stderr)
    context.note(message)
    return random_inputs(model, RANDOM_SAMPLES, int(context.option("seed", 0) or 0) + 1), "seeded random"


@edgekit.model_pass("quantize-int8", approximate=True)
def quantize_int8_pass(model: onnx.ModelProto, context: edgekit.BuildContext) -> onnx.ModelProto:
    """Static int8 quantization to QDQ (onnxruntime): calibrated activations, per-channel weights."""
    method = str(context.option("calibration_method") or "minmax").lower()
    if method not in METHODS:
        raise edgekit.UsageError(f"--calibration-method {method}: expected one of {', '.join(METHODS)}")
    floor = mixed.parse_floor(context.option("accuracy_floor"))
    samples, source = _calibration(model, context)
    validation = (load_samples(str(context.option("validation")), model, "--validation")
                  if context.option("validation") else samples)
    keep_float: list[str] = []
    section = context.section("quantization")
    if floor is not None:
        keep_float, table, reached = mixed.choose(model, samples, validation, method, floor)
        section["mixed_precision"] = {"floor": floor.text, "reached": round(float(reached), 4),
                                      "met": reached >= floor.value, "layers": table}
        if reached < floor.value:
            context.note(f"accuracy floor {floor.text} not met even with every compute layer in float")
    # mixture-of-experts combinations run as one float kernel (see edgekit.moe)
    quantized = quantize_int8(model, samples, method, exclude=keep_float + float_nodes(model))
    figures = accuracy.measure(model, quantized, validation)
    section.update({
        "scheme": "int8 QDQ: weights symmetric per channel [-127, 127], activations asymmetric per "
                  "tensor, bias int32 (s_x * s_w)",
        "calibration": {"method": method, "data": source, "samples": len(samples)},
        "validation": "calibration data" if validation is samples else str(context.option("validation")),
        "accuracy_known": source != "seeded random",
        "float_layers": keep_float,
        "weights_bytes": {"before": _weights_bytes(model), "after": _weights_bytes(quantized)},
        **figures,
    })
    return quantized


@edgekit.model_pass("quantize-int4", approximate=True)
def quantize_int4_pass(model: onnx.ModelProto, context: edgekit.BuildContext) -> onnx.ModelProto:
    """Weight-only int4 (grouped along K, symmetric) for MatMul/Gemm weights; activations stay float."""
    text = context.option("group_size", DEFAULT_GROUP)
    try:
        group = int(text)
    except (TypeError, ValueError):
        raise edgekit.UsageError(f"--group-size {text}: expected an even integer such as 32") from None
    quantized, nodes = quantize_weights_int4(model, group)
    if not nodes:
        context.note("no MatMul/Gemm with constant 2-D weights: nothing to quantize to int4")
    section = context.section("quantization")
    section.update({"scheme": f"weight-only int4, symmetric, groups of {group} along K",
                    "int4_nodes": nodes,
                    "weights_bytes": {"before": _weights_bytes(model), "after": _weights_bytes(quantized)}})
    return quantized


@edgekit.hookimpl
def edgekit_register_passes():
    return [quantize_int8_pass, quantize_int4_pass]
