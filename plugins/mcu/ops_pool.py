"""Lowering of MaxPool, AveragePool (1-D and 2-D) and GlobalAverage/GlobalMaxPool."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from edgekit.plugins.mcu.graph import attrs_of
from edgekit.plugins.mcu.schedule import Lowerer, dims_str
from edgekit.plugins.mcu.shapes import resolve_pads


@dataclass
class PoolGeometry:
    """A pooling window resolved for the kernels: ``params`` is ek_pool2d_params without the
    element type (1-D as H = 1); ``whole_plane`` when one window covers each plane exactly."""

    params: dict
    in_shape: tuple
    out_shape: tuple
    whole_plane: bool
    summary: str


def pool_geometry(lw: Lowerer, node: onnx.NodeProto) -> PoolGeometry:
    attrs = attrs_of(node)
    x, y = node.input[0], node.output[0]
    if len([o for o in node.output if o]) > 1:
        raise lw.error(node, "the Indices output of MaxPool is not supported")
    in_shape, out_shape = lw.shape(x, node), lw.shape(y, node)
    spatial = len(in_shape) - 2
    if spatial not in (1, 2):
        raise lw.error(node, f"{spatial}-D pooling is not supported (1-D and 2-D only)")
    if attrs.get("storage_order", 0):
        raise lw.error(node, "storage_order=1 is not supported")
    kernel = list(attrs["kernel_shape"])
    strides = list(attrs.get("strides", [1] * spatial))
    dil = list(attrs.get("dilations", [1] * spatial))
    begin, end = resolve_pads(in_shape[2:], kernel, strides, dil, attrs.get("pads"),
                              attrs.get("auto_pad", "NOTSET"), out_shape[2:])
    if attrs.get("ceil_mode", 0) and attrs.get("auto_pad", "NOTSET") in ("NOTSET", "VALID"):
        out_shape = _ceil_mode_shape(lw, node, in_shape, out_shape, kernel, strides, dil, begin, end)
    if spatial == 1:  # 1-D runs as H = 1
        kernel, strides, dil = [1] + kernel, [1] + strides, [1] + dil
        begin, end = [0] + begin, [0] + end
        in_hw, out_hw = [1, in_shape[2]], [1, out_shape[2]]
    else:
        in_hw, out_hw = list(in_shape[2:]), list(out_shape[2:])
    is_max = node.op_type == "MaxPool"
    whole = out_hw == [1, 1] and kernel == in_hw and not any(begin + end) and dil == [1, 1]
    params = {"batch": in_shape[0], "channels": in_shape[1], "in_h": in_hw[0], "in_w": in_hw[1],
              "out_h": out_hw[0], "out_w": out_hw[1], "k_h": kernel[0], "k_w": kernel[1],
              "stride_h": strides[0], "stride_w": strides[1], "dil_h": dil[0], "dil_w": dil[1],
              "pad_top": begin[0], "pad_left": begin[1], "pad_bottom": end[0], "pad_right": end[1],
              "count_include_pad": 0 if is_max else int(attrs.get("count_include_pad", 0))}
    summary = (f"{dims_str(in_shape)} -> {dims_str(out_shape)}, whole-plane window" if whole else
               f"{dims_str(in_shape)} -> {dims_str(out_shape)}, k{'x'.join(map(str, kernel[-spatial:]))}"
               f" s{'x'.join(map(str, strides[-spatial:]))} pads {begin[-spatial:]}/{end[-spatial:]}")
    return PoolGeometry(params, tuple(in_shape), tuple(out_shape), whole, summary)


def lower_pool(lw: Lowerer, node: onnx.NodeProto) -> None:
    x, y = node.input[0], node.output[0]
    lw.require_float(node, x, y)
    geo = pool_geometry(lw, node)
    is_max = node.op_type == "MaxPool"
    if geo.whole_plane:
        # One window covering the whole plane (ResNet's final 8x8 pool): the global kernel.
        fn = "ek_global_maxpool_f32" if is_max else "ek_global_avgpool_f32"
        lw.add(node, "ek_pool", fn, "ek_global_pool_params",
               {"planes": geo.in_shape[0] * geo.in_shape[1],
                "size": geo.params["in_h"] * geo.params["in_w"]},
               [lw.operand(node, x), ("out", y)], summary=geo.summary)
        return
    lw.add(node, "ek_pool", "ek_maxpool2d_f32" if is_max else "ek_avgpool2d_f32",
           "ek_pool2d_params", geo.params, [lw.operand(node, x), ("out", y)], summary=geo.summary)


def _ceil_mode_shape(lw, node, in_shape, out_shape, kernel, strides, dil, begin, end):
    """Output shape under ceil_mode with ONNX's rule (opset >= 19 text, onnxruntime and PyTorch):
    a window that would start inside the end padding is dropped. onnx's shape inference keeps it,
    so the two can differ by one; the runtime's size is used when nothing else depends on it."""
    fixed = list(out_shape)
    for i in range(len(kernel)):
        span = (kernel[i] - 1) * dil[i] + 1
        n = -(-(in_shape[2 + i] + begin[i] + end[i] - span) // strides[i]) + 1
        if (n - 1) * strides[i] >= in_shape[2 + i] + begin[i]:
            n -= 1
        fixed[2 + i] = n
    fixed = tuple(fixed)
    y = node.output[0]
    if fixed != tuple(out_shape):
        if lw.view.consumers.get(y):
            raise lw.error(node, f"ceil_mode gives output {dims_str(fixed)} but shape inference says "
                                 f"{dims_str(tuple(out_shape))}; use ceil_mode=0 or explicit pads")
        lw.view.shapes[y] = fixed
    return fixed


def lower_global_pool(lw: Lowerer, node: onnx.NodeProto) -> None:
    x, y = node.input[0], node.output[0]
    lw.require_float(node, x, y)
    shape = lw.shape(x, node)
    planes = shape[0] * (shape[1] if len(shape) > 1 else 1)
    size = int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else 1
    fn = "ek_global_avgpool_f32" if node.op_type == "GlobalAveragePool" else "ek_global_maxpool_f32"
    lw.add(node, "ek_pool", fn, "ek_global_pool_params", {"planes": planes, "size": size},
           [lw.operand(node, x), ("out", y)],
           summary=f"{dims_str(shape)} -> {dims_str(lw.shape(y, node))}")


LOWERINGS = {"MaxPool": lower_pool, "AveragePool": lower_pool,
             "GlobalAveragePool": lower_global_pool, "GlobalMaxPool": lower_global_pool}
