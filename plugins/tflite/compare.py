"""A run of a model imported from ``.tflite``, compared with TensorFlow Lite Micro (``edgekit_compare_run``).

TFLite Micro's reference kernels are the arithmetic every Cortex-M deployment of a ``.tflite`` file
computes (CMSIS-NN is bit-exact with them), so an int8 model's outputs must be identical to
TFLite Micro's, value for value, on the same int8 inputs: the run's float inputs quantized with the
input's scale and zero point, as the imported graph's QuantizeLinear does. Where any value differs,
every operator's output is probed (the model rebuilt with each operator's output as a graph output,
:func:`.oracle.layer_probe_model`) and the first operator whose output differs from TFLite Micro's
intermediate tensor is named. Float models are compared within ``FLOAT_TOLERANCE``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.plugins.tflite import oracle
from edgekit.plugins.tflite.convert import Converted
from edgekit.plugins.tflite.reader import Subgraph

REFERENCE = "TFLite Micro"
#: Float outputs: |ours - TFLite Micro's| <= atol + rtol * |TFLite Micro's|.
FLOAT_TOLERANCE = 1e-5


def compare_run(source, model, context, outputs: list[dict[str, np.ndarray]], rerun) -> dict[str, Any] | None:
    if not source.path.is_file():  # `edgekit run` in another directory: the file is not at hand
        return None
    try:
        tflm = oracle.TflmOracle(source.path, preserve=True)
    except ImportError:
        return {"reference": REFERENCE, "agrees": None,
                "summary": "not compared: TFLite Micro is not installed (pip install tflite-micro)"}
    from edgekit.model import graph_inputs
    from edgekit.plugins.tflite.convert import convert
    from edgekit.plugins.tflite.reader import read

    sg = read(source.path)
    conv = convert(sg, str(source.path))
    in_names = [v.name for v in graph_inputs(model)]
    out_names = [o.name for o in model.graph.output]
    if len(in_names) != len(sg.inputs) or len(out_names) != len(sg.outputs):
        return {"reference": REFERENCE, "agrees": None,
                "summary": "not compared: the built model's inputs and outputs are no longer the file's"}
    layer_tensors = [t for _, _, outs in conv.op_outputs for t in outs]
    theirs_final, theirs_layers, ours_final = [], [], []
    for feeds, ours in zip(context.inputs, outputs):
        x = [_to_tflite(sg, t, feeds[name]) for t, name in zip(sg.inputs, in_names)]
        theirs_final.append(tflm.run(x))
        theirs_layers.append(tflm.tensors(layer_tensors))
        ours_final.append([_to_tflite(sg, t, ours[name]) for t, name in zip(sg.outputs, out_names)])
    result = (_compare_int8(conv, sg, ours_final, theirs_final, theirs_layers, rerun) if conv.quantized
              else _compare_float(ours_final, theirs_final))
    # A back end that says it rounds as TFLite Micro (mcu-c does, for models the importer marks)
    # implements TFLite Micro's arithmetic: then TFLite Micro judges the run.
    result["judges"] = conv.quantized and context.report.get("backend", {}).get("int8_arithmetic") == "tflite"
    return result


def _to_tflite(sg: Subgraph, t: int, value: np.ndarray) -> np.ndarray:
    """A graph input or output (float, TFLite's shape) as TFLite Micro holds tensor ``t``."""
    return _in_tflite_numbers(sg, t, np.asarray(value).reshape(sg.tensors[t].shape))


def _in_tflite_numbers(sg: Subgraph, t: int, value: np.ndarray) -> np.ndarray:
    """A float graph-side value of TFLite tensor ``t`` in the tensor's own number format: int8
    quantized with its scale and zero point, others cast to its dtype; the layout is left as is."""
    from edgekit.plugins.mcu import qmath

    tensor = sg.tensors[t]
    if tensor.dtype is np.int8:
        return qmath.quantize(np.asarray(value), float(tensor.quant.scale[0]), int(tensor.quant.zero_point[0]))
    return np.asarray(value).astype(tensor.dtype)


def _compare_int8(conv: Converted, sg: Subgraph, ours_final, theirs_final, theirs_layers, rerun) -> dict[str, Any]:
    ours = np.concatenate([np.concatenate([o.reshape(-1) for o in run]) for run in ours_final]).astype(np.int32)
    theirs = np.concatenate([np.concatenate([o.reshape(-1) for o in run]) for run in theirs_final]).astype(np.int32)
    identical = int((ours == theirs).sum())
    result = {"reference": REFERENCE, "agrees": identical == ours.size, "inputs": len(ours_final),
              "values": int(ours.size), "identical_values": identical,
              "max_lsb": int(np.abs(ours - theirs).max(initial=0))}
    if result["agrees"]:
        result["summary"] = (f"bit-exact: all {ours.size:,} int8 output values identical over "
                             f"{len(ours_final)} input(s)")
        return result
    probe, probes = oracle.layer_probe_model(conv, sg)
    probed = rerun(probe)
    ours_layers = []
    for run, final in zip(probed, ours_final):
        layer = {t: oracle.to_tflite_layout(conv, t, _in_tflite_numbers(sg, t, run[name]), sg.tensors[t].shape)
                 for name, t in probes.items()}
        layer.update(zip(sg.outputs, final))
        ours_layers.append(layer)
    diffs = oracle.first_difference(conv, sg, ours_layers, theirs_layers)
    first = diffs[0] if diffs else None
    result["first_difference"] = None if first is None else {
        "op_index": first.op_index, "op": first.op, "tensor": first.tensor, "differing_values": first.differing,
        "values": first.total, "max_lsb": first.max_lsb, "text": str(first)}
    where = f"; first differing layer: {first}" if first else ""
    result["summary"] = (f"{ours.size - identical:,} of {ours.size:,} int8 output values differ "
                         f"(up to {result['max_lsb']} LSB) over {len(ours_final)} input(s){where}")
    return result


def _compare_float(ours_final, theirs_final) -> dict[str, Any]:
    worst = 0.0
    agrees = True
    for ours_run, theirs_run in zip(ours_final, theirs_final):
        for a, b in zip(ours_run, theirs_run):
            a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
            worst = max(worst, float(np.abs(a - b).max(initial=0.0)))
            agrees &= bool(np.all(np.abs(a - b) <= FLOAT_TOLERANCE + FLOAT_TOLERANCE * np.abs(b)))
    verdict = "within" if agrees else "outside"
    return {"reference": REFERENCE, "agrees": agrees, "inputs": len(ours_final), "max_abs_error": worst,
            "tolerance": FLOAT_TOLERANCE,
            "summary": f"max abs error {worst:.3g} over {len(ours_final)} input(s), {verdict} "
                       f"atol=rtol={FLOAT_TOLERANCE:g}"}
