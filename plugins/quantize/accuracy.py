"""How much a quantized model differs from its float original: output SQNR, top-1 agreement, and the
SQNR of every quantized layer's output (the float tensor each QuantizeLinear reads, in both models)."""

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


def layer_tensors(qdq: onnx.ModelProto, float_model: onnx.ModelProto) -> dict[str, str]:
    """Float tensors a QuantizeLinear reads that the float model also computes -> producing node."""
    float_producers = {o: n for n in float_model.graph.node for o in n.output}
    found = {}
    for node in qdq.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] in float_producers:
            producer = float_producers[node.input[0]]
            found[node.input[0]] = producer.name or f"{producer.op_type}:{node.input[0]}"
    return found


def measure(float_model: onnx.ModelProto, qdq: onnx.ModelProto, samples: list[dict]) -> dict:
    outputs = [o.name for o in float_model.graph.output]
    tensors = layer_tensors(qdq, float_model)
    ref = run_onnxruntime(_with_outputs(float_model, list(tensors)), samples, "float model")
    act = run_onnxruntime(_with_outputs(qdq, list(tensors)), samples, "quantized model")
    out_ref = [{k: r[k] for k in outputs} for r in ref]
    out_act = [{k: a[k] for k in outputs} for a in act]
    layers = [{"node": node, "tensor": t,
               "sqnr_db": _finite(sqnr_db([{t: r[t]} for r in ref], [{t: a[t]} for a in act]))}
              for t, node in tensors.items()]
    return {"output_sqnr_db": _finite(sqnr_db(out_ref, out_act)),
            "top1_agreement": top1_agreement(out_ref, out_act), "samples": len(samples), "layers": layers}


def _finite(value: float):
    return round(value, 2) if np.isfinite(value) else "inf"
