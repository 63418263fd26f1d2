"""Lowering of QDQ graphs (QuantizeLinear / DequantizeLinear) onto the int8 kernels.

Technique: the node-group selection onnxruntime's QDQ transformer uses (``DQ -> op -> Q`` groups
become one QLinear op), done at lowering time. A float op whose activation inputs come from
DequantizeLinear of int8 tensors, whose weights are quantized constants, and whose only consumer is
a QuantizeLinear (possibly through a Relu/Clip, which becomes the int8 clamp) runs as one int8
kernel reading and writing the int8 tensors directly; its Q node is consumed. Everything else keeps
its meaning: a DequantizeLinear that some consumer still needs in float becomes an int8 -> float
kernel, a QuantizeLinear of a float tensor a float -> int8 kernel, and the op between them runs in
float. So a partly quantized model (mixed precision, an op without an int8 kernel) builds and
computes what onnxruntime computes, and the report says which layers ran in int8.

Each int8 kernel family's Python builder (:mod:`.qconv_layout`, :mod:`.qops_layout`) turns the
ONNX-level description (shapes, scales, zero points, integer weights) into a :class:`.QLayer`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx

from edgekit.plugins.mcu.graph import QConst, attrs_of
from edgekit.plugins.mcu.qlayer import QLayer
from edgekit.plugins.mcu.schedule import Lowerer, clip_bounds, dims_str

INT8, INT32 = onnx.TensorProto.INT8, onnx.TensorProto.INT32
#: Ops that only move or reinterpret data: with equal input and output quantization their float
#: lowering runs on the int8 tensors themselves (a view or an int8 copy), else one requantization
#: follows.
VIEW_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose")
#: Element-wise float ops that become a 256-entry int8 lookup table.
LUT_OPS = ("Relu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Selu",
           "Softplus", "Softsign", "Erf", "Gelu", "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal")


@dataclass(frozen=True)
class QParams:
    """Per-tensor quantization of an int8 activation."""

    scale: float
    zero_point: int

    @property
    def pair(self) -> tuple[float, int]:
        return self.scale, self.zero_point


@dataclass
class QInput:
    """An int8 operand of a matched group: an activation (``tensor``) or a constant (``qconst``)."""

    name: str                  # the float tensor the op reads (a DequantizeLinear output)
    q: QParams | None          # per-tensor quantization (None for per-channel constants)
    tensor: str = ""           # the int8 activation tensor (DequantizeLinear input)
    qconst: QConst | None = None


@dataclass
class Group:
    """A ``DQ... -> op -> [Relu|Clip] -> Q`` group that runs as one int8 kernel."""

    node: onnx.NodeProto
    inputs: list[QInput]
    output: str                # the int8 tensor the Q node produces
    out_q: QParams
    act: tuple[float | None, float | None] = (None, None)
    consumed: list[onnx.NodeProto] = field(default_factory=list)  # activation and Q nodes


# -- reading quantization parameters --------------------------------------------------------------

def _scalar_q(lw: Lowerer, node: onnx.NodeProto) -> QParams | None:
    """Per-tensor int8 (scale, zero point) of a Q/DQ node, None if per-axis, non-int8 or not constant."""
    scale = lw.view.const(node.input[1]) if len(node.input) > 1 else None
    if scale is None or scale.size != 1:
        return None
    zp_name = node.input[2] if len(node.input) > 2 else ""
    if zp_name:
        zp = lw.view.const(zp_name)
        if zp is None or zp.size != 1 or lw.view.dtypes.get(zp_name) != INT8:
            return None
        zero_point = int(zp.reshape(-1)[0])
    else:
        attrs = attrs_of(node)
        if node.op_type == "QuantizeLinear" and attrs.get("output_dtype", INT8) != INT8:
            return None
        if node.op_type == "DequantizeLinear" and lw.view.dtypes.get(node.input[0]) != INT8:
            return None
        if node.op_type == "QuantizeLinear" and not zp_name and "output_dtype" not in attrs:
            return None  # no zero point and no output_dtype means uint8
        zero_point = 0
    value = float(np.float32(scale.reshape(-1)[0]))
    if not (value > 0.0 and math.isfinite(value)):
        return None
    return QParams(value, zero_point)


def dq_input(lw: Lowerer, name: str) -> QInput | None:
    """``name`` as an int8 operand: a DequantizeLinear of an int8 activation or constant."""
    if not name:
        return None
    qc = lw.view.qconst(name)
    if qc is not None:
        if qc.onnx_dtype not in (INT8, INT32) or qc.block_size:
            return None
        q = None
        if qc.scale.size == 1:
            zp = 0 if qc.zero_point is None else int(np.asarray(qc.zero_point).reshape(-1)[0])
            q = QParams(float(qc.scale.reshape(-1)[0]), zp)
        return QInput(name, q, qconst=qc)
    node = lw.view.producer(name)
    if node is None or node.op_type != "DequantizeLinear" or lw.view.is_const(node.input[0]):
        return None
    if lw.view.dtypes.get(node.input[0]) != INT8 or name in lw.view.graph_outputs:
        return None
    q = _scalar_q(lw, node)
    return QInput(name, q, tensor=node.input[0]) if q is not None else None


def q_output(lw: Lowerer, node: onnx.NodeProto, fuse_activation: bool = True) \
        -> tuple[str, QParams, tuple, list[onnx.NodeProto]] | None:
    """(int8 output, its quantization, fused real clamp, consumed nodes) when the only consumer of
    ``node``'s output is a QuantizeLinear to int8, optionally through a Relu or constant Clip."""
    out = node.output[0]
    consumed: list[onnx.NodeProto] = []
    act: tuple = (None, None)
    users = lw.view.consumers.get(out, [])
    if len(users) != 1 or out in lw.view.graph_outputs:
        return None
    user = users[0]
    if fuse_activation and user.op_type in ("Relu", "Clip"):
        if user.op_type == "Relu":
            act = (0.0, None)
        else:
            bounds = clip_bounds(lw, user)
            if bounds is None:
                return None
            act = tuple(None if math.isinf(b) else b for b in bounds)
        consumed.append(user)
        out = user.output[0]
        users = lw.view.consumers.get(out, [])
        if len(users) != 1 or out in lw.view.graph_outputs:
            return None
        user = users[0]
    if user.op_type != "QuantizeLinear" or user.domain not in ("", "ai.onnx"):
        return None
    q = _scalar_q(lw, user)
    if q is None or lw.view.dtypes.get(user.output[0]) != INT8:
        return None
    consumed.append(user)
    return user.output[0], q, act, consumed


def _group(lw: Lowerer, node: onnx.NodeProto, operands: list[str], fuse_activation: bool = True) \
        -> Group | None:
    inputs = []
    for name in operands:
        qi = dq_input(lw, name)
        if qi is None:
            return None
        inputs.append(qi)
    sink = q_output(lw, node, fuse_activation)
    if sink is None:
        return None
    out, q, act, consumed = sink
    return Group(node, inputs, out, q, act, consumed)


def _activation_only(g: Group, *indices: int) -> bool:
    return all(g.inputs[i].tensor and g.inputs[i].q is not None for i in indices)


# -- matchers: node -> Group | None (pure functions of the graph) ---------------------------------

def _weights_ok(qc: QConst | None, axis: int) -> bool:
    """int8 symmetric weights, per tensor or per channel along ``axis``."""
    if qc is None or qc.onnx_dtype != INT8 or qc.block_size:
        return False
    if qc.zero_point is not None and np.any(np.asarray(qc.zero_point) != 0):
        return False
    return qc.scale.size == 1 or (qc.axis == axis and qc.scale.size == qc.values.shape[axis])


def _bias_ok(qc: QConst | None, x_scale: float, w_scale: np.ndarray, n: int) -> bool:
    """int32 bias whose scale is input scale x weight scale (what the kernels assume)."""
    if qc is None or qc.onnx_dtype != INT32 or qc.values.size != n:
        return False
    if qc.zero_point is not None and np.any(np.asarray(qc.zero_point) != 0):
        return False
    expected = np.broadcast_to(np.float32(x_scale) * w_scale.astype(np.float32), (n,))
    return bool(np.allclose(np.broadcast_to(qc.scale.reshape(-1), (n,)), expected, rtol=1e-4, atol=0))


def match_conv(lw: Lowerer, node: onnx.NodeProto) -> Group | None:
    g = _group(lw, node, [n for n in node.input if n])
    if g is None or not _activation_only(g, 0) or len(lw.shape(node.input[0])) not in (3, 4):
        return None
    w = g.inputs[1].qconst
    if not _weights_ok(w, 0):
        return None
    if len(g.inputs) > 2:
        w_scale = np.broadcast_to(w.scale.reshape(-1), (w.values.shape[0],))
        if not _bias_ok(g.inputs[2].qconst, g.inputs[0].q.scale, w_scale, w.values.shape[0]):
            return None
    return g


def _gemm_weights(lw: Lowerer, node: onnx.NodeProto, g: Group) -> tuple[np.ndarray, np.ndarray] | None:
    """Weights as [n, k] int8 and per-n float scales, or None when the form is not the kernel's."""
    w = g.inputs[1].qconst
    if w is None or w.values.ndim != 2:
        return None
    if node.op_type == "Gemm":
        attrs = attrs_of(node)
        if attrs.get("transA", 0) or float(attrs.get("alpha", 1.0)) != 1.0 or \
                float(attrs.get("beta", 1.0)) != 1.0:
            return None
        trans_b = int(attrs.get("transB", 0))
    else:
        trans_b = 0
    n_axis = 0 if trans_b else 1
    if not _weights_ok(w, n_axis):
        return None
    values = w.values if trans_b else w.values.T
    n = values.shape[0]
    return np.ascontiguousarray(values, dtype=np.int8), np.broadcast_to(
        w.scale.reshape(-1).astype(np.float32), (n,)).copy()


def match_gemm(lw: Lowerer, node: onnx.NodeProto) -> Group | None:
    g = _group(lw, node, [n for n in node.input if n])
    if g is None or not _activation_only(g, 0):
        return None
    a_shape = lw.shape(node.input[0])
    if node.op_type == "Gemm" and len(a_shape) != 2:
        return None
    if node.op_type == "MatMul" and len(a_shape) < 2:
        return None
    wk = _gemm_weights(lw, node, g)
    if wk is None or wk[0].shape[1] != a_shape[-1]:
        return None
    if len(g.inputs) > 2:
        c = g.inputs[2].qconst
        if c is None or c.values.size != wk[0].shape[0] or \
                not _bias_ok(c, g.inputs[0].q.scale, wk[1], wk[0].shape[0]):
            return None
    return g


def match_binary(lw: Lowerer, node: onnx.NodeProto) -> Group | None:
    g = _group(lw, node, list(node.input))
    if g is None or any(qi.q is None or (qi.qconst is not None and qi.qconst.onnx_dtype != INT8)
                        for qi in g.inputs):
        return None
    if len(lw.shape(node.output[0])) > 6:
        return None
    return g


def match_unary(lw: Lowerer, node: onnx.NodeProto) -> Group | None:
    """DQ -> op -> Q for ops computed per element from one activation (LUT, pools, softmax, views)."""
    operands = [node.input[0]]
    if node.op_type == "Clip" and lw.view.opset >= 11 and clip_bounds(lw, node) is None:
        return None
    if node.op_type not in LUT_OPS and node.op_type not in VIEW_OPS and \
            any(n and not lw.view.is_const(n) for n in node.input[1:]):
        return None
    g = _group(lw, node, operands, fuse_activation=False)
    if g is None or not _activation_only(g, 0):
        return None
    if node.op_type in ("MaxPool", "AveragePool") and len([o for o in node.output if o]) > 1:
        return None
    if node.op_type == "Transpose" and g.inputs[0].q != g.out_q:
        return None
    if node.op_type == "Softmax" and lw.view.opset < 13:
        shape = lw.shape(node.input[0])
        axis = int(attrs_of(node).get("axis", 1)) % len(shape)
        if axis != len(shape) - 1:
            return None  # opset < 13 coerces to 2-D; only the last-axis form is a plain softmax
    return g


MATCHERS: dict[str, Callable[[Lowerer, onnx.NodeProto], Group | None]] = {
    "Conv": match_conv, "Gemm": match_gemm, "MatMul": match_gemm,
    "Add": match_binary, "Mul": match_binary,
    **{op: match_unary for op in ("MaxPool", "AveragePool", "GlobalAveragePool", "Softmax",
                                  *VIEW_OPS, *LUT_OPS)},
}


def match(lw: Lowerer, node: onnx.NodeProto) -> Group | None:
    """The int8 group ``node`` heads, or None (it then runs in float)."""
    if node.domain not in ("", "ai.onnx"):
        return None
    fn = MATCHERS.get(node.op_type)
    if fn is None:
        return None
    try:
        return fn(lw, node)
    except (KeyError, ValueError, IndexError):  # missing shape or odd attribute: not a group
        return None


# -- emitters ---------------------------------------------------------------------------------------

def _const_args(lw: Lowerer, node: onnx.NodeProto, layer: QLayer) -> list[tuple]:
    """The layer's constant arrays as call arguments, named after the node."""
    name = lw.node_name(node)
    return [("const", lw.const(f"{name}__{role}", a, node, dtype=a.dtype)) for role, a in layer.consts]


def _emit(lw: Lowerer, g: Group, layer: QLayer, op: str, macs: int = 0, extra_inputs=()) -> None:
    name = lw.node_name(g.node)
    args: list[tuple] = []
    for qi in [*g.inputs[:1], *extra_inputs]:
        if qi.tensor:
            args.append(("in", qi.tensor))
        else:
            args.append(("const", lw.const(f"{name}__{qi.name}", qi.qconst.values.astype(np.int8),
                                           g.node, dtype=np.int8)))
    args += _const_args(lw, g.node, layer)
    args.append(("out", g.output))
    if layer.takes_scratch:
        args.append(("scratch",) if layer.scratch_bytes else ("null",))
    inplace = (g.output, g.inputs[0].tensor) if layer.inplace and g.inputs[0].tensor else None
    suffix = "".join("+" + n.op_type for n in g.consumed[:-1])
    lw.add(g.node, layer.family, layer.function, layer.params_type, layer.params, args,
           summary=f"int8 {dims_str(lw.shape(g.node.input[0]))} -> {dims_str(lw.shape(g.output))}"
                   + (f", {layer.summary}" if layer.summary else ""),
           macs=macs, scratch_bytes=layer.scratch_bytes, inplace=inplace, op=f"{op}{suffix}")
    lw.skipped.update(id(n) for n in g.consumed)


def _fusable_residual(lw: Lowerer, g: Group) -> tuple[Group, QInput] | None:
    """The Add group that only consumes this conv's output (through its DequantizeLinear) and adds
    an int8 activation computed before the conv: it can run as the conv's epilogue."""
    dqs = lw.view.consumers.get(g.output, [])
    if len(dqs) != 1 or dqs[0].op_type != "DequantizeLinear" or g.output in lw.view.graph_outputs:
        return None
    adds = lw.view.consumers.get(dqs[0].output[0], [])
    if len(adds) != 1 or adds[0].op_type != "Add" or dqs[0].output[0] in lw.view.graph_outputs:
        return None
    add = match_binary(lw, adds[0])
    if add is None or tuple(lw.shape(add.output)) != tuple(lw.shape(g.output)):
        return None
    others = [qi for qi in add.inputs if qi.name != dqs[0].output[0]]
    if len(others) != 1 or not others[0].tensor:
        return None
    producer = lw.view.producer(others[0].tensor)  # the residual must exist before the conv runs
    if producer is not None and lw.position(producer) >= lw.position(g.node):
        return None
    if tuple(lw.shape(others[0].tensor)) != tuple(lw.shape(g.output)):
        return None
    return add, others[0]


def _emit_conv(lw: Lowerer, g: Group) -> None:
    from edgekit.plugins.mcu import qconv_layout
    from edgekit.plugins.mcu.ops_nn import _spatial_params

    node, x, w = g.node, g.inputs[0], g.inputs[1].qconst
    in_shape, out_shape = lw.shape(node.input[0], node), lw.shape(node.output[0], node)
    geometry, summary = _spatial_params(lw, node, in_shape, out_shape, list(w.values.shape[2:]))
    values = w.values.reshape(w.values.shape[:2] + (1,) * (4 - w.values.ndim) + w.values.shape[2:])
    out_c = values.shape[0]
    w_scale = np.broadcast_to(w.scale.reshape(-1).astype(np.float32), (out_c,)).copy()
    bias = g.inputs[2].qconst.values.reshape(-1).astype(np.int32) if len(g.inputs) > 2 else None
    layer = qconv_layout.qconv_layer(geometry, values.astype(np.int8), w_scale, bias, x.q.scale,
                                     x.q.zero_point, g.out_q.scale, g.out_q.zero_point, g.act,
                                     lw.int8_arithmetic)
    layer.summary = layer.summary or summary
    macs = int(np.prod(out_shape, dtype=np.int64)) * int(np.prod(values.shape[1:], dtype=np.int64))
    fused = None if layer.params["depthwise"] else _fusable_residual(lw, g)
    if fused is None:
        _emit(lw, g, layer, "QConv", macs)
        return
    from edgekit.plugins.mcu import qops_layout

    add, residual = fused
    params = {"conv": list(layer.params.values()),
              "add": qops_layout.add_epilogue(g.out_q.pair, residual.q.pair, add.out_q.pair, add.act,
                                              lw.int8_arithmetic)}
    args = [("in", x.tensor), *_const_args(lw, node, layer)]
    args += [("in", residual.tensor), ("out", add.output), ("scratch",)]
    lw.add(node, "ek_qconv", "ek_qconv_add_s8", "ek_qconv_add_params", params, args,
           summary=f"int8 {dims_str(in_shape)} -> {dims_str(out_shape)}, {layer.summary}, + residual "
                   f"'{residual.tensor}'",
           macs=macs, scratch_bytes=layer.scratch_bytes,
           # in place over the residual only when the conv does not read it too (whole windows)
           inplace=None if lw.schedule.root(residual.tensor) == lw.schedule.root(x.tensor)
           else (add.output, residual.tensor),
           op="QConv" + "".join("+" + n.op_type for n in g.consumed[:-1]) + "+Add")
    consumed = g.consumed + [lw.view.consumers[g.output][0], add.node] + add.consumed
    lw.skipped.update(id(n) for n in consumed)
    lw.schedule.int8_nodes.append(lw.node_name(add.node))


def _emit_gemm(lw: Lowerer, g: Group) -> None:
    from edgekit.plugins.mcu import qconv_layout

    node, x = g.node, g.inputs[0]
    weights, w_scale = _gemm_weights(lw, node, g)
    a_shape = lw.shape(node.input[0], node)
    m = int(np.prod(a_shape[:-1], dtype=np.int64))
    bias = g.inputs[2].qconst.values.reshape(-1).astype(np.int32) if len(g.inputs) > 2 else None
    layer = qconv_layout.qgemm_layer(m, weights, w_scale, bias, x.q.scale, x.q.zero_point,
                                     g.out_q.scale, g.out_q.zero_point, g.act, lw.int8_arithmetic)
    _emit(lw, g, layer, "Q" + node.op_type, m * weights.shape[0] * weights.shape[1])


def _emit_binary(lw: Lowerer, g: Group) -> None:
    from edgekit.plugins.mcu import qops_layout

    node = g.node
    layer = qops_layout.qbinary_layer(node.op_type, lw.shape(node.input[0], node),
                                      lw.shape(node.input[1], node), lw.shape(node.output[0], node),
                                      g.inputs[0].q.pair, g.inputs[1].q.pair, g.out_q.pair, g.act,
                                      lw.int8_arithmetic)
    _emit(lw, g, layer, "Q" + node.op_type, extra_inputs=g.inputs[1:])


def _lut_function(lw: Lowerer, node: onnx.NodeProto) -> Callable[[np.ndarray], np.ndarray]:
    """The float op itself, evaluated by onnx's reference evaluator (the values ORT computes)."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    inits = [numpy_helper.from_array(lw.view.const(n), n) for n in node.input[1:] if n]
    single = helper.make_model(
        helper.make_graph([node], "lut", [helper.make_tensor_value_info(node.input[0], onnx.TensorProto.FLOAT, None)],
                          [helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, None)],
                          inits),
        opset_imports=[helper.make_opsetid("", lw.view.opset)])
    evaluator = ReferenceEvaluator(single)
    return lambda x: np.asarray(evaluator.run(None, {node.input[0]: np.asarray(x, dtype=np.float32)})[0],
                                dtype=np.float32)


def _rescale_layer(lw: Lowerer, count: int, x_q, y_q, relu: bool):
    """An int8 -> int8 rescale (optionally a Relu) rounded as the build's int8 arithmetic says."""
    from edgekit.plugins.mcu import qops_layout

    if lw.int8_arithmetic == "tflite":
        return qops_layout.tflite_rescale_layer(count, x_q, y_q, relu)
    return qops_layout.lut_layer(count, lambda v: np.maximum(v, 0), x_q, y_q, summary="Relu") if relu \
        else qops_layout.requantize_layer(count, x_q, y_q)


def _emit_unary(lw: Lowerer, g: Group) -> None:
    from edgekit.plugins.mcu import qops_layout
    from edgekit.plugins.mcu.ops_pool import pool_geometry

    node, x = g.node, g.inputs[0]
    op = node.op_type
    count = int(np.prod(lw.shape(g.output, node), dtype=np.int64))
    if op in VIEW_OPS:
        if x.q == g.out_q:
            from edgekit.plugins.mcu.optable import LOWERINGS

            on_int8 = onnx.NodeProto()
            on_int8.CopyFrom(node)
            on_int8.input[0], on_int8.output[0] = x.tensor, g.output
            LOWERINGS[op](lw, on_int8)
            lw.skipped.update(id(n) for n in g.consumed)
            return
        if op == "Transpose":
            raise lw.error(node, "int8 Transpose with different input and output quantization")
        layer = _rescale_layer(lw, count, x.q.pair, g.out_q.pair, relu=False)
    elif op == "Relu" and lw.int8_arithmetic == "tflite":
        layer = _rescale_layer(lw, count, x.q.pair, g.out_q.pair, relu=True)
    elif op in LUT_OPS:
        layer = qops_layout.lut_layer(count, _lut_function(lw, node), x.q.pair, g.out_q.pair, summary=op)
    elif op in ("MaxPool", "AveragePool"):
        geo = pool_geometry(lw, node)
        if geo.whole_plane and op == "AveragePool":
            layer = qops_layout.qglobal_avgpool_layer(geo.in_shape[0], geo.in_shape[1],
                                                      geo.params["in_h"] * geo.params["in_w"],
                                                      x.q.pair, g.out_q.pair, lw.int8_arithmetic)
        else:
            layer = qops_layout.qpool_layer("max" if op == "MaxPool" else "avg", geo.params,
                                            x.q.pair, g.out_q.pair, lw.int8_arithmetic)
        layer.summary = layer.summary or geo.summary.split(", ", 1)[-1]
    elif op == "GlobalAveragePool":
        shape = lw.shape(node.input[0], node)
        layer = qops_layout.qglobal_avgpool_layer(shape[0], shape[1],
                                                  int(np.prod(shape[2:], dtype=np.int64)),
                                                  x.q.pair, g.out_q.pair, lw.int8_arithmetic)
    elif op == "Softmax":
        shape = lw.shape(node.input[0], node)
        axis = int(attrs_of(node).get("axis", -1 if lw.view.opset >= 13 else 1)) % len(shape)
        layer = qops_layout.qsoftmax_layer(shape, axis, x.q.pair, g.out_q.pair)
    else:  # pragma: no cover - MATCHERS and this dispatch list the same ops
        raise lw.error(node, "no int8 kernel")
    _emit(lw, g, layer, "Q" + op)


EMITTERS = {"Conv": _emit_conv, "Gemm": _emit_gemm, "MatMul": _emit_gemm, "Add": _emit_binary,
            "Mul": _emit_binary}


def try_lower(lw: Lowerer, node: onnx.NodeProto) -> bool:
    """Lower ``node`` as (the head of) an int8 group; False when it is not one."""
    g = match(lw, node)
    if g is None:
        return False
    try:
        EMITTERS.get(node.op_type, _emit_unary)(lw, g)
    except ValueError as exc:  # qmath/qops_layout: what no int8 kernel holds (a scale ratio, a rank)
        raise lw.error(node, str(exc)) from None
    lw.schedule.int8_nodes.append(lw.node_name(node))
    return True


def int8_boundary(lw: Lowerer, outputs: bool = True) \
        -> dict[str, tuple[str, tuple[float, int], onnx.NodeProto | None]]:
    """Graph inputs quantized to int8 by their only consumer, and (``outputs``) graph outputs
    dequantized from an int8 activation: graph tensor -> (int8 tensor, (scale, zero point), the Q/DQ
    node the caller's conversion replaces). That node is None for an output other nodes also read:
    its DequantizeLinear still runs for them, from the int8 output in the caller's buffer."""
    found = {}
    graph = lw.view.model.graph
    for inp in graph.input:
        users = lw.view.consumers.get(inp.name, [])
        if len(users) == 1 and users[0].op_type == "QuantizeLinear" and \
                inp.name not in lw.view.graph_outputs:
            q = _scalar_q(lw, users[0])
            if q is not None and lw.view.dtypes.get(users[0].output[0]) == INT8 and \
                    users[0].output[0] not in lw.view.graph_outputs:
                found[inp.name] = (users[0].output[0], q.pair, users[0])
    for out in graph.output if outputs else ():
        node = lw.view.producer(out.name)
        if node is None or node.op_type != "DequantizeLinear" or lw.view.is_const(node.input[0]):
            continue
        q = _scalar_q(lw, node)
        src = node.input[0]
        if q is not None and lw.view.dtypes.get(src) == INT8 and src not in {v[0] for v in found.values()} and \
                src not in {i.name for i in graph.input} and src not in lw.view.graph_outputs:
            found[out.name] = (src, q.pair, None if lw.view.consumers.get(out.name) else node)
    return found


# -- the boundary ops --------------------------------------------------------------------------------

def lower_dequantize(lw: Lowerer, node: onnx.NodeProto) -> None:
    """int8 -> float32, unless every consumer reads the int8 tensor directly (then nothing)."""
    out = node.output[0]
    if lw.view.qconst(out) is not None:
        return  # a quantized constant: the consumers read it (as integers or dequantized)
    users = lw.view.consumers.get(out, [])
    if users and out not in lw.view.graph_outputs and all(match(lw, u) is not None for u in users):
        return
    from edgekit.plugins.mcu import qops_layout

    q = _scalar_q(lw, node)
    if q is None or lw.view.dtypes.get(node.input[0]) != INT8:
        raise lw.error(node, "only per-tensor int8 DequantizeLinear of activations is supported "
                             "(per-axis and uint8 only for constant weights)")
    count = int(np.prod(lw.shape(out, node), dtype=np.int64))
    layer = qops_layout.dequantize_layer(count, q.pair, lw.soft_float)
    lowered = lw.add(node, layer.family, layer.function, layer.params_type, layer.params,
           [("in", node.input[0]), *_const_args(lw, node, layer), ("out", out)],
           summary=f"{dims_str(lw.shape(out, node))} int8 -> float32"
                   + (f", {layer.summary}" if layer.summary else ""), op="DequantizeLinear")
    lowered.widens_in_place = True  # both kernels run last to first


def lower_quantize(lw: Lowerer, node: onnx.NodeProto) -> None:
    """float32 -> int8 (Q nodes that close an int8 group were consumed by it)."""
    from edgekit.plugins.mcu import qops_layout

    q = _scalar_q(lw, node)
    if q is None or lw.view.dtypes.get(node.output[0]) != INT8:
        raise lw.error(node, "only per-tensor QuantizeLinear to int8 is supported")
    lw.require_float(node, node.input[0])
    count = int(np.prod(lw.shape(node.output[0], node), dtype=np.int64))
    layer = qops_layout.quantize_layer(count, q.pair, lw.soft_float)
    lw.add(node, layer.family, layer.function, layer.params_type, layer.params,
           [lw.operand(node, node.input[0]), *_const_args(lw, node, layer), ("out", node.output[0])],
           summary=f"{dims_str(lw.shape(node.output[0], node))} float32 -> int8"
                   + (f", {layer.summary}" if layer.summary else ""), op="QuantizeLinear")


LOWERINGS = {"QuantizeLinear": lower_quantize, "DequantizeLinear": lower_dequantize}
