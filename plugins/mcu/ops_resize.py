"""Lowering of Resize (opset 11+) over the H and W axes of a rank-4 NCHW float tensor: mode
``nearest`` (any nearest_mode) and ``linear`` (bilinear), coordinate modes half_pixel,
pytorch_half_pixel, align_corners and asymmetric. tf_half_pixel_for_nearest (opset 11-12 only) is
refused: neither onnxruntime nor the onnx reference implementation runs it any more, so there is
nothing to check the kernel against.

The coordinate transformation and rounding are resolved here, per axis, into const tables of
source indices (and bilinear weights): the kernels then only gather. The arithmetic is float32 in
the order onnxruntime uses, so ties in nearest rounding fall the same way.
"""

from __future__ import annotations

import numpy as np
import onnx

from edgekit.plugins.mcu.graph import attrs_of
from edgekit.plugins.mcu.schedule import ConstRef, Lowerer, dims_str

f32 = np.float32

_COORD_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")
_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _original_coords(mode: str, out_len: int, in_len: int, scale: np.float32) -> np.ndarray:
    """The input coordinate of each output index along one axis (float32, unclamped)."""
    x = np.arange(out_len, dtype=f32)
    if mode == "half_pixel":
        return (x + f32(0.5)) / scale - f32(0.5)
    if mode == "pytorch_half_pixel":
        return (x + f32(0.5)) / scale - f32(0.5) if out_len > 1 else np.zeros(out_len, f32)
    if mode == "align_corners":
        return x * f32(in_len - 1) / f32(out_len - 1) if out_len > 1 else np.zeros(out_len, f32)
    return x / scale  # asymmetric


def _nearest_indices(coords: np.ndarray, nearest_mode: str, in_len: int) -> np.ndarray:
    if nearest_mode == "floor":
        idx = np.floor(coords)
    elif nearest_mode == "ceil":
        idx = np.ceil(coords)
    else:
        frac = coords - np.floor(coords)
        tie = frac == f32(0.5)
        # np.round rounds half to even; a tie goes to floor or ceil as the mode says
        idx = np.where(tie, np.floor(coords) if nearest_mode == "round_prefer_floor" else np.ceil(coords),
                       np.round(coords))
    return np.clip(idx, 0, in_len - 1).astype(np.int32)


def _linear_taps(coords: np.ndarray, in_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower/upper source index and the weight of the upper one (coordinates clamped to the input,
    as onnxruntime does: the edge value extends outwards)."""
    c = np.clip(coords, f32(0), f32(in_len - 1)).astype(f32)
    lo = np.minimum(np.floor(c), in_len - 1).astype(np.int32)
    hi = np.minimum(lo + 1, in_len - 1).astype(np.int32)
    w = (c - lo.astype(f32)).astype(f32)
    return lo, hi, np.where(lo == hi, f32(0), w).astype(f32)


def _const_input(lw: Lowerer, node: onnx.NodeProto, index: int, what: str) -> np.ndarray | None:
    if len(node.input) <= index or not node.input[index]:
        return None
    v = lw.view.const(node.input[index])
    if v is None:
        raise lw.error(node, f"{what} '{node.input[index]}' must be a constant (initializer or "
                             f"Constant node); runtime {what} are not supported")
    return None if v.size == 0 else v.reshape(-1)


def _refuse_attrs(lw: Lowerer, node: onnx.NodeProto, attrs: dict) -> tuple[str, str, str]:
    mode = attrs.get("mode", "nearest")
    coord = attrs.get("coordinate_transformation_mode", "half_pixel")
    nearest = attrs.get("nearest_mode", "round_prefer_floor")
    if lw.view.opset < 11:
        raise lw.error(node, f"Resize of opset {lw.view.opset} is not supported (opset 11+ only)")
    if mode not in ("nearest", "linear"):
        raise lw.error(node, f"mode '{mode}' is not supported (nearest, linear)")
    if coord not in _COORD_MODES:
        raise lw.error(node, f"coordinate_transformation_mode '{coord}' is not supported "
                             f"({', '.join(_COORD_MODES)})")
    if mode == "nearest" and nearest not in _NEAREST_MODES:
        raise lw.error(node, f"nearest_mode '{nearest}' is not supported ({', '.join(_NEAREST_MODES)})")
    if int(attrs.get("antialias", 0)):
        raise lw.error(node, "antialias=1 is not supported (antialias=0 only)")
    policy = attrs.get("keep_aspect_ratio_policy", "stretch")
    if policy != "stretch":
        raise lw.error(node, f"keep_aspect_ratio_policy '{policy}' is not supported (stretch only)")
    return mode, coord, nearest


def _refuse_fractional_length(lw: Lowerer, node: onnx.NodeProto, coord: str, in_shape: list[int],
                              out_shape: list[int], scales: list) -> None:
    """align_corners (and pytorch_half_pixel's length-1 rule) read the resized length: the ONNX
    spec takes the unrounded in * scale, onnxruntime the integer output size. They agree only when
    in * scale is a whole number; otherwise no single answer exists, so refuse (sizes are exact)."""
    for a in (2, 3):
        exact = in_shape[a] * float(scales[a])
        used = coord == "align_corners" or (coord == "pytorch_half_pixel" and out_shape[a] == 1)
        if used and not np.isclose(exact, out_shape[a], rtol=1e-6, atol=0):
            raise lw.error(node, f"coordinate_transformation_mode '{coord}' with scale {float(scales[a]):g} "
                                 f"on axis {a} gives a fractional length {exact:g} (onnxruntime and the "
                                 f"ONNX spec disagree there); give sizes instead of scales")


def lower_resize(lw: Lowerer, node: onnx.NodeProto) -> None:
    x, y = node.input[0], node.output[0]
    lw.require_float(node, x, y)
    attrs = attrs_of(node)
    mode, coord, nearest = _refuse_attrs(lw, node, attrs)
    in_shape = list(lw.shape(x, node))
    if len(in_shape) != 4:
        raise lw.error(node, f"rank-{len(in_shape)} input {dims_str(tuple(in_shape))} is not "
                             f"supported (rank-4 NCHW only)")
    scales = _const_input(lw, node, 2, "scales")
    sizes = _const_input(lw, node, 3, "sizes")
    if (scales is None) == (sizes is None):
        raise lw.error(node, "exactly one of scales and sizes must be given")
    axes = [int(a) % 4 for a in attrs.get("axes", range(4))]
    full_scales, out_shape = [f32(1)] * 4, list(in_shape)
    given = scales if scales is not None else sizes
    if len(given) != len(axes):
        raise lw.error(node, f"{'scales' if scales is not None else 'sizes'} has {len(given)} "
                             f"values for {len(axes)} axes")
    for a, v in zip(axes, given):
        if scales is not None:  # the coordinate transform uses the given scale itself
            full_scales[a] = f32(v)
            out_shape[a] = int(np.floor(in_shape[a] * float(f32(v))))
        else:
            out_shape[a] = int(v)
            full_scales[a] = f32(f32(int(v)) / f32(in_shape[a]))
    if out_shape[:2] != in_shape[:2]:
        raise lw.error(node, f"resizing N or C ({dims_str(tuple(in_shape))} -> "
                             f"{dims_str(tuple(out_shape))}) is not supported (H and W only)")
    if min(out_shape) <= 0 or any(s <= 0 for s in full_scales[2:]):
        raise lw.error(node, f"output {dims_str(tuple(out_shape))} is empty or a scale is not positive")
    if scales is not None:
        _refuse_fractional_length(lw, node, coord, in_shape, out_shape, full_scales)
    expected = tuple(lw.shape(y, node))
    lw.expect(node, tuple(out_shape) == expected,
              f"computed output {dims_str(tuple(out_shape))} differs from the inferred {dims_str(expected)}")
    coords = [_original_coords(coord, out_shape[a], in_shape[a], full_scales[a]) for a in (2, 3)]
    tag = node.name or y
    base = {"planes": in_shape[0] * in_shape[1], "in_h": in_shape[2], "in_w": in_shape[3],
            "out_h": out_shape[2], "out_w": out_shape[3]}
    summary = f"{dims_str(tuple(in_shape))} -> {dims_str(tuple(out_shape))} {mode} {coord}"
    if mode == "nearest":
        ys, xs = (_nearest_indices(c, nearest, in_shape[a]) for c, a in zip(coords, (2, 3)))
        params = dict(base, src_y=ConstRef(lw.const(f"{tag}__src_y", ys, node, dtype=np.int32)),
                      src_x=ConstRef(lw.const(f"{tag}__src_x", xs, node, dtype=np.int32)))
        lw.add(node, "ek_resize", "ek_resize_nearest_f32", "ek_resize_nearest_params", params,
               [lw.operand(node, x), ("out", y)], summary=f"{summary} {nearest}")
        return
    (y0, y1, wy), (x0, x1, wx) = (_linear_taps(c, in_shape[a]) for c, a in zip(coords, (2, 3)))
    params = dict(base)
    for key, arr, dtype in (("y0", y0, np.int32), ("y1", y1, np.int32), ("wy", wy, np.float32),
                            ("x0", x0, np.int32), ("x1", x1, np.int32), ("wx", wx, np.float32)):
        params[key] = ConstRef(lw.const(f"{tag}__{key}", arr, node, dtype=dtype))
    lw.add(node, "ek_resize", "ek_resize_bilinear_f32", "ek_resize_bilinear_params", params,
           [lw.operand(node, x), ("out", y)], macs=6 * int(np.prod(out_shape)), summary=summary)


LOWERINGS = {"Resize": lower_resize}
