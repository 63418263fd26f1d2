"""Lowering of MatMul with int4 weight-only quantized weights (``DequantizeLinear`` of a constant
INT4 matrix, blocked along K or per column, symmetric) onto ``ek_gemm_w4_f32``: the weights stay
two per byte in flash. A following Add of a constant [N] bias and Relu/Clip are fused as for the
float MatMul. Any other form (zero points, UINT4, batched B) runs through the float MatMul on the
dequantized weights."""

from __future__ import annotations

import numpy as np
import onnx

from edgekit.plugins.mcu import w4_layout
from edgekit.plugins.mcu.schedule import Lowerer, dims_str

INT4 = onnx.TensorProto.INT4


def lower_w4(lw: Lowerer, node: onnx.NodeProto) -> bool:
    """Append the int4 layer for ``node`` and return True, or return False (not this form)."""
    from edgekit.plugins.mcu.ops_nn import _fusable_bias

    if node.op_type != "MatMul" or len(node.input) < 2:
        return False
    qc = lw.view.qconst(node.input[1])
    if qc is None or qc.onnx_dtype != INT4 or qc.values.ndim != 2:
        return False
    if qc.zero_point is not None and np.any(np.asarray(qc.zero_point) != 0):
        return False
    k, n = qc.values.shape
    if qc.block_size:
        if qc.axis != 0 or qc.block_size % 2:
            return False
        group = qc.block_size
    else:
        if qc.scale.size not in (1, n) or (qc.scale.size == n and n > 1 and qc.axis != 1):
            return False
        group = k + (k % 2)
    a_shape = lw.shape(node.input[0], node)
    if not a_shape or a_shape[-1] != k:
        return False
    lw.require_float(node, node.input[0])
    m = int(np.prod(a_shape[:-1], dtype=np.int64))
    name = node.name or node.output[0]
    head, suffix = node, ""
    fused = _fusable_bias(lw, node, n)
    bias_arg: tuple = ("null",)
    if fused is not None:
        add, bias = fused
        lw.skipped.add(id(add))
        head, suffix = add, "+Add"
        bias_arg = ("const", lw.const(f"{name}__bias", bias, node))
    act_min, act_max, out, act_suffix = lw.take_fused_activation(head)
    params = {"m": m, "n": n, "k": k, "group": group, "k_groups": -(-k // group),
              "act_min": act_min, "act_max": act_max}
    args = [lw.operand(node, node.input[0]),
            ("const", lw.const(f"{name}__weights_int4", w4_layout.pack(qc.values), node, dtype=np.uint8)),
            ("const", lw.const(f"{name}__scales", w4_layout.scales(qc.scale, k, n, group), node)),
            bias_arg, ("out", out)]
    lw.add(node, "ek_gemm_w4", "ek_gemm_w4_f32", "ek_gemm_w4_params", params, args,
           summary=f"{dims_str(tuple(a_shape))} x int4 {k}x{n} (groups of {group}) -> "
                   f"{dims_str(lw.shape(out, node))}",
           macs=m * n * k, op="MatMul" + suffix + act_suffix)
    return True
