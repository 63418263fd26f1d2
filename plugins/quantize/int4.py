"""Weight-only int4 quantization of MatMul/Gemm weights, grouped along the reduction axis.

Technique: group-wise weight-only quantization (FineQuant, Kim et al. 2023; the blocked 4-bit
form of GPTQ/AWQ deployments without their error correction): each column of a constant weight
matrix B [K, N] is cut into groups of ``group_size`` consecutive k, each group gets one float scale
``max|w| / 7`` and its weights are rounded to int4 in [-8, 7] (symmetric, no zero point). The
rewrite: ``MatMul(A, B)`` -> ``MatMul(A, DequantizeLinear(B_int4, scale[K/g, N], axis=0,
block_size=g))`` (opset 21). ``Gemm(A, B, C)`` with constant B is first rewritten to MatMul (+ Add of
C). Activations stay float: the kernels dequantize the weights as they read them.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter

from edgekit.errors import UsageError

OPSET = 21
DEFAULT_GROUP = 32


def _quantize_matrix(w: np.ndarray, group: int) -> tuple[np.ndarray, np.ndarray]:
    k, n = w.shape
    groups = -(-k // group)
    padded = np.zeros((groups * group, n), dtype=np.float64)
    padded[:k] = w
    blocks = padded.reshape(groups, group, n)
    scale = np.abs(blocks).max(axis=1) / 7.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.rint(blocks / scale[:, None, :]), -8, 7).astype(np.int8).reshape(-1, n)[:k]
    return q, scale


def quantize_weights_int4(model: onnx.ModelProto, group: int = DEFAULT_GROUP) -> tuple[onnx.ModelProto, list[str]]:
    """The rewritten model and the names of the nodes whose weights became int4."""
    if group < 2 or group % 2:
        raise UsageError(f"--group-size {group}: expected an even number of at least 2")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    if opset < OPSET:
        model = version_converter.convert_version(model, OPSET)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    nodes, done = [], []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        b = node.input[1] if len(node.input) > 1 else ""
        is_gemm = node.op_type == "Gemm" and not attrs.get("transA", 0) and \
            float(attrs.get("alpha", 1.0)) == 1.0 and float(attrs.get("beta", 1.0)) == 1.0
        if (node.op_type != "MatMul" and not is_gemm) or b not in inits:
            nodes.append(node)
            continue
        w = numpy_helper.to_array(inits[b]).astype(np.float32)
        if w.ndim != 2:
            nodes.append(node)
            continue
        if is_gemm and attrs.get("transB", 0):
            w = w.T
        q, scale = _quantize_matrix(w, group)
        name = node.name or node.output[0]
        q_name, s_name, d_name = f"{b}__int4", f"{b}__int4_scale", f"{b}__int4_dq"
        graph.initializer.append(helper.make_tensor(q_name, onnx.TensorProto.INT4, list(q.shape),
                                                    q.reshape(-1).tolist()))
        graph.initializer.append(numpy_helper.from_array(scale, s_name))
        nodes.append(helper.make_node("DequantizeLinear", [q_name, s_name], [d_name], axis=0,
                                      block_size=group, name=f"{name}__dequantize_weights"))
        if is_gemm and len(node.input) > 2 and node.input[2]:
            mm_out = f"{node.output[0]}__matmul"
            nodes.append(helper.make_node("MatMul", [node.input[0], d_name], [mm_out], name=name))
            nodes.append(helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]], name=f"{name}__bias"))
        else:
            nodes.append(helper.make_node("MatMul", [node.input[0], d_name], [node.output[0]], name=name))
        done.append(name)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return model, done
