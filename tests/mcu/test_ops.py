"""Each claimed op vs onnxruntime on small random graphs (random shapes and attributes from a
seeded generator), all generated models compiled into one host shared library per module."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from .helpers import build_shared, generate_model, host_model, ort_run

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, F, s) for n, s in inputs],
                              [helper.make_tensor_value_info(n, F, None) for n in outputs],
                              [numpy_helper.from_array(np.asarray(v, dtype=np.float32)
                                                       if np.asarray(v).dtype.kind == "f" else np.asarray(v), k)
                               for k, v in inits])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _act(rng, nodes, out):
    """Optionally follow `out` with Relu or Clip (fused by the generator); returns the final name."""
    k = rng.integers(0, 3)
    if k == 0:
        return out, []
    if k == 1:
        nodes.append(helper.make_node("Relu", [out], [out + "_act"]))
        return out + "_act", []
    nodes.append(helper.make_node("Clip", [out, out + "_lo", out + "_hi"], [out + "_act"]))
    return out + "_act", [(out + "_lo", np.float32(-0.5)), (out + "_hi", np.float32(0.7))]


def conv_case(rng):
    spatial = int(rng.integers(1, 3))
    groups_kind = rng.integers(0, 3)
    cin = int(rng.integers(1, 5)) * (2 if groups_kind else 1)
    groups = 1 if groups_kind == 0 else (cin if groups_kind == 1 else 2)
    cout = groups * int(rng.integers(1, 4)) if groups > 1 else int(rng.integers(1, 10))
    k = [int(rng.integers(1, 4)) for _ in range(spatial)]
    size = [int(rng.integers(max(k) * 2, 12)) for _ in range(spatial)]
    attrs = {"strides": [int(rng.integers(1, 3)) for _ in range(spatial)],
             "dilations": [int(rng.integers(1, 3)) for _ in range(spatial)], "group": groups}
    pad_kind = rng.integers(0, 3)
    if pad_kind == 0:
        attrs["pads"] = [int(rng.integers(0, 3)) for _ in range(2 * spatial)]
    elif pad_kind == 1:
        attrs["auto_pad"] = ["SAME_UPPER", "SAME_LOWER", "VALID"][int(rng.integers(0, 3))]
        if attrs["auto_pad"] != "VALID":  # onnxruntime refuses dilations with SAME_*
            attrs["dilations"] = [1] * spatial
    n = int(rng.integers(1, 3))
    w = rng.standard_normal([cout, cin // groups] + k).astype(np.float32)
    inits = [("w", w)]
    ins = ["x", "w"]
    if rng.integers(0, 2):
        inits.append(("b", rng.standard_normal(cout).astype(np.float32)))
        ins.append("b")
    nodes = [helper.make_node("Conv", ins, ["c"], **attrs)]
    out, extra = _act(rng, nodes, "c")
    return _model(nodes, [("x", [n, cin] + size)], [out], inits + extra), {"x": [n, cin] + size}


def conv_bn_case(rng):
    cin, cout = int(rng.integers(1, 4)), int(rng.integers(2, 6))
    w = rng.standard_normal([cout, cin, 3, 3]).astype(np.float32)
    bn = [("s", rng.uniform(0.5, 1.5, cout)), ("bb", rng.standard_normal(cout)),
          ("m", rng.standard_normal(cout)), ("v", rng.uniform(0.5, 2, cout))]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["y"], epsilon=1e-3),
             helper.make_node("BatchNormalization", ["y", "s2", "bb", "m", "v"], ["z"])]
    bn2 = [("s2", rng.uniform(0.5, 1.5, cout))]
    return _model(nodes, [("x", [1, cin, 6, 6])], ["z"], [("w", w)] + bn + bn2), {"x": [1, cin, 6, 6]}


def conv_transpose_case(rng):
    spatial = int(rng.integers(1, 3))
    groups = int(rng.integers(1, 3))
    cin, cout = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    k = [int(rng.integers(1, 4)) for _ in range(spatial)]
    strides = [int(rng.integers(1, 3)) for _ in range(spatial)]
    attrs = {"strides": strides, "group": groups, "dilations": [int(rng.integers(1, 3)) for _ in range(spatial)]}
    if rng.integers(0, 2):
        attrs["pads"] = [int(rng.integers(0, 2)) for _ in range(2 * spatial)]
    if rng.integers(0, 2):
        attrs["output_padding"] = [int(rng.integers(0, s)) for s in strides]
    size = [int(rng.integers(2, 6)) for _ in range(spatial)]
    w = rng.standard_normal([cin, cout // groups] + k).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    nodes = [helper.make_node("ConvTranspose", ["x", "w", "b"], ["c"], **attrs)]
    out, extra = _act(rng, nodes, "c")
    return _model(nodes, [("x", [1, cin] + size)], [out], [("w", w), ("b", b)] + extra), {"x": [1, cin] + size}


def gemm_case(rng):
    m, k, n = (int(rng.integers(1, 12)) for _ in range(3))
    ta, tb = int(rng.integers(0, 2)), int(rng.integers(0, 2))
    a_shape = [k, m] if ta else [m, k]
    b_shape = [n, k] if tb else [k, n]
    c_shape = [[n], [1, n], [m, n], [m, 1], []][int(rng.integers(0, 5))]
    inits = [("c", rng.standard_normal(c_shape).astype(np.float32))]
    inputs = [("a", a_shape)]
    if rng.integers(0, 2):
        inits.append(("b", rng.standard_normal(b_shape).astype(np.float32)))
    else:
        inputs.append(("b", b_shape))
    nodes = [helper.make_node("Gemm", ["a", "b", "c"], ["g"], transA=ta, transB=tb,
                              alpha=float(rng.uniform(0.5, 2)), beta=float(rng.uniform(0.5, 2)))]
    out, extra = _act(rng, nodes, "g")
    return _model(nodes, inputs, [out], inits + extra), dict(inputs)


def matmul_case(rng):
    m, k, n = (int(rng.integers(1, 9)) for _ in range(3))
    kind = rng.integers(0, 4)
    if kind == 0:
        a, b = [m, k], [k, n]
    elif kind == 1:
        a, b = [2, 3, m, k], [3, k, n]
    elif kind == 2:
        a, b = [k], [2, k, n]
    else:
        a, b = [2, 1, m, k], [k]
    nodes = [helper.make_node("MatMul", ["a", "b"], ["p"])]
    inputs, inits = [("a", a)], []
    if rng.integers(0, 2):
        inits.append(("b", rng.standard_normal(b).astype(np.float32)))
    else:
        inputs.append(("b", b))
    out = "p"
    if len(b) > 1 and rng.integers(0, 2):  # bias Add fused into the MatMul
        inits.append(("bias", rng.standard_normal(n).astype(np.float32)))
        nodes.append(helper.make_node("Add", ["p", "bias"], ["pb"]))
        out = "pb"
    out, extra = _act(rng, nodes, out)
    return _model(nodes, inputs, [out], inits + extra), dict(inputs)


def _broadcast_pair(rng):
    rank = int(rng.integers(1, 6))
    out = [int(rng.integers(1, 5)) for _ in range(rank)]
    def view():
        r = int(rng.integers(0, rank + 1))
        shape = out[rank - r:]
        return [d if rng.integers(0, 3) else 1 for d in shape]
    a, b = view(), view()
    if rng.integers(0, 2):
        a = list(out)
    return a, b


def binary_case(rng, op):
    a, b = _broadcast_pair(rng)
    if op == "PRelu":  # the slope broadcasts to X (unidirectional)
        a = [max(x, y) for x, y in zip([1] * (len(b) - len(a)) + a, [1] * (len(a) - len(b)) + b)]
    inputs, inits = [("a", a)], []
    bval = rng.standard_normal(b).astype(np.float32)
    if op == "Div":
        bval = np.sign(bval) * (np.abs(bval) + 0.5)
    if rng.integers(0, 3) == 0:
        inits.append(("b", bval))
    else:
        inputs.append(("b", b))
    if op == "Pow":  # positive base: a Sigmoid in front
        nodes = [helper.make_node("Sigmoid", ["a"], ["as"]), helper.make_node(op, ["as", "b"], ["z"])]
    else:
        nodes = [helper.make_node(op, ["a", "b"], ["z"])]
    out, extra = _act(rng, nodes, "z") if op not in ("Pow", "PRelu") else ("z", [])
    feeds = {"a": a}
    if ("b", b) in inputs:
        feeds["b"] = b
    return _model(nodes, inputs, [out], inits + extra), feeds, ({"b": bval} if "b" in feeds else {})


def unary_case(rng, op):
    shape = [int(rng.integers(1, 5)) for _ in range(int(rng.integers(1, 5)))]
    attrs, inits, ins = {}, [], ["x"]
    if op == "LeakyRelu":
        attrs["alpha"] = float(rng.uniform(0.01, 0.5))
    if op == "HardSigmoid":
        attrs = {"alpha": float(rng.uniform(0.1, 0.5)), "beta": float(rng.uniform(0.2, 0.7))}
    if op == "Clip":
        inits = [("lo", np.float32(-0.3)), ("hi", np.float32(0.4))]
        ins = ["x", "lo", "hi"] if rng.integers(0, 2) else ["x", "", "hi"]
    if op in ("Elu", "Selu"):
        attrs = {"alpha": float(rng.uniform(0.5, 2.0))}
    if op == "Gelu":
        attrs = {"approximate": ["none", "tanh"][int(rng.integers(0, 2))]}
    # A preceding op keeps the activation from reading the graph input directly (in-place path);
    # Sigmoid keeps Log/Sqrt/Reciprocal inputs inside their domain.
    pre = "Sigmoid" if op in ("Log", "Sqrt", "Reciprocal") else "Mul"
    nodes = [helper.make_node(pre, ["x", "x2"] if pre == "Mul" else ["x"], ["xm"]),
             helper.make_node(op, ["xm"] + ins[1:], ["y"], **attrs)]
    return _model(nodes, [("x", shape)], ["y"], inits + [("x2", np.float32(3.0))], opset=20), {"x": shape}


def softmax_case(rng):
    shape = [int(rng.integers(1, 5)) for _ in range(int(rng.integers(1, 5)))]
    axis = int(rng.integers(-len(shape), len(shape)))
    opset = [11, 13][int(rng.integers(0, 2))]
    nodes = [helper.make_node("Softmax", ["x"], ["y"], axis=axis)]
    return _model(nodes, [("x", shape)], ["y"], opset=opset), {"x": shape}


def pool_case(rng, op):
    spatial = int(rng.integers(1, 3))
    k = [int(rng.integers(1, 4)) for _ in range(spatial)]
    size = [int(rng.integers(4, 10)) for _ in range(spatial)]
    attrs = {"kernel_shape": k, "strides": [int(rng.integers(1, 3)) for _ in range(spatial)],
             "ceil_mode": int(rng.integers(0, 2))}
    if rng.integers(0, 3):
        attrs["pads"] = [int(rng.integers(0, kk)) if kk > 1 else 0 for kk in k + k]
    elif rng.integers(0, 2):
        attrs["auto_pad"] = ["SAME_UPPER", "SAME_LOWER"][int(rng.integers(0, 2))]
        attrs.pop("ceil_mode")
        attrs["strides"] = [min(s, kk) for s, kk in zip(attrs["strides"], k)]  # ORT: no negative pads
    if op == "AveragePool":
        attrs["count_include_pad"] = int(rng.integers(0, 2))
    elif rng.integers(0, 2) and "auto_pad" not in attrs:
        attrs["dilations"] = [int(rng.integers(1, 3)) for _ in range(spatial)]
    if rng.integers(0, 4) == 0:  # one window over the whole plane: lowered to the global kernel
        attrs = {"kernel_shape": size}
    shape = [int(rng.integers(1, 3)), int(rng.integers(1, 4))] + size
    return _model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", shape)], ["y"]), {"x": shape}


def global_pool_case(rng, op):
    shape = [int(rng.integers(1, 3)), int(rng.integers(1, 5))] + [int(rng.integers(1, 6)) for _ in range(2)]
    return _model([helper.make_node(op, ["x"], ["y"])], [("x", shape)], ["y"]), {"x": shape}


def batchnorm_case(rng):
    shape = [int(rng.integers(1, 3)), int(rng.integers(1, 5))] + [int(rng.integers(1, 5)) for _ in range(int(rng.integers(0, 3)))]
    c = shape[1]
    inits = [("s", rng.uniform(0.5, 1.5, c)), ("b", rng.standard_normal(c)), ("m", rng.standard_normal(c)),
             ("v", rng.uniform(0.5, 2, c))]
    nodes = [helper.make_node("Sigmoid", ["x"], ["xs"]),
             helper.make_node("BatchNormalization", ["xs", "s", "b", "m", "v"], ["y"])]
    return _model(nodes, [("x", shape)], ["y"], inits), {"x": shape}


def views_case(rng):
    shape = [2, 3, 4]
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Unsqueeze", ["r", "ax"], ["u"]),
             helper.make_node("Flatten", ["u"], ["f"], axis=2),
             helper.make_node("Reshape", ["f", "shape"], ["rs"]),
             helper.make_node("Squeeze", ["rs", "ax0"], ["sq"]),
             helper.make_node("Identity", ["sq"], ["id"]),
             helper.make_node("Sigmoid", ["id"], ["y"])]
    inits = [("ax", np.array([1], dtype=np.int64)), ("shape", np.array([1, 4, 6], dtype=np.int64)),
             ("ax0", np.array([0], dtype=np.int64))]
    return _model(nodes, [("x", shape)], ["y", "r"], inits), {"x": shape}


def transpose_case(rng):
    rank = int(rng.integers(1, 6))
    shape = [int(rng.integers(1, 5)) for _ in range(rank)]
    perm = [int(p) for p in rng.permutation(rank)]
    nodes = [helper.make_node("Transpose", ["x"], ["y"], perm=perm)]
    return _model(nodes, [("x", shape)], ["y"]), {"x": shape}


def concat_case(rng):
    rank = int(rng.integers(1, 5))
    base = [int(rng.integers(1, 4)) for _ in range(rank)]
    axis = int(rng.integers(-rank, rank))
    count = int(rng.integers(2, 5))
    inputs = []
    for i in range(count):
        s = list(base)
        s[axis] = int(rng.integers(1, 4))
        inputs.append((f"x{i}", s))
    nodes = [helper.make_node("Concat", [n for n, _ in inputs], ["y"], axis=axis)]
    return _model(nodes, inputs, ["y"]), dict(inputs)


def slice_case(rng):
    rank = int(rng.integers(1, 5))
    shape = [int(rng.integers(2, 7)) for _ in range(rank)]
    axes = sorted(set(int(a) for a in rng.integers(0, rank, int(rng.integers(1, rank + 1)))))
    starts, ends, steps = [], [], []
    for a in axes:
        step = int(rng.choice([1, 2, -1, -2]))
        if step > 0:
            s = int(rng.integers(-shape[a], shape[a] - 1))
            e = int(rng.choice([shape[a], 2**62, int(rng.integers(s % shape[a] + 1, shape[a] + 1))]))
        else:
            s = int(rng.choice([-1, shape[a] - 1, 2**62]))
            e = int(rng.choice([-(2**62), 0, -shape[a] - 1]))
        starts.append(s), ends.append(e), steps.append(step)
    inits = [(n, np.array(v, dtype=np.int64)) for n, v in
             (("st", starts), ("en", ends), ("ax", [a - rank if rng.integers(0, 2) else a for a in axes]), ("sp", steps))]
    nodes = [helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])]
    return _model(nodes, [("x", shape)], ["y"], inits), {"x": shape}


def pad_case(rng):
    rank = int(rng.integers(1, 5))
    shape = [int(rng.integers(2, 5)) for _ in range(rank)]
    mode = ["constant", "reflect", "edge", "wrap"][int(rng.integers(0, 4))]
    hi = 2 if mode != "constant" else 3
    lo = -1 if mode == "constant" else 0  # negative pads crop
    pads = [int(rng.integers(lo, hi)) for _ in range(2 * rank)]
    inits = [("p", np.array(pads, dtype=np.int64)), ("v", np.array(1.5, dtype=np.float32))]
    nodes = [helper.make_node("Pad", ["x", "p", "v"] if mode == "constant" else ["x", "p"], ["y"], mode=mode)]
    return _model(nodes, [("x", shape)], ["y"], inits, opset=19), {"x": shape}


def reduce_case(rng, op):
    rank = int(rng.integers(1, 6))
    shape = [int(rng.integers(1, 5)) for _ in range(rank)]
    axes = sorted(set(int(a) for a in rng.integers(-rank, rank, int(rng.integers(1, rank + 1)))))
    nodes = [helper.make_node(op, ["x", "axes"], ["y"], keepdims=int(rng.integers(0, 2)))]
    return _model(nodes, [("x", shape)], ["y"], [("axes", np.array(axes, np.int64))], opset=18), {"x": shape}


def split_gather_case(rng):
    rank = int(rng.integers(1, 4))
    shape = [int(rng.integers(2, 6)) for _ in range(rank)]
    axis = int(rng.integers(0, rank))
    cut = int(rng.integers(1, shape[axis]))
    g_axis = int(rng.integers(0, rank))
    kind = int(rng.integers(0, 3))  # arbitrary indices, a progression, a scalar
    if kind == 0:
        idx = rng.integers(-shape[g_axis], shape[g_axis], int(rng.integers(1, 5)))
    elif kind == 1:
        idx = np.arange(shape[g_axis])[::-1]
    else:
        idx = np.array(int(rng.integers(0, shape[g_axis])))
    nodes = [helper.make_node("Split", ["x", "split"], ["s0", "s1"], axis=axis),
             helper.make_node("Gather", ["x", "idx"], ["g"], axis=g_axis),
             helper.make_node("LogSoftmax", ["s1"], ["ls"], axis=-1)]
    inits = [("split", np.array([cut, shape[axis] - cut], np.int64)), ("idx", idx.astype(np.int64))]
    return _model(nodes, [("x", shape)], ["s0", "g", "ls"], inits, opset=18), {"x": shape}


def expand_dropout_case(rng):
    shape = [int(rng.integers(1, 4)) for _ in range(int(rng.integers(1, 4)))]
    target = [int(rng.integers(1, 3))] + [d if d != 1 else int(rng.integers(1, 4)) for d in shape]
    nodes = [helper.make_node("Dropout", ["x"], ["d"]),
             helper.make_node("Expand", ["d", "shape"], ["y"])]
    return _model(nodes, [("x", shape)], ["y"], [("shape", np.array(target, np.int64))]), {"x": shape}


CASES = []
for op, fn, count in [("Conv", conv_case, 16), ("Conv+BatchNorm", conv_bn_case, 3),
                      ("ConvTranspose", conv_transpose_case, 10), ("Gemm", gemm_case, 10),
                      ("MatMul", matmul_case, 10), ("Softmax", softmax_case, 6),
                      ("BatchNormalization", batchnorm_case, 4), ("views", views_case, 1),
                      ("Transpose", transpose_case, 6), ("Concat", concat_case, 6),
                      ("Slice", slice_case, 8), ("Pad", pad_case, 12),
                      ("Expand+Dropout", expand_dropout_case, 4),
                      ("Split+Gather+LogSoftmax", split_gather_case, 8)]:
    CASES += [(op, i, fn) for i in range(count)]
for op in ("Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "PRelu"):
    CASES += [(op, i, lambda rng, op=op: binary_case(rng, op)[:2]) for i in range(6)]
for op in ("Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Exp", "Log",
           "Sqrt", "Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Elu", "Selu", "Softplus", "Softsign",
           "Erf", "Gelu"):
    CASES += [(op, i, lambda rng, op=op: unary_case(rng, op)) for i in range(2)]
for op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"):
    CASES += [(op, i, lambda rng, op=op: reduce_case(rng, op)) for i in range(4)]
for op in ("MaxPool", "AveragePool"):
    CASES += [(op, i, lambda rng, op=op: pool_case(rng, op)) for i in range(10)]
for op in ("GlobalAveragePool", "GlobalMaxPool"):
    CASES += [(op, 0, lambda rng, op=op: global_pool_case(rng, op))]

def rnn_case(rng, op):
    seq, batch, inp, hidden = (int(rng.integers(1, 5)) for _ in range(4))
    direction = ["forward", "reverse", "bidirectional"][int(rng.integers(0, 3))]
    dirs = 2 if direction == "bidirectional" else 1
    gates = 4 if op == "LSTM" else 3
    inits = [("W", rng.standard_normal((dirs, gates * hidden, inp)) * 0.5),
             ("R", rng.standard_normal((dirs, gates * hidden, hidden)) * 0.5),
             ("B", rng.standard_normal((dirs, 2 * gates * hidden)) * 0.5)]
    ins = ["x", "W", "R", "B", "", "h0"]
    layout = int(rng.integers(0, 2))
    inputs = [("x", [batch, seq, inp] if layout else [seq, batch, inp]),
              ("h0", [batch, dirs, hidden] if layout else [dirs, batch, hidden])]
    attrs = {"hidden_size": hidden, "direction": direction, "layout": layout}
    if rng.integers(0, 2) and not layout:  # the onnx reference (used for layout 1) ignores clip
        attrs["clip"] = float(rng.uniform(0.5, 2.0))
    if op == "LSTM":
        inits.append(("c0", rng.standard_normal((batch, dirs, hidden) if layout else (dirs, batch, hidden))))
        ins.append("c0")
        if rng.integers(0, 2):
            inits.append(("P", rng.standard_normal((dirs, 3 * hidden)) * 0.5))
            ins.append("P")
        outs = ["y", "y_h", "y_c"]
    else:
        attrs["linear_before_reset"] = int(rng.integers(0, 2))
        outs = ["y", "y_h"]
    nodes = [helper.make_node(op, ins, outs, **attrs)]
    return _model(nodes, inputs, outs, inits, opset=14), dict(inputs)


CASES += [(op, i, lambda rng, op=op: rnn_case(rng, op)) for op in ("LSTM", "GRU") for i in range(10)]


def layernorm_case(rng):
    """LayerNormalization: random rank/axis (negative too), epsilon, scale as a whole normalized
    block, a trailing block, a constant broadcast over the last dim or a runtime input;
    bias optional; Mean/InvStdDev outputs requested at random."""
    shape = [int(rng.integers(1, 5)) for _ in range(int(rng.integers(1, 5)))]
    rank = len(shape)
    axis = int(rng.integers(-rank, rank))
    norm = shape[axis:]
    kind = int(rng.integers(0, 4))
    if kind == 0:
        scale_shape = norm
    elif kind == 1:
        scale_shape = norm[int(rng.integers(0, len(norm))):]
    elif kind == 2:  # broadcast over the last dim: not a trailing block, expanded at build time
        scale_shape = norm[:-1] + [1]
    else:  # a runtime input
        scale_shape = norm
    inputs = [("x", shape)] + ([("scale", scale_shape)] if kind == 3 else [])
    inits = [] if kind == 3 else [("scale", rng.uniform(0.5, 1.5, scale_shape))]
    ins = ["x", "scale"]
    if rng.integers(0, 3):
        inits.append(("bias", rng.standard_normal(norm[int(rng.integers(0, len(norm))):])))
        ins.append("bias")
    outs = ["y", "mean", "inv_std"] if rng.integers(0, 2) else ["y"]
    attrs = {"axis": axis} if rng.integers(0, 4) else {}
    if "axis" not in attrs:
        norm = shape[-1:]
        if kind == 3:
            inputs[1] = ("scale", norm)
        else:
            inits[0] = ("scale", rng.uniform(0.5, 1.5, norm))
        if len(ins) == 3:
            inits[-1] = ("bias", rng.standard_normal(norm))
    if rng.integers(0, 2):
        attrs["epsilon"] = float(rng.choice([1e-3, 0.1]))
    nodes = [helper.make_node("Add", ["x", "offset"], ["xo"]),  # a non-zero mean per row
             helper.make_node("LayerNormalization", ["xo"] + ins[1:], outs, **attrs)]
    inits.append(("offset", np.float32(rng.uniform(-3, 3))))
    return _model(nodes, inputs, outs, inits), dict(inputs)


CASES += [("LayerNormalization", i, layernorm_case) for i in range(16)]


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    work = tmp_path_factory.mktemp("ops")
    built = {}
    gens = []
    for idx, (op, i, fn) in enumerate(CASES):
        rng = np.random.default_rng(1000 * idx + i)
        model, shapes = fn(rng)
        feeds = {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}
        gen = generate_model(model, work / f"m{idx}", f"m{idx}", with_kernels=False, with_integration=False)
        gens.append((work / f"m{idx}", gen))
        built[idx] = (model, feeds, gen)
    lib = build_shared(gens, work)
    return lib, built


@pytest.mark.parametrize("idx", range(len(CASES)), ids=[f"{op}-{i}" for op, i, _ in CASES])
def test_op_matches_onnxruntime(batch, idx):
    lib, built = batch
    model, feeds, gen = built[idx]
    batch_major = any(a.name == "layout" and a.i == 1 for n in model.graph.node for a in n.attribute)
    if batch_major:  # onnxruntime has no layout=1 RNNs: the onnx reference implementation checks them
        from onnx.reference import ReferenceEvaluator
        ref = ReferenceEvaluator(model).run(None, feeds)
    else:
        ref = ort_run(model, feeds)
    got = host_model(lib, gen).run([feeds[n] for n in gen.schedule.inputs])
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r.reshape(g.shape), rtol=1e-5, atol=1e-5)

