"""Shape arithmetic shared by the lowerings: broadcasting strides, axis collapsing, conv/pool pads."""

from __future__ import annotations

import math

MAX_DIMS = 6  # EK_MAX_DIMS in ek_common.h


def dense_strides(shape: tuple[int, ...] | list[int]) -> list[int]:
    strides, acc = [], 1
    for d in reversed(list(shape)):
        strides.append(acc)
        acc *= d
    return strides[::-1]


def collapse(shape: list[int], *strides: list[int]) -> tuple[list[int], list[list[int]]]:
    """Drop size-1 axes and merge neighbours that every stride list walks contiguously
    (``s[i] == s[i+1] * n[i+1]``), so kernels loop over as few, as long axes as possible."""
    keep = [i for i, n in enumerate(shape) if n != 1]
    shape = [shape[i] for i in keep]
    strides = [[s[i] for i in keep] for s in strides]
    if not shape:
        return [1], [[0] for _ in strides]
    out_shape, out_strides = [shape[0]], [[s[0]] for s in strides]
    for i in range(1, len(shape)):
        if all(os[-1] == s[i] * shape[i] for os, s in zip(out_strides, strides)):
            out_shape[-1] *= shape[i]
            for os, s in zip(out_strides, strides):
                os[-1] = s[i]
        else:
            out_shape.append(shape[i])
            for os, s in zip(out_strides, strides):
                os.append(s[i])
    return out_shape, out_strides


def broadcast_strides(a_shape, b_shape, out_shape) -> tuple[list[int], list[int], list[int]]:
    """Collapsed output shape and per-axis element strides of A and B (0 where broadcast)."""
    rank = len(out_shape)
    if rank == 0:
        return [1], [0], [0]

    def strides_of(shape):
        shape = [1] * (rank - len(shape)) + list(shape)
        if len(shape) != rank or any(n not in (1, o) for n, o in zip(shape, out_shape)):
            raise ValueError(f"shape {list(shape)} does not broadcast to {list(out_shape)}")
        dense = dense_strides(shape)
        return [0 if n == 1 else s for n, s in zip(shape, dense)]

    shape, (sa, sb) = collapse(list(out_shape), strides_of(a_shape), strides_of(b_shape))
    return shape, sa, sb


def resolve_pads(in_sizes, kernel, strides, dilations, pads, auto_pad: str,
                 out_sizes=None) -> tuple[list[int], list[int]]:
    """(pads_begin, pads_end) per spatial axis, resolving ONNX auto_pad SAME_UPPER/SAME_LOWER/VALID."""
    n = len(in_sizes)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(n):
            out = math.ceil(in_sizes[i] / strides[i]) if out_sizes is None else out_sizes[i]
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_sizes[i], 0)
            small = total // 2
            if auto_pad == "SAME_UPPER":
                begin.append(small)
                end.append(total - small)
            else:
                begin.append(total - small)
                end.append(small)
        return begin, end
    if auto_pad == "VALID":
        return [0] * n, [0] * n
    pads = list(pads) if pads else [0] * (2 * n)
    return pads[:n], pads[n:]
