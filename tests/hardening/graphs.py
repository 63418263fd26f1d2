"""A hypothesis generator of random valid ONNX graphs over the float ops the mcu-c back end claims:
random shapes (rank 2 to 4), attributes, broadcasting constants, chains and branches (an op may read
any earlier tensor), one or two graph outputs. Used by the differential fuzz tests and
benchmarks/fuzz.py: every graph is built with `edgekit build` and its run compared with onnxruntime.
"""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
UNARY = ["Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Softsign", "Elu", "LeakyRelu", "HardSigmoid",
         "HardSwish", "Erf", "Exp", "Softplus", "Selu"]
BINARY = ["Add", "Sub", "Mul", "Max", "Min"]


class GraphBuilder:
    """Nodes, constants and the static shape of every tensor added so far."""

    def __init__(self, shape: list[int]):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.shapes: dict[str, list[int]] = {"x": list(shape)}
        self.order = ["x"]
        self.n = 0

    def const(self, array: np.ndarray) -> str:
        name = f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def add(self, op: str, inputs: list[str], **attrs) -> str:
        out = f"t{self.n}"
        self.n += 1
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"n{self.n}_{op}", **attrs))
        shape = self._infer(out)
        self.shapes[out] = shape
        self.order.append(out)
        return out

    def model(self, outputs: list[str]) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, "fuzz", [helper.make_tensor_value_info("x", TensorProto.FLOAT, self.shapes["x"])],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, self.shapes[o]) for o in outputs], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        return model

    def _infer(self, out: str) -> list[int]:
        model = onnx.shape_inference.infer_shapes(self._with_output(out), strict_mode=True)
        (value,) = [v for v in model.graph.output if v.name == out]
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        if not dims or any(d <= 0 for d in dims):
            raise ValueError(f"{out}: no static shape ({dims})")
        return dims

    def _with_output(self, out: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "fuzz",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, self.shapes["x"])],
                                  [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        return model


def _floats(draw, shape, low=-1.0, high=1.0) -> np.ndarray:
    seed = draw(st.integers(0, 2**31 - 1))
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def _broadcast_shape(draw, shape: list[int]) -> list[int]:
    """A shape that broadcasts to ``shape``: some dimensions 1, maybe fewer leading ones."""
    keep = draw(st.integers(1, len(shape)))
    tail = shape[len(shape) - keep:]
    return [d if draw(st.booleans()) else 1 for d in tail]


def _unary(draw, b: GraphBuilder, src: str) -> str:
    op = draw(st.sampled_from(UNARY + ["Sqrt", "Log", "Clip"]))
    if op == "Sqrt":
        return b.add("Sqrt", [b.add("Abs", [src])])
    if op == "Log":
        return b.add("Log", [b.add("Add", [b.add("Abs", [src]), b.const(np.float32(1.0))])])
    if op == "Clip":
        lo = draw(st.sampled_from([-1.0, -0.5, -0.25, 0.0]))
        hi = lo + draw(st.sampled_from([0.25, 0.5, 1.0, 2.0]))
        return b.add("Clip", [src, b.const(np.float32(lo)), b.const(np.float32(hi))])
    attrs = {}
    if op in ("Elu", "LeakyRelu"):
        attrs["alpha"] = draw(st.sampled_from([0.01, 0.1, 0.3, 1.0]))
    return b.add(op, [src], **attrs)


def _binary(draw, b: GraphBuilder, src: str) -> str:
    shape = b.shapes[src]
    op = draw(st.sampled_from(BINARY + ["Div"]))
    same = [t for t in b.order if b.shapes[t] == shape]
    if op != "Div" and draw(st.booleans()):
        other = draw(st.sampled_from(same))
    else:
        values = _floats(draw, _broadcast_shape(draw, shape), 0.5, 1.5) if op == "Div" else \
            _floats(draw, _broadcast_shape(draw, shape))
        other = b.const(values)
    operands = [src, other] if op == "Div" or draw(st.booleans()) else [other, src]
    return b.add(op, operands)


def _softmax(draw, b: GraphBuilder, src: str) -> str:
    axis = draw(st.integers(-len(b.shapes[src]), len(b.shapes[src]) - 1))
    return b.add(draw(st.sampled_from(["Softmax", "LogSoftmax"])), [src], axis=axis)


def _transpose(draw, b: GraphBuilder, src: str) -> str:
    return b.add("Transpose", [src], perm=draw(st.permutations(range(len(b.shapes[src])))))


def _reshape(draw, b: GraphBuilder, src: str) -> str:
    shape = b.shapes[src]
    total = int(np.prod(shape))
    choice = draw(st.sampled_from(["flat", "reverse", "split"]))
    if choice == "flat":
        new = [1, total]
    elif choice == "reverse":
        new = list(reversed(shape))
    else:
        divisors = [d for d in range(1, total + 1) if total % d == 0]
        d = draw(st.sampled_from(divisors))
        new = [1, d, total // d]
    return b.add("Reshape", [src, b.const(np.array(new, np.int64))])


def _concat(draw, b: GraphBuilder, src: str) -> str:
    shape = b.shapes[src]
    axis = draw(st.integers(0, len(shape) - 1))
    partners = [t for t in b.order if len(b.shapes[t]) == len(shape)
                and all(a == c for i, (a, c) in enumerate(zip(b.shapes[t], shape)) if i != axis)]
    return b.add("Concat", [src, draw(st.sampled_from(partners))], axis=axis)


def _reduce(draw, b: GraphBuilder, src: str) -> str:
    rank = len(b.shapes[src])
    axes = sorted(draw(st.sets(st.integers(0, rank - 1), min_size=1, max_size=rank)))
    keep = int(draw(st.booleans())) if len(axes) < rank else 1
    op = draw(st.sampled_from(["ReduceMean", "ReduceSum", "ReduceMax"]))
    if op == "ReduceSum":
        return b.add(op, [src, b.const(np.array(axes, np.int64))], keepdims=keep)
    return b.add(op, [src], axes=axes, keepdims=keep)


def _matmul(draw, b: GraphBuilder, src: str) -> str:
    shape = b.shapes[src]
    k = draw(st.integers(1, 8))
    if len(shape) == 2 and draw(st.booleans()):
        trans_b = int(draw(st.booleans()))
        w = _floats(draw, (k, shape[1]) if trans_b else (shape[1], k))
        return b.add("Gemm", [src, b.const(w), b.const(_floats(draw, (k,)))], transB=trans_b,
                     alpha=draw(st.sampled_from([1.0, 0.5])))
    return b.add("MatMul", [src, b.const(_floats(draw, (shape[-1], k)))])


def _conv(draw, b: GraphBuilder, src: str) -> str:
    _, c, h, w = b.shapes[src]
    kh, kw = draw(st.integers(1, min(3, h + 2))), draw(st.integers(1, min(3, w + 2)))
    pads = [draw(st.integers(0, min(1, kh - 1))), draw(st.integers(0, min(1, kw - 1)))]
    pads = pads + pads
    if kh > h + pads[0] + pads[2] or kw > w + pads[1] + pads[3]:
        kh, kw = 1, 1
    stride = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    depthwise = c > 1 and draw(st.booleans())
    out_c = c * draw(st.integers(1, 2)) if depthwise else draw(st.integers(1, 6))
    group = c if depthwise else 1
    weights = _floats(draw, (out_c, c // group, kh, kw))
    inputs = [src, b.const(weights)] + ([b.const(_floats(draw, (out_c,)))] if draw(st.booleans()) else [])
    return b.add("Conv", inputs, kernel_shape=[kh, kw], pads=pads, strides=stride, group=group)


POOLS = ["MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"]


def _pool(draw, b: GraphBuilder, src: str, ops: list[str] = POOLS) -> str:
    _, _, h, w = b.shapes[src]
    op = draw(st.sampled_from(ops))
    if op.startswith("Global"):
        return b.add(op, [src])
    kh, kw = draw(st.integers(1, min(3, h))), draw(st.integers(1, min(3, w)))
    pads = [draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))] if draw(st.booleans()) else [0, 0]
    attrs = {"kernel_shape": [kh, kw], "strides": [draw(st.integers(1, 2)), draw(st.integers(1, 2))],
             "pads": pads + pads}
    if op == "AveragePool":
        attrs["count_include_pad"] = int(draw(st.booleans()))
    return b.add(op, [src], **attrs)


def _slice(draw, b: GraphBuilder, src: str) -> str:
    shape = b.shapes[src]
    axis = draw(st.integers(0, len(shape) - 1))
    start = draw(st.integers(0, shape[axis] - 1))
    end = draw(st.integers(start + 1, shape[axis]))
    return b.add("Slice", [src, b.const(np.array([start], np.int64)), b.const(np.array([end], np.int64)),
                           b.const(np.array([axis], np.int64))])


ANY_RANK = [_unary, _binary, _softmax, _transpose, _reshape, _concat, _reduce, _matmul, _slice]
RANK4 = [_conv, _pool]


def build_random(draw, b: GraphBuilder, any_rank: list, rank4: list, ops: int,
                 rank4_first: bool = False) -> onnx.ModelProto:
    """``ops`` nodes, each made by a maker drawn for a source drawn from every tensor so far (makers
    in ``rank4`` only for 4-D sources), then one or two of the tensors as graph outputs. Shared by
    every generator here: they differ only in their op makers. Hypothesis draws the first entries
    of a list most often: ``rank4_first`` puts the 4-D makers (conv, pools) there."""
    for _ in range(ops):
        src = draw(st.sampled_from(b.order))
        extra = rank4 if len(b.shapes[src]) == 4 else []
        makers = extra + any_rank if rank4_first else any_rank + extra
        draw(st.sampled_from(makers))(draw, b, src)
    produced = [t for t in b.order if t != "x"]
    outputs = [produced[-1]]
    if len(produced) > 1 and draw(st.booleans()):
        outputs.append(draw(st.sampled_from(produced[:-1])))
    return b.model(outputs)


@st.composite
def graphs(draw, max_ops: int = 6, any_rank: list | None = None, rank4: list | None = None) -> onnx.ModelProto:
    """Float graphs over ``any_rank``/``rank4`` makers (default: every float op mcu-c claims)."""
    rank = draw(st.integers(2, 4))
    shape = [1] + [draw(st.integers(1, 6)) for _ in range(rank - 1)]
    return build_random(draw, GraphBuilder(shape), ANY_RANK if any_rank is None else any_rank,
                        RANK4 if rank4 is None else rank4, draw(st.integers(1, max_ops)))
