"""Lowering of the MAC-heavy ops onto the conv/gemm kernel family (ek_conv.h, ek_gemm.h):
Conv, ConvTranspose (1-D and 2-D), Gemm and MatMul, with a following Relu/Clip fused into
``act_min``/``act_max`` and, for MatMul, a following Add of a constant [n] vector fused as bias.
Constant weights are packed with the kernel author's :mod:`.weight_layout` functions."""

from __future__ import annotations

import numpy as np
import onnx

from edgekit.plugins.mcu import weight_layout
from edgekit.plugins.mcu.graph import attrs_of
from edgekit.plugins.mcu.schedule import Lowerer, dims_str
from edgekit.plugins.mcu.shapes import collapse, dense_strides, resolve_pads

MATMUL_MAX_BATCH_DIMS = 4  # EK_MATMUL_MAX_BATCH_DIMS in ek_gemm.h


def _spatial_params(lw: Lowerer, node: onnx.NodeProto, in_shape, out_shape, kernel, transpose=False):
    attrs = attrs_of(node)
    spatial = len(in_shape) - 2
    if spatial not in (1, 2):
        raise lw.error(node, f"{spatial}-D {node.op_type} is not supported (1-D and 2-D only)")
    strides = list(attrs.get("strides", [1] * spatial))
    dil = list(attrs.get("dilations", [1] * spatial))
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if not transpose:
        begin, end = resolve_pads(in_shape[2:], kernel, strides, dil, attrs.get("pads"), auto_pad,
                                  out_shape[2:])
    else:
        out_pad = list(attrs.get("output_padding", [0] * spatial))
        if "output_shape" in attrs or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            begin, end = [], []
            for i in range(spatial):
                total = strides[i] * (in_shape[2 + i] - 1) + out_pad[i] + \
                    (kernel[i] - 1) * dil[i] + 1 - out_shape[2 + i]
                if auto_pad == "SAME_UPPER":
                    begin.append(total // 2)
                    end.append(total - total // 2)
                else:
                    begin.append(total - total // 2)
                    end.append(total // 2)
        else:
            begin, end = resolve_pads(in_shape[2:], kernel, strides, dil, attrs.get("pads"),
                                      auto_pad, out_shape[2:])
    if spatial == 1:
        kernel, strides, dil = [1] + list(kernel), [1] + strides, [1] + dil
        begin, end = [0] + begin, [0] + end
        in_hw, out_hw = [1, in_shape[2]], [1, out_shape[2]]
    else:
        in_hw, out_hw = list(in_shape[2:]), list(out_shape[2:])
    params = {"n": in_shape[0], "in_c": in_shape[1], "in_h": in_hw[0], "in_w": in_hw[1],
              "out_c": out_shape[1], "out_h": out_hw[0], "out_w": out_hw[1],
              "k_h": kernel[0], "k_w": kernel[1], "stride_h": strides[0], "stride_w": strides[1],
              "dil_h": dil[0], "dil_w": dil[1], "pad_top": begin[0], "pad_left": begin[1],
              "pad_bottom": end[0], "pad_right": end[1], "groups": int(attrs.get("group", 1))}
    summary = (f"k{'x'.join(map(str, kernel[-spatial:]))} s{'x'.join(map(str, strides[-spatial:]))}"
               f" p{','.join(map(str, begin[-spatial:] + end[-spatial:]))}"
               + (f" d{'x'.join(map(str, dil[-spatial:]))}" if any(d != 1 for d in dil) else "")
               + (f" g{params['groups']}" if params["groups"] != 1 else ""))
    return params, summary


def lower_conv(lw: Lowerer, node: onnx.NodeProto) -> None:
    x, w = node.input[0], node.input[1]
    b = node.input[2] if len(node.input) > 2 else ""
    lw.require_float(node, x, w, b, node.output[0])
    weights = lw.view.const(w)
    if weights is None:
        raise lw.error(node, "weights must be a constant (initializer)")
    if b and lw.view.const(b) is None:
        raise lw.error(node, "bias must be a constant (initializer)")
    in_shape, out_shape = lw.shape(x, node), lw.shape(node.output[0], node)
    params, summary = _spatial_params(lw, node, in_shape, out_shape, list(weights.shape[2:]))
    groups = params["groups"]
    lw.expect(node, in_shape[1] % groups == 0 and out_shape[1] % groups == 0 and
              weights.shape[0] == out_shape[1] and weights.shape[1] * groups == in_shape[1],
              f"weights {list(weights.shape)} do not match input channels {in_shape[1]}, output "
              f"channels {out_shape[1]} and group {groups}")
    lw.expect(node, not b or lw.view.const(b).size == out_shape[1], "bias size differs from output channels")
    act_min, act_max, out, suffix = lw.take_fused_activation(node)
    params.update(act_min=act_min, act_max=act_max)
    packed = weight_layout.pack_conv2d_weights(weights, params)
    scratch = weight_layout.conv2d_scratch_floats(params) * 4
    name = node.name or out
    args = [lw.operand(node, x), ("const", lw.const(f"{name}__weights", packed, node)),
            ("const", lw.const(f"{name}__bias", lw.view.const(b), node)) if b else ("null",),
            ("out", out), ("scratch",) if scratch else ("null",)]
    macs = int(np.prod(out_shape, dtype=np.int64)) * int(np.prod(weights.shape[1:], dtype=np.int64))
    lw.add(node, "ek_conv", "ek_conv2d_f32", "ek_conv2d_params", params, args,
           summary=f"{dims_str(in_shape)} -> {dims_str(out_shape)}, {summary}", macs=macs,
           scratch_bytes=scratch, op="Conv" + suffix)


def lower_conv_transpose(lw: Lowerer, node: onnx.NodeProto) -> None:
    x, w = node.input[0], node.input[1]
    b = node.input[2] if len(node.input) > 2 else ""
    lw.require_float(node, x, w, b, node.output[0])
    weights = lw.view.const(w)
    if weights is None or (b and lw.view.const(b) is None):
        raise lw.error(node, "weights and bias must be constants (initializers)")
    in_shape, out_shape = lw.shape(x, node), lw.shape(node.output[0], node)
    params, summary = _spatial_params(lw, node, in_shape, out_shape, list(weights.shape[2:]),
                                      transpose=True)
    groups = params["groups"]
    lw.expect(node, weights.shape[0] == in_shape[1] and weights.shape[1] * groups == out_shape[1]
              and in_shape[1] % groups == 0,
              f"weights {list(weights.shape)} do not match input channels {in_shape[1]}, output "
              f"channels {out_shape[1]} and group {groups}")
    lw.expect(node, not b or lw.view.const(b).size == out_shape[1], "bias size differs from output channels")
    act_min, act_max, out, suffix = lw.take_fused_activation(node)
    params.update(act_min=act_min, act_max=act_max)
    packed = weight_layout.pack_conv_transpose2d_weights(weights, params)
    name = node.name or out
    args = [lw.operand(node, x), ("const", lw.const(f"{name}__weights", packed, node)),
            ("const", lw.const(f"{name}__bias", lw.view.const(b), node)) if b else ("null",),
            ("out", out)]
    macs = int(np.prod(in_shape, dtype=np.int64)) * int(np.prod(weights.shape[1:], dtype=np.int64))
    lw.add(node, "ek_conv", "ek_conv_transpose2d_f32", "ek_conv_transpose2d_params", params, args,
           summary=f"{dims_str(in_shape)} -> {dims_str(out_shape)}, {summary}", macs=macs,
           op="ConvTranspose" + suffix)


def lower_gemm(lw: Lowerer, node: onnx.NodeProto) -> None:
    attrs = attrs_of(node)
    a, b = node.input[0], node.input[1]
    c = node.input[2] if len(node.input) > 2 else ""
    lw.require_float(node, a, b, c, node.output[0])
    a_shape, b_shape = lw.shape(a, node), lw.shape(b, node)
    trans_a, trans_b = int(attrs.get("transA", 0)), int(attrs.get("transB", 0))
    m, k = (a_shape[1], a_shape[0]) if trans_a else (a_shape[0], a_shape[1])
    n = b_shape[0] if trans_b else b_shape[1]
    act_min, act_max, out, suffix = lw.take_fused_activation(node)
    params = {"m": m, "n": n, "k": k, "trans_a": trans_a, "trans_b": trans_b, "b_packed": 0,
              "alpha": float(np.float32(attrs.get("alpha", 1.0))),
              "beta": float(np.float32(attrs.get("beta", 1.0))),
              "c_stride_m": 0, "c_stride_n": 0, "act_min": act_min, "act_max": act_max}
    name = node.name or out
    b_const = lw.view.const(b)
    if b_const is not None:
        params["b_packed"] = 1
        b_arg = ("const", lw.const(f"{name}__weights", weight_layout.pack_gemm_weights(b_const, params),
                                   node))
    else:
        b_arg = ("in", b)
    c_arg: tuple = ("null",)
    lw.expect(node, len(a_shape) == 2 and len(b_shape) == 2 and
              (b_shape[1] if trans_b else b_shape[0]) == k, f"A {list(a_shape)} and B {list(b_shape)} "
              f"do not multiply (transA={trans_a}, transB={trans_b})")
    if c:
        c_shape = (1, 1)[:2 - len(lw.shape(c, node))] + tuple(lw.shape(c, node))
        lw.expect(node, len(c_shape) == 2 and c_shape[0] in (1, m) and c_shape[1] in (1, n),
                  f"C {list(lw.shape(c, node))} does not broadcast to [{m}, {n}]")
        params["c_stride_n"] = 1 if c_shape[1] == n and n > 1 else 0
        params["c_stride_m"] = c_shape[1] if c_shape[0] == m and m > 1 else 0
        c_arg = lw.operand(node, c)
    lw.add(node, "ek_gemm", "ek_gemm_f32", "ek_gemm_params", params,
           [lw.operand(node, a), b_arg, c_arg, ("out", out)],
           summary=f"{dims_str(a_shape)} x {dims_str(b_shape)} -> {m}x{n}"
                   + (" transA" if trans_a else "") + (" transB" if trans_b else ""),
           macs=m * n * k, op="Gemm" + suffix)


def _fusable_bias(lw: Lowerer, node: onnx.NodeProto, n: int) -> tuple[onnx.NodeProto, np.ndarray] | None:
    """A following Add of a constant broadcasting as [n] along the last axis (MatMul + bias)."""
    out = node.output[0]
    users = lw.view.consumers.get(out, [])
    if len(users) != 1 or out in lw.view.graph_outputs or users[0].op_type != "Add":
        return None
    add = users[0]
    other = add.input[1] if add.input[0] == out else add.input[0]
    bias = lw.view.const(other)
    if bias is None or bias.size != n or (bias.ndim and bias.shape[-1] != n) or \
            bias.ndim > len(lw.shape(out)) or tuple(lw.shape(add.output[0])) != tuple(lw.shape(out)):
        return None
    return add, bias.reshape(-1).astype(np.float32)


def lower_matmul(lw: Lowerer, node: onnx.NodeProto) -> None:
    from edgekit.plugins.mcu.ops_w4 import lower_w4

    if lower_w4(lw, node):  # int4 / int8 weight-only weights stay packed
        return
    a, b = node.input[0], node.input[1]
    lw.require_float(node, a, b, node.output[0])
    a_shape, b_shape = list(lw.shape(a, node)), list(lw.shape(b, node))
    a2 = [1] + a_shape if len(a_shape) == 1 else a_shape
    b2 = b_shape + [1] if len(b_shape) == 1 else b_shape
    m, k, n = a2[-2], a2[-1], b2[-1]
    batch = list(np.broadcast_shapes(tuple(a2[:-2]), tuple(b2[:-2])))
    rank = len(batch)

    def batch_strides(shape, mat):
        shape = [1] * (rank - len(shape)) + list(shape)
        dense = dense_strides(shape)
        return [0 if d == 1 else s * mat for d, s in zip(shape, dense)]

    if batch:
        shape, (sa, sb) = collapse(batch, batch_strides(a2[:-2], m * k), batch_strides(b2[:-2], k * n))
        if shape == [1]:
            shape, sa, sb = [], [], []
    else:
        shape, sa, sb = [], [], []
    if len(shape) > MATMUL_MAX_BATCH_DIMS:
        raise lw.error(node, f"{len(shape)} batch dimensions after collapsing; at most "
                             f"{MATMUL_MAX_BATCH_DIMS} are supported")
    bias_arg: tuple = ("null",)
    fused = _fusable_bias(lw, node, n)
    head, suffix_bias = node, ""
    if fused is not None:
        add, bias = fused
        lw.skipped.add(id(add))
        head, suffix_bias = add, "+Add"
    name = node.name or node.output[0]
    if fused is not None:
        bias_arg = ("const", lw.const(f"{name}__bias", fused[1], node))
    act_min, act_max, out, suffix = lw.take_fused_activation(head)
    pad = MATMUL_MAX_BATCH_DIMS - len(shape)
    params = {"m": m, "n": n, "k": k, "batch_dims": len(shape), "batch_shape": shape + [0] * pad,
              "a_batch_stride": sa + [0] * pad, "b_batch_stride": sb + [0] * pad, "b_packed": 0,
              "act_min": act_min, "act_max": act_max}
    b_const = lw.view.const(b)
    if b_const is not None:
        params["b_packed"] = 1
        b_arg = ("const", lw.const(f"{name}__weights",
                                   weight_layout.pack_matmul_weights(b_const.reshape(b2), params), node))
    else:
        b_arg = ("in", b)
    out_shape = lw.shape(out, node)
    lw.add(node, "ek_gemm", "ek_matmul_f32", "ek_matmul_params", params,
           [lw.operand(node, a), b_arg, bias_arg, ("out", out)],
           summary=f"{dims_str(tuple(a_shape))} x {dims_str(tuple(b_shape))} -> {dims_str(out_shape)}",
           macs=int(np.prod(out_shape, dtype=np.int64)) * k, op="MatMul" + suffix_bias + suffix)


LOWERINGS = {"Conv": lower_conv, "ConvTranspose": lower_conv_transpose, "Gemm": lower_gemm,
             "MatMul": lower_matmul}
