"""Weight-only int4 / int8 quantization of MatMul/Gemm weights, grouped along the reduction axis.

Technique: group-wise weight-only quantization (FineQuant, Kim et al. 2023; the blocked 4-bit
form of GPTQ/AWQ deployments without their error correction): each column of a constant weight
matrix B [K, N] is cut into groups of ``group`` consecutive k, each group gets one float scale
and its weights are rounded to integers, symmetric, no zero point: int4 in [-8, 7] with scale
``max|w| / 7``, or int8 in [-127, 127] with scale ``max|w| / 127``. The rewrite:
``MatMul(A, B)`` -> ``MatMul(A, DequantizeLinear(B_q, scale[K/g, N], axis=0, block_size=g))``
(opset 21; B_q is INT4 or INT8). ``Gemm(A, B, C)`` with constant B is first rewritten to MatMul
(+ Add of C). Activations stay float: the kernels dequantize the weights as they read them
(``ek_gemm_w4_f32`` / ``ek_gemm_w8_f32`` on the MCU back end).

The two widths can be applied to one model in two calls (``only`` picks the nodes of each):
the new initializers are named ``<B>__int4*`` / ``<B>__int8*``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter

from edgekit.errors import UsageError

OPSET = 21
DEFAULT_GROUP = 32
#: bits -> (ONNX type of the stored integers, lowest and highest value, scale divisor)
WIDTHS = {4: (onnx.TensorProto.INT4, -8, 7, 7.0), 8: (onnx.TensorProto.INT8, -127, 127, 127.0)}


def _quantize_matrix(w: np.ndarray, group: int, bits: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Integers [K, N] (int8 storage) and scales [ceil(K/group), N] of ``w`` at ``bits``."""
    _, low, high, divisor = WIDTHS[bits]
    k, n = w.shape
    groups = -(-k // group)
    padded = np.zeros((groups * group, n), dtype=np.float64)
    padded[:k] = w
    blocks = padded.reshape(groups, group, n)
    scale = np.abs(blocks).max(axis=1) / divisor
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.rint(blocks / scale[:, None, :]), low, high).astype(np.int8).reshape(-1, n)[:k]
    return q, scale


def stored_bytes(tensor: onnx.TensorProto) -> int:
    """Bytes an initializer takes stored as the kernels read it: 4-bit types two per byte (a
    [K, N] matrix per column, as ``ek_gemm_w4`` packs it), the others their item size."""
    dims = [int(d) for d in tensor.dims]
    count = int(np.prod(dims, dtype=np.int64))
    if tensor.data_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4):
        return dims[1] * -(-dims[0] // 2) if len(dims) == 2 else (count + 1) // 2
    return count * helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize


def quantize_weights(model: onnx.ModelProto, bits: int = 4, group: int = DEFAULT_GROUP,
                     only: set[str] | None = None) -> tuple[onnx.ModelProto, list[str]]:
    """The rewritten model (``model`` itself is left as it was) and the names of the nodes whose
    weights became ``bits``-bit integers. ``only``: rewrite just the nodes named there (a node's
    name, or its first output's when it has none)."""
    if bits not in WIDTHS:
        raise UsageError(f"weight-only quantization to {bits} bits: expected 4 or 8")
    if bits == 4 and (group < 2 or group % 2):
        raise UsageError(f"--group-size {group}: expected an even number of at least 2")
    if group < 1:
        raise UsageError(f"--group-size {group}: expected a positive number")
    onnx_type = WIDTHS[bits][0]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    if opset < OPSET:
        model = version_converter.convert_version(model, OPSET)
    else:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        model = copy
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    taken = set(inits)
    nodes, done = [], []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        b = node.input[1] if len(node.input) > 1 else ""
        name = node.name or (node.output[0] if node.output else "")
        is_gemm = node.op_type == "Gemm" and not attrs.get("transA", 0) and \
            float(attrs.get("alpha", 1.0)) == 1.0 and float(attrs.get("beta", 1.0)) == 1.0
        if (node.op_type != "MatMul" and not is_gemm) or b not in inits or \
                (only is not None and name not in only):
            nodes.append(node)
            continue
        w = numpy_helper.to_array(inits[b]).astype(np.float32)
        if w.ndim != 2:
            nodes.append(node)
            continue
        if is_gemm and attrs.get("transB", 0):
            w = w.T
        q, scale = _quantize_matrix(w, group, bits)
        base = f"{b}__int{bits}"
        while base in taken:  # one weight read by several nodes: one copy per node
            base += "_"
        q_name, s_name, d_name = base, f"{base}_scale", f"{base}_dq"
        taken.update((q_name, s_name, d_name))
        graph.initializer.append(helper.make_tensor(q_name, onnx_type, list(q.shape), q.reshape(-1).tolist()))
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


def quantize_weights_int4(model: onnx.ModelProto, group: int = DEFAULT_GROUP) -> tuple[onnx.ModelProto, list[str]]:
    """The rewritten model and the names of the nodes whose weights became int4."""
    return quantize_weights(model, bits=4, group=group)
