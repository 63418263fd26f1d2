"""Lowering of MatMul with weight-only quantized weights (``DequantizeLinear`` of a constant INT4
or INT8 matrix, blocked along K or per column, symmetric) onto ``ek_gemm_w4_f32`` /
``ek_gemm_w8_f32`` (``kernels/ek_gemm_wq.h``): the weights stay in flash as they are stored, two
per byte (int4) or one byte each (int8). A following Add of a constant [N] bias and Relu/Clip are
fused as for the float MatMul. Any other form (zero points, UINT4/UINT8, batched B) runs through
the float MatMul on the dequantized weights."""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import onnx

from edgekit.plugins.mcu import w4_layout
from edgekit.plugins.mcu.schedule import Lowerer, dims_str


class Width(NamedTuple):
    bits: int
    pack: Callable[[np.ndarray], np.ndarray]
    c_type: type      # element type of the packed weights array
    even_groups: bool  # the kernel reads k in pairs from a group's start (one byte holds two)


#: ONNX element type of the stored integers -> how the kernel takes them
WIDTHS = {onnx.TensorProto.INT4: Width(4, w4_layout.pack, np.uint8, True),
          onnx.TensorProto.INT8: Width(8, w4_layout.pack_int8, np.int8, False)}


def lower_w4(lw: Lowerer, node: onnx.NodeProto) -> bool:
    """Append the weight-only (int4 or int8) layer for ``node`` and return True, or return False
    (not this form)."""
    from edgekit.plugins.mcu.ops_nn import _fusable_bias

    if node.op_type != "MatMul" or len(node.input) < 2:
        return False
    qc = lw.view.qconst(node.input[1])
    if qc is None or qc.onnx_dtype not in WIDTHS or qc.values.ndim != 2:
        return False
    width = WIDTHS[qc.onnx_dtype]
    if qc.zero_point is not None and np.any(np.asarray(qc.zero_point) != 0):
        return False
    k, n = qc.values.shape
    if qc.block_size:
        if qc.axis != 0 or (width.even_groups and qc.block_size % 2):
            return False
        group = qc.block_size
    else:
        if qc.scale.size not in (1, n) or (qc.scale.size == n and n > 1 and qc.axis != 1):
            return False
        group = k + (k % 2) if width.even_groups else k
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
    family = f"ek_gemm_w{width.bits}"
    args = [lw.operand(node, node.input[0]),
            ("const", lw.const(f"{name}__weights_int{width.bits}", width.pack(qc.values), node,
                               dtype=width.c_type)),
            ("const", lw.const(f"{name}__scales", w4_layout.scales(qc.scale, k, n, group), node)),
            bias_arg, ("out", out)]
    lw.add(node, family, f"{family}_f32", f"{family}_params", params, args,
           summary=f"{dims_str(tuple(a_shape))} x int{width.bits} {k}x{n} (groups of {group}) -> "
                   f"{dims_str(lw.shape(out, node))}",
           macs=m * n * k, op="MatMul" + suffix + act_suffix)
    return True
