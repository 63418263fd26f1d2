"""Lowering of elementwise ops: unary maps, broadcasting binary ops, BatchNormalization."""

from __future__ import annotations

import numpy as np
import onnx

from edgekit.plugins.mcu.graph import attrs_of
from edgekit.plugins.mcu.schedule import INF, Lowerer, clip_bounds, dims_str
from edgekit.plugins.mcu.shapes import MAX_DIMS, broadcast_strides

# op -> (kernel function, alpha/beta from attributes)
_UNARY = {
    "Relu": ("ek_relu_f32", lambda a: (0.0, 0.0)),
    "LeakyRelu": ("ek_leaky_relu_f32", lambda a: (float(a.get("alpha", 0.01)), 0.0)),
    "Sigmoid": ("ek_sigmoid_f32", lambda a: (0.0, 0.0)),
    "Tanh": ("ek_tanh_f32", lambda a: (0.0, 0.0)),
    "HardSigmoid": ("ek_hard_sigmoid_f32",
                    lambda a: (float(a.get("alpha", 0.2)), float(a.get("beta", 0.5)))),
    "HardSwish": ("ek_hard_swish_f32", lambda a: (0.0, 0.0)),
    "Exp": ("ek_exp_f32", lambda a: (0.0, 0.0)),
    "Log": ("ek_log_f32", lambda a: (0.0, 0.0)),
    "Sqrt": ("ek_sqrt_f32", lambda a: (0.0, 0.0)),
    "Neg": ("ek_neg_f32", lambda a: (0.0, 0.0)),
    "Abs": ("ek_abs_f32", lambda a: (0.0, 0.0)),
    "Reciprocal": ("ek_reciprocal_f32", lambda a: (0.0, 0.0)),
    "Floor": ("ek_floor_f32", lambda a: (0.0, 0.0)),
    "Ceil": ("ek_ceil_f32", lambda a: (0.0, 0.0)),
    "Elu": ("ek_elu_f32", lambda a: (float(a.get("alpha", 1.0)), 0.0)),
    "Selu": ("ek_selu_f32", lambda a: (float(a.get("alpha", 1.67326319217681884765625)),
                                       float(a.get("gamma", 1.05070102214813232421875)))),
    "Softplus": ("ek_softplus_f32", lambda a: (0.0, 0.0)),
    "Softsign": ("ek_softsign_f32", lambda a: (0.0, 0.0)),
    "Erf": ("ek_erf_f32", lambda a: (0.0, 0.0)),
    "Gelu": ("ek_gelu_f32", lambda a: (1.0 if a.get("approximate", "none") == "tanh" else 0.0, 0.0)),
}

_BINARY = {"Add": "ek_add_f32", "Sub": "ek_sub_f32", "Mul": "ek_mul_f32", "Div": "ek_div_f32",
           "Max": "ek_max_f32", "Min": "ek_min_f32", "Pow": "ek_pow_f32", "PRelu": "ek_prelu_f32"}


def _unary_layer(lw: Lowerer, node: onnx.NodeProto, function: str, alpha: float, beta: float,
                 op: str | None = None) -> None:
    x, y = node.input[0], node.output[0]
    lw.require_float(node, x, y)
    n = int(np.prod(lw.shape(x, node), dtype=np.int64))
    summary = f"{dims_str(lw.shape(x, node))}"
    lw.add(node, "ek_activation", function, "ek_activation_params",
           {"size": n, "alpha": float(np.float32(alpha)), "beta": float(np.float32(beta))},
           [lw.operand(node, x), ("out", y)], summary=summary, inplace=(y, x), op=op)


def lower_unary(lw: Lowerer, node: onnx.NodeProto) -> None:
    function, coeffs = _UNARY[node.op_type]
    alpha, beta = coeffs(attrs_of(node))
    _unary_layer(lw, node, function, alpha, beta)


def lower_clip(lw: Lowerer, node: onnx.NodeProto) -> None:
    bounds = clip_bounds(lw, node)
    if bounds is None:
        raise lw.error(node, "min/max must be constants (initializers)")
    _unary_layer(lw, node, "ek_clip_f32", bounds[0], bounds[1])


def lower_binary(lw: Lowerer, node: onnx.NodeProto) -> None:
    inputs = [n for n in node.input if n]
    out = node.output[0]
    # Constants are cast to float32 at build time (Pow's exponent may be an integer tensor).
    lw.require_float(node, out, *[n for n in inputs if not lw.view.is_const(n)])
    if len(inputs) == 1:  # variadic Max/Min of one input
        lw.alias(node, out, inputs[0])
        return
    fusable = node.op_type in ("Add", "Sub", "Mul", "Div", "Max", "Min")
    act_min, act_max, final, suffix = lw.take_fused_activation(node) if fusable else \
        (-INF, INF, out, "")
    # Variadic Max/Min with k > 2 inputs: a chain of k - 1 binary layers.
    acc, acc_shape = inputs[0], lw.shape(inputs[0], node)
    for i, b in enumerate(inputs[1:]):
        last = i == len(inputs) - 2
        b_shape = lw.shape(b, node)
        if last:
            dst, dst_shape = final, lw.shape(out, node)
        else:
            dst = f"{out}__{node.op_type.lower()}{i}"
            dst_shape = tuple(int(d) for d in np.broadcast_shapes(acc_shape, b_shape))
            lw.view.shapes[dst] = dst_shape
        _binary_layer(lw, node, acc, b, dst, acc_shape, b_shape, dst_shape,
                      (act_min, act_max) if last else (-INF, INF), suffix if last else "")
        acc, acc_shape = dst, dst_shape


def _binary_layer(lw: Lowerer, node: onnx.NodeProto, a: str, b: str, out: str, a_shape, b_shape,
                  out_shape, act: tuple[float, float], suffix: str) -> None:
    if node.op_type == "PRelu" and lw.view.opset < 7 and len(b_shape) == 1 and len(a_shape) > 2 \
            and b_shape[0] == a_shape[1]:
        b_shape = (b_shape[0],) + (1,) * (len(a_shape) - 2)  # PRelu-6: one slope per channel
    try:
        shape, sa, sb = broadcast_strides(a_shape, b_shape, out_shape)
    except ValueError as exc:
        raise lw.error(node, str(exc)) from None
    if len(shape) > MAX_DIMS:
        raise lw.error(node, f"broadcast needs {len(shape)} dimensions after collapsing; at most "
                             f"{MAX_DIMS} are supported")
    pad = MAX_DIMS - len(shape)
    params = {"rank": len(shape), "shape": shape + [0] * pad, "a_stride": sa + [0] * pad,
              "b_stride": sb + [0] * pad, "act_min": act[0], "act_max": act[1]}
    # The output may take the storage of an operand that has its shape and dies here.
    inplace = None
    for name, shp in ((a, a_shape), (b, b_shape)):
        if tuple(shp) == tuple(out_shape) and not lw.view.is_const(name):
            inplace = (out, name)
            break
    lw.add(node, "ek_elementwise", _BINARY[node.op_type], "ek_binary_params", params,
           [lw.operand(node, a), lw.operand(node, b), ("out", out)],
           summary=f"{dims_str(tuple(a_shape))} , {dims_str(tuple(b_shape))} -> {dims_str(tuple(out_shape))}",
           inplace=inplace, op=node.op_type + suffix)


def lower_batchnorm(lw: Lowerer, node: onnx.NodeProto) -> None:
    attrs = attrs_of(node)
    if attrs.get("training_mode", 0) or len([o for o in node.output if o]) > 1:
        raise lw.error(node, "training mode (extra outputs) is not supported; export the model in "
                             "eval mode")
    x, y = node.input[0], node.output[0]
    lw.require_float(node, x, y)
    consts = [lw.view.const(n) for n in node.input[1:5]]
    if any(c is None for c in consts):
        raise lw.error(node, "scale, B, mean and var must be constants")
    shape = lw.shape(x, node)
    channels = shape[1] if len(shape) > 1 else 1
    lw.expect(node, all(c.size == channels for c in consts),
              f"scale/B/mean/var must have {channels} elements (one per channel)")
    gamma, beta, mean, var = (c.astype(np.float64).reshape(-1) for c in consts)
    eps = float(attrs.get("epsilon", 1e-5))
    scale = gamma / np.sqrt(var + eps)
    shift = beta - mean * scale
    inner = int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else 1
    name = node.name or y
    lw.add(node, "ek_batchnorm", "ek_batchnorm_f32", "ek_batchnorm_params",
           {"batch": shape[0], "channels": channels, "inner": inner},
           [lw.operand(node, x), ("const", lw.const(f"{name}__scale", scale, node)),
            ("const", lw.const(f"{name}__shift", shift, node)), ("out", y)],
           summary=dims_str(shape), inplace=(y, x))


LOWERINGS = {op: lower_unary for op in _UNARY}
LOWERINGS.update({op: lower_binary for op in _BINARY})
LOWERINGS["Clip"] = lower_clip
LOWERINGS["BatchNormalization"] = lower_batchnorm
