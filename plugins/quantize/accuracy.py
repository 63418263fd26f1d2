"""How much a quantized model differs from its float original: output SQNR, top-1 agreement, and the
SQNR of every quantized layer's output: the float model's tensor against what the quantized model's
consumers see in its place (the DequantizeLinear of its QuantizeLinear, so clamps count)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from edgekit.verify import run_onnxruntime, sqnr_db


def _with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    have = {o.name for o in out.graph.output}
    for name in names:
        if name not in have:
            out.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return out


def top1_agreement(reference: list[dict], actual: list[dict]) -> float | None:
    """Fraction of samples whose first output has the same argmax (None for scalar outputs)."""
    hits = total = 0
    for ref, act in zip(reference, actual):
        name = next(iter(ref))
        r, a = np.asarray(ref[name]), np.asarray(act[name])
        if r.size < 2:
            return None
        r, a = r.reshape(r.shape[0] if r.ndim > 1 else 1, -1), a.reshape(a.shape[0] if a.ndim > 1 else 1, -1)
        hits += int(np.sum(np.argmax(r, axis=1) == np.argmax(a, axis=1)))
        total += r.shape[0]
    return hits / total if total else None


def layer_tensors(qdq: onnx.ModelProto, float_model: onnx.ModelProto) -> dict[str, tuple[str, str]]:
    """Float-model tensor -> (its stand-in in the quantized model, producing node) for every tensor a
    QuantizeLinear reads that the float model also computes."""
    float_producers = {o: n for n in float_model.graph.node for o in n.output}
    dequantized = {n.input[0]: n.output[0] for n in qdq.graph.node if n.op_type == "DequantizeLinear"}
    found = {}
    for node in qdq.graph.node:
        name = node.input[0] if node.op_type == "QuantizeLinear" else ""
        if name in float_producers and node.output[0] in dequantized:
            producer = float_producers[name]
            found[name] = (dequantized[node.output[0]], producer.name or f"{producer.op_type}:{name}")
    return found


def measure(float_model: onnx.ModelProto, qdq: onnx.ModelProto, samples: list[dict]) -> dict:
    outputs = [o.name for o in float_model.graph.output]
    tensors = layer_tensors(qdq, float_model)
    ref = run_onnxruntime(_with_outputs(float_model, list(tensors)), samples, "float model")
    act = run_onnxruntime(_with_outputs(qdq, [q for q, _ in tensors.values()]), samples, "quantized model")
    out_ref = [{k: r[k] for k in outputs} for r in ref]
    out_act = [{k: a[k] for k in outputs} for a in act]
    layers = [{"node": node, "tensor": t,
               "sqnr_db": _finite(sqnr_db([{t: r[t]} for r in ref], [{t: a[q]} for a in act]))}
              for t, (q, node) in tensors.items()]
    return {"output_sqnr_db": _finite(sqnr_db(out_ref, out_act)),
            "top1_agreement": top1_agreement(out_ref, out_act), "samples": len(samples), "layers": layers}


def _finite(value: float):
    return round(value, 2) if np.isfinite(value) else "inf"
