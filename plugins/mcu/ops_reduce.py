"""Lowering of Softmax (any axis, opset < 13 flattening semantics too) and ReduceMean/Sum/Max/Min."""

from __future__ import annotations

import numpy as np
import onnx

from edgekit.plugins.mcu.graph import attrs_of
from edgekit.plugins.mcu.schedule import Lowerer, dims_str
from edgekit.plugins.mcu.shapes import MAX_DIMS, dense_strides


def lower_softmax(lw: Lowerer, node: onnx.NodeProto) -> None:
    x, y = node.input[0], node.output[0]
    lw.require_float(node, x, y)
    shape = lw.shape(x, node)
    rank = len(shape)
    legacy = lw.view.opset < 13
    axis = int(attrs_of(node).get("axis", 1 if legacy else -1))
    axis = axis + rank if axis < 0 else axis
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    if legacy:  # opset < 13: the input is coerced to 2-D [outer, rest]
        axis_len, inner = int(np.prod(shape[axis:], dtype=np.int64)), 1
    else:
        axis_len, inner = shape[axis], int(np.prod(shape[axis + 1:], dtype=np.int64))
    fn = "ek_softmax_f32" if node.op_type == "Softmax" else "ek_log_softmax_f32"
    lw.add(node, "ek_softmax", fn, "ek_softmax_params",
           {"outer": outer, "axis_len": axis_len, "inner": inner},
           [lw.operand(node, x), ("out", y)], summary=f"{dims_str(shape)} axis {axis}")


# op -> (kernel, opset from which axes is an input instead of an attribute)
_REDUCE = {"ReduceMean": ("ek_reduce_mean_f32", 18), "ReduceSum": ("ek_reduce_mean_f32", 13),
           "ReduceMax": ("ek_reduce_max_f32", 18), "ReduceMin": ("ek_reduce_min_f32", 18)}


def lower_reduce(lw: Lowerer, node: onnx.NodeProto) -> None:
    x, y = node.input[0], node.output[0]
    lw.require_float(node, x, y)
    attrs = attrs_of(node)
    shape = list(lw.shape(x, node))
    rank = len(shape)
    function, axes_input_opset = _REDUCE[node.op_type]
    if lw.view.opset < axes_input_opset:
        axes = attrs.get("axes")
    else:
        axes = None
        if len(node.input) > 1 and node.input[1]:
            v = lw.view.const(node.input[1])
            if v is None:
                raise lw.error(node, "axes must be a constant (initializer)")
            axes = [int(a) for a in v.reshape(-1)]
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            lw.alias(node, y, x)
            return
        axes = list(range(rank))
    axes = sorted({a + rank if a < 0 else a for a in axes})
    if rank == 0 or rank > MAX_DIMS:
        raise lw.error(node, f"rank {rank} is not supported (1..{MAX_DIMS})")
    kept = [1 if i in axes else n for i, n in enumerate(shape)]
    out_strides = [0 if i in axes else s for i, s in enumerate(dense_strides(kept))]
    count = int(np.prod([shape[a] for a in axes], dtype=np.int64))
    out_size = int(np.prod(kept, dtype=np.int64))
    pad = MAX_DIMS - rank
    scale = float(np.float32(1.0 / count)) if node.op_type == "ReduceMean" else 1.0
    lw.add(node, "ek_reduce", function, "ek_reduce_params",
           {"rank": rank, "shape": shape + [0] * pad, "out_stride": out_strides + [0] * pad,
            "out_size": out_size, "scale": scale},
           [lw.operand(node, x), ("out", y)],
           summary=f"{dims_str(tuple(shape))} -> {dims_str(lw.shape(y, node))} axes {axes}")


LOWERINGS = {"Softmax": lower_softmax, "LogSoftmax": lower_softmax}
LOWERINGS.update({op: lower_reduce for op in _REDUCE})
