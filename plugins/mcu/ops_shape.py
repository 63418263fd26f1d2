"""Lowering of layout ops: views (Reshape, Flatten, Squeeze, Unsqueeze, Identity) as aliases,
Transpose and Slice as one strided copy, Concat, Pad."""

from __future__ import annotations

import numpy as np
import onnx

from edgekit.plugins.mcu.graph import attrs_of
from edgekit.plugins.mcu.schedule import Lowerer, dims_str
from edgekit.plugins.mcu.shapes import MAX_DIMS, collapse, dense_strides

_PAD_MODES = {"constant": 0, "reflect": 1, "edge": 2, "wrap": 3}


def lower_view(lw: Lowerer, node: onnx.NodeProto) -> None:
    """Same bytes, new shape: an alias (the planner gives both names one buffer)."""
    x, y = node.input[0], node.output[0]
    lw.kernel_suffix(node, x, y)
    lw.alias(node, y, x)


def _strided_copy(lw: Lowerer, node: onnx.NodeProto, x: str, y: str, shape: list[int],
                  strides: list[int], offset: int, summary: str) -> None:
    cshape, (cstrides,) = collapse(list(shape), list(strides))
    if offset == 0 and cstrides == [1] and not lw.view.is_const(x):
        lw.alias(node, y, x)  # the copy would be the identity: keep the bytes where they are
        return
    if len(cshape) > MAX_DIMS:
        raise lw.error(node, f"needs {len(cshape)} dimensions after collapsing; at most {MAX_DIMS}")
    pad = MAX_DIMS - len(cshape)
    lw.add(node, "ek_transform", f"ek_strided_copy_{lw.kernel_suffix(node, x, y)}", "ek_strided_copy_params",
           {"rank": len(cshape), "shape": cshape + [0] * pad, "stride": cstrides + [0] * pad,
            "offset": offset}, [lw.operand(node, x), ("out", y)], summary=summary)


def lower_transpose(lw: Lowerer, node: onnx.NodeProto) -> None:
    x, y = node.input[0], node.output[0]
    lw.kernel_suffix(node, x, y)
    shape = lw.shape(x, node)
    perm = list(attrs_of(node).get("perm", list(range(len(shape)))[::-1]))
    dense = dense_strides(shape)
    _strided_copy(lw, node, x, y, [shape[p] for p in perm], [dense[p] for p in perm], 0,
                  f"{dims_str(shape)} -> {dims_str(lw.shape(y, node))} perm {perm}")


def _const_ints(lw: Lowerer, node: onnx.NodeProto, index: int, what: str) -> list[int] | None:
    if len(node.input) <= index or not node.input[index]:
        return None
    v = lw.view.const(node.input[index])
    if v is None:
        raise lw.error(node, f"{what} must be a constant (initializer)")
    return [int(i) for i in v.reshape(-1)]


def lower_slice(lw: Lowerer, node: onnx.NodeProto) -> None:
    x, y = node.input[0], node.output[0]
    lw.require_float(node, x, y)
    shape = list(lw.shape(x, node))
    rank = len(shape)
    if lw.view.opset < 10:
        attrs = attrs_of(node)
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes, steps = attrs.get("axes"), None
    else:
        starts = _const_ints(lw, node, 1, "starts")
        ends = _const_ints(lw, node, 2, "ends")
        axes = _const_ints(lw, node, 3, "axes")
        steps = _const_ints(lw, node, 4, "steps")
    axes = list(axes) if axes is not None else list(range(len(starts)))
    steps = steps or [1] * len(starts)
    begin, step = [0] * rank, [1] * rank
    out = list(shape)
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = a + rank if a < 0 else a
        # numpy slicing clamps exactly like ONNX Slice (INT64 max/min ends included).
        start, stop, st = slice(s, e, st).indices(shape[a])
        begin[a], step[a], out[a] = start, st, len(range(start, stop, st))
    if 0 in out:
        raise lw.error(node, "the slice is empty; empty tensors are not supported")
    dense = dense_strides(shape)
    offset = sum(b * d for b, d in zip(begin, dense))
    _strided_copy(lw, node, x, y, out, [st * d for st, d in zip(step, dense)], offset,
                  f"{dims_str(tuple(shape))} -> {dims_str(tuple(out))}")


def lower_concat(lw: Lowerer, node: onnx.NodeProto) -> None:
    y = node.output[0]
    inputs = [n for n in node.input if n]
    lw.require_float(node, y, *inputs)
    out_shape = lw.shape(y, node)
    axis = int(attrs_of(node)["axis"])
    axis = axis + len(out_shape) if axis < 0 else axis
    outer = int(np.prod(out_shape[:axis], dtype=np.int64))
    inner = int(np.prod(out_shape[axis + 1:], dtype=np.int64))
    parts = [(n, lw.shape(n, node)[axis] * inner) for n in inputs if lw.shape(n, node)[axis] > 0]
    if len(parts) == 1:
        lw.alias(node, y, parts[0][0]) if not lw.view.is_const(parts[0][0]) else None
        return
    # Constant inputs are not tensors: materialise them through the same list as const pointers.
    args = []
    for n, _ in parts:
        if lw.view.is_const(n):
            raise lw.error(node, "constant Concat inputs are not supported (fold them first)")
        args.append(n)
    blocks = lw.const(f"{node.name or y}__blocks", np.array([b for _, b in parts]), node,
                      dtype=np.int32)
    from edgekit.plugins.mcu.schedule import ConstRef
    lw.add(node, "ek_transform", "ek_concat_f32", "ek_concat_params",
           {"outer": outer, "num_inputs": len(parts), "in_blocks": ConstRef(blocks),
            "out_block": sum(b for _, b in parts)},
           [("in_list", args), ("out", y)],
           summary=f"{' + '.join(dims_str(lw.shape(n, node)) for n, _ in parts)} -> "
                   f"{dims_str(out_shape)} axis {axis}")


def lower_pad(lw: Lowerer, node: onnx.NodeProto) -> None:
    x, y = node.input[0], node.output[0]
    lw.require_float(node, x, y)
    attrs = attrs_of(node)
    shape = list(lw.shape(x, node))
    rank = len(shape)
    mode = attrs.get("mode", "constant")
    if mode not in _PAD_MODES:
        raise lw.error(node, f"pad mode '{mode}' is not supported ({', '.join(_PAD_MODES)})")
    if lw.view.opset < 11:
        pads, value, axes = list(attrs.get("pads", attrs.get("paddings", []))), \
            float(attrs.get("value", 0.0)), None
    else:
        pads = _const_ints(lw, node, 1, "pads")
        value = 0.0
        if len(node.input) > 2 and node.input[2]:
            v = lw.view.const(node.input[2])
            if v is None:
                raise lw.error(node, "constant_value must be a constant")
            value = float(np.float32(v.reshape(-1)[0]))
        axes = _const_ints(lw, node, 3, "axes")
    axes = [a + rank if a < 0 else a for a in (axes if axes is not None else range(rank))]
    begin, end = [0] * rank, [0] * rank
    for i, a in enumerate(axes):
        begin[a], end[a] = pads[i], pads[i + len(axes)]
    out = [n + b + e for n, b, e in zip(shape, begin, end)]
    if rank > MAX_DIMS:
        raise lw.error(node, f"rank {rank} > {MAX_DIMS} is not supported")
    if rank == 0 or 0 in out:
        raise lw.error(node, "empty or scalar Pad is not supported")
    pad = MAX_DIMS - rank
    lw.add(node, "ek_transform", "ek_pad_f32", "ek_pad_params",
           {"rank": rank, "in_shape": shape + [0] * pad, "out_shape": out + [0] * pad,
            "pad_begin": begin + [0] * pad, "mode": _PAD_MODES[mode], "value": value},
           [lw.operand(node, x), ("out", y)],
           summary=f"{dims_str(tuple(shape))} -> {dims_str(tuple(out))} {mode}")


def lower_dropout(lw: Lowerer, node: onnx.NodeProto) -> None:
    """Inference Dropout is the identity; its mask output cannot be produced."""
    if len(node.output) > 1 and node.output[1] and (lw.view.consumers.get(node.output[1]) or
                                                    node.output[1] in lw.view.graph_outputs):
        raise lw.error(node, "the mask output of Dropout is not supported")
    if len(node.input) > 2 and node.input[2]:
        mode = lw.view.const(node.input[2])
        if mode is None or bool(mode.reshape(-1)[0]):
            raise lw.error(node, "training mode (random dropout) is not supported; export in eval mode")
    lower_view(lw, node)


def lower_expand(lw: Lowerer, node: onnx.NodeProto) -> None:
    """Expand is a strided copy whose broadcast axes have input stride 0."""
    x, y = node.input[0], node.output[0]
    lw.require_float(node, x, y)
    in_shape, out_shape = list(lw.shape(x, node)), list(lw.shape(y, node))
    padded = [1] * (len(out_shape) - len(in_shape)) + in_shape
    strides = [0 if n == 1 else s for n, s in zip(padded, dense_strides(padded))]
    _strided_copy(lw, node, x, y, out_shape, strides, 0,
                  f"{dims_str(tuple(in_shape))} -> {dims_str(tuple(out_shape))}")


def lower_split(lw: Lowerer, node: onnx.NodeProto) -> None:
    """One strided copy per output (the first, contiguous chunk of an outer-axis split is an alias)."""
    x = node.input[0]
    lw.require_float(node, x, *[o for o in node.output if o])
    shape = list(lw.shape(x, node))
    axis = int(attrs_of(node).get("axis", 0))
    axis = axis + len(shape) if axis < 0 else axis
    dense = dense_strides(shape)
    start = 0
    for out in node.output:
        size = lw.shape(out, node)[axis] if out else 0
        if out:
            out_shape = list(shape)
            out_shape[axis] = size
            _strided_copy(lw, node, x, out, out_shape, dense, start * dense[axis],
                          f"{dims_str(tuple(shape))} -> {dims_str(tuple(out_shape))} at {start}")
        start += size


def lower_gather(lw: Lowerer, node: onnx.NodeProto) -> None:
    x, y = node.input[0], node.output[0]
    lw.require_float(node, x, y)
    indices = lw.view.const(node.input[1])
    if indices is None:
        raise lw.error(node, "indices must be a constant (initializer)")
    shape = list(lw.shape(x, node))
    axis = int(attrs_of(node).get("axis", 0))
    axis = axis + len(shape) if axis < 0 else axis
    flat = [int(i) + shape[axis] if int(i) < 0 else int(i) for i in indices.reshape(-1)]
    if any(not 0 <= i < shape[axis] for i in flat):
        raise lw.error(node, f"an index is outside [0, {shape[axis]})")
    dense = dense_strides(shape)
    steps = {b - a for a, b in zip(flat, flat[1:])}
    if len(steps) <= 1:  # an arithmetic progression (or one index) is a strided copy
        step = steps.pop() if steps else 1
        out_shape = shape[:axis] + [len(flat)] + shape[axis + 1:]
        strides = list(dense)
        strides[axis] = dense[axis] * step
        _strided_copy(lw, node, x, y, out_shape, strides, flat[0] * dense[axis],
                      f"{dims_str(tuple(shape))} -> {dims_str(lw.shape(y, node))} axis {axis}")
        return
    table = lw.const(f"{node.name or y}__indices", np.array(flat), node, dtype=np.int32)
    from edgekit.plugins.mcu.schedule import ConstRef
    lw.add(node, "ek_transform", "ek_gather_f32", "ek_gather_params",
           {"outer": int(np.prod(shape[:axis], dtype=np.int64)), "axis_len": shape[axis],
            "inner": int(np.prod(shape[axis + 1:], dtype=np.int64)), "count": len(flat),
            "indices": ConstRef(table)},
           [lw.operand(node, x), ("out", y)],
           summary=f"{dims_str(tuple(shape))} -> {dims_str(lw.shape(y, node))} axis {axis}")


LOWERINGS = {"Split": lower_split, "Gather": lower_gather, "Dropout": lower_dropout, "Expand": lower_expand,
             "Reshape": lower_view, "Flatten": lower_view, "Squeeze": lower_view,
             "Unsqueeze": lower_view, "Identity": lower_view, "Transpose": lower_transpose,
             "Slice": lower_slice, "Concat": lower_concat, "Pad": lower_pad}
