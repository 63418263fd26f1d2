"""Lowering of LayerNormalization (opset 17+, float32) onto ek_norm.h: one row-wise kernel call.

Rows are the dims before ``axis``; each row of the dims [axis, rank) is normalized with a two-pass
mean/variance. Scale and bias are passed as a trailing block repeated over the row (the kernel's
``scale_size``/``bias_size``); a constant operand with any other broadcast is expanded to the whole
row at build time. The optional Mean/InvStdDev outputs are written one value per row.
"""

from __future__ import annotations

import numpy as np
import onnx

from edgekit.plugins.mcu.graph import attrs_of
from edgekit.plugins.mcu.schedule import Lowerer, dims_str


def _block_operand(lw: Lowerer, node: onnx.NodeProto, name: str, role: str,
                   norm_shape: list[int]) -> tuple[tuple, int]:
    """(kernel argument, block size) of scale/bias broadcast over the normalized dims."""
    shape = list(lw.shape(name, node))
    lw.expect(node, len(shape) <= len(norm_shape) and all(
        s in (1, n) for s, n in zip(shape[::-1], norm_shape[::-1])),
        f"{role} shape {shape} does not broadcast to the normalized shape {norm_shape}")
    while shape and shape[0] == 1:
        shape.pop(0)
    size = int(np.prod(shape, dtype=np.int64))
    if shape == norm_shape[len(norm_shape) - len(shape):]:
        return lw.operand(node, name), size  # a trailing block (or a scalar: size 1)
    value = lw.view.const(name)
    if value is None:
        raise lw.error(node, f"{role} '{name}' of shape {list(lw.shape(name, node))} broadcasts over "
                             f"non-trailing normalized dims; make it a constant or give it the "
                             f"shape {norm_shape}")
    full = np.broadcast_to(value.astype(np.float32), norm_shape)
    key = lw.const(f"{node.name or node.output[0]}__{role}", full, node)
    return ("const", key), int(full.size)


def lower_layernorm(lw: Lowerer, node: onnx.NodeProto) -> None:
    attrs = attrs_of(node)
    x, scale = node.input[0], node.input[1]
    bias = node.input[2] if len(node.input) > 2 else ""
    outs = list(node.output) + [""] * (3 - len(node.output))
    y, mean, inv_std = outs[:3]
    lw.require_float(node, x, scale, bias, y, mean, inv_std)
    if int(attrs.get("stash_type", 1)) != 1:
        raise lw.error(node, f"stash_type {attrs['stash_type']} is not supported (only 1: float32)")
    shape = list(lw.shape(x, node))
    rank = len(shape)
    axis = int(attrs.get("axis", -1))
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise lw.error(node, f"axis {attrs.get('axis', -1)} is out of range for rank {rank}")
    norm_shape = shape[axis:]
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    size = int(np.prod(norm_shape, dtype=np.int64))
    scale_arg, scale_size = _block_operand(lw, node, scale, "scale", norm_shape)
    bias_arg, bias_size = _block_operand(lw, node, bias, "bias", norm_shape) if bias else (("null",), 0)
    params = {"outer": outer, "size": size, "scale_size": scale_size, "bias_size": bias_size,
              "epsilon": float(np.float32(attrs.get("epsilon", 1e-5)))}
    args = [lw.operand(node, x), scale_arg, bias_arg, ("out", y),
            ("out", mean) if mean else ("null",), ("out", inv_std) if inv_std else ("null",)]
    lw.add(node, "ek_norm", "ek_layernorm_f32", "ek_layernorm_params", params, args,
           summary=f"{dims_str(tuple(shape))} axis {axis}", macs=outer * size * 4,
           inplace=(y, x))


LOWERINGS = {"LayerNormalization": lower_layernorm}
