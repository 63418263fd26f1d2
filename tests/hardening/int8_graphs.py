"""A hypothesis generator of random valid float ONNX graphs for the int8 path: `--quantize int8`
(onnxruntime's static QDQ quantization, calibrated) and then mcu-c, whose int8 kernels take the
``DQ -> op -> [Relu|Clip] -> Q`` groups (plugins/mcu/ops_quant.py: Conv incl. depthwise, Gemm and
MatMul, Add and Mul, Max/Average/GlobalAverage pools, Softmax, lookup-table activations, views).
The op mix leans on those ops, so most layers of a graph run as int8 kernels; a few float-only
ops (Sub, Neg, LogSoftmax, GlobalMaxPool, reductions) stay in unless asked not to, since a partly
quantized graph must still build and agree: they run in float between a DequantizeLinear and a
QuantizeLinear.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from tests.hardening import graphs as fg
from tests.hardening.graphs import GraphBuilder, build_random


def _activation(draw, b: GraphBuilder, src: str) -> str:
    """Relu or a constant Clip: after a Conv/Gemm/Add the quantizer folds it into the output range
    and mcu-c fuses it as the kernel's int8 clamp; elsewhere it is a lookup table."""
    if draw(st.booleans()):
        return b.add("Relu", [src])
    lo, hi = draw(st.sampled_from([(0.0, 6.0), (0.0, 1.0), (-1.0, 1.0), (-0.5, 0.25)]))
    return b.add("Clip", [src, b.const(np.float32(lo)), b.const(np.float32(hi))])


def _then_maybe_activation(maker):
    """``maker``, followed half the time by :func:`_activation` (the fused-clamp forms)."""
    def make(draw, b: GraphBuilder, src: str) -> str:
        out = maker(draw, b, src)
        return _activation(draw, b, out) if draw(st.booleans()) else out
    return make


def _dense(draw, b: GraphBuilder, src: str) -> str:
    """Gemm in the int8 kernel's form (alpha = beta = 1, transA 0; bias optional) or MatMul."""
    shape = b.shapes[src]
    n = draw(st.integers(1, 16))
    if len(shape) == 2 and draw(st.booleans()):
        trans_b = int(draw(st.booleans()))
        w = fg._floats(draw, (n, shape[1]) if trans_b else (shape[1], n))
        bias = [b.const(fg._floats(draw, (n,)))] if draw(st.booleans()) else []
        return b.add("Gemm", [src, b.const(w), *bias], transB=trans_b)
    return b.add("MatMul", [src, b.const(fg._floats(draw, (shape[-1], n)))])


def _add_mul(draw, b: GraphBuilder, src: str) -> str:
    """Add or Mul of two activations of the same shape, or of an activation and a (broadcast)
    constant: the int8 binary kernel's two forms."""
    op = draw(st.sampled_from(["Add", "Add", "Mul"]))
    shape = b.shapes[src]
    same = [t for t in b.order if b.shapes[t] == shape]
    other = draw(st.sampled_from(same)) if draw(st.booleans()) else \
        b.const(fg._floats(draw, fg._broadcast_shape(draw, shape)))
    return b.add(op, [src, other] if draw(st.booleans()) else [other, src])


def _flatten(draw, b: GraphBuilder, src: str) -> str:
    return b.add("Flatten", [src], axis=draw(st.integers(0, len(b.shapes[src]))))


def _int8_pool(draw, b: GraphBuilder, src: str) -> str:
    """The three pools with int8 kernels (not GlobalMaxPool), GlobalAveragePool more often."""
    if draw(st.integers(0, 3)) == 0:
        return b.add("GlobalAveragePool", [src])
    return fg._pool(draw, b, src, ops=["MaxPool", "AveragePool", "GlobalAveragePool"])


def _softmax(draw, b: GraphBuilder, src: str) -> str:
    """Softmax alone (fg._softmax also draws LogSoftmax, which the quantizer leaves in float)."""
    return b.add("Softmax", [src], axis=draw(st.integers(-len(b.shapes[src]), len(b.shapes[src]) - 1)))


#: Makers of ops onnxruntime's quantizer puts between Q/DQ pairs; repeats weight the draw
#: towards the int8 kernels.
QUANTIZED = [_then_maybe_activation(_dense), _then_maybe_activation(_dense),
             _then_maybe_activation(_add_mul), _add_mul, _activation, _softmax,
             fg._transpose, fg._reshape, _flatten, fg._concat]
QUANTIZED_RANK4 = [_then_maybe_activation(fg._conv), _int8_pool, fg._conv, _int8_pool]
#: ...and ops it leaves in float (Neg, Sub, LogSoftmax, GlobalMaxPool, reductions...), which then
#: run in float between a DequantizeLinear and a QuantizeLinear
FLOAT = [fg._unary, fg._softmax, fg._binary, fg._reduce]
FLOAT_RANK4 = [fg._pool]


@st.composite
def int8_graphs(draw, max_ops: int = 6, quantized_only: bool = False):
    """Mostly 4-D (NCHW, where the conv and pool kernels apply), else 2-D or 3-D inputs.
    ``quantized_only``: no float-only ops, so that every output is dequantized from int8 and
    judged in quantization steps (what a build in TFLite's rounding can be held to: its float
    outputs would carry one step of rounding difference from the QDQ model at float tolerance)."""
    kind = draw(st.sampled_from(["image", "image", "image", "rows", "sequence"]))
    if kind == "image":
        shape = [1, draw(st.integers(1, 4)), draw(st.integers(1, 8)), draw(st.integers(1, 8))]
    elif kind == "rows":
        shape = [draw(st.integers(1, 3)), draw(st.integers(1, 16))]
    else:
        shape = [1, draw(st.integers(1, 6)), draw(st.integers(1, 8))]
    any_rank, rank4 = (QUANTIZED, QUANTIZED_RANK4) if quantized_only else \
        (QUANTIZED + FLOAT, QUANTIZED_RANK4 + FLOAT_RANK4)
    return build_random(draw, GraphBuilder(shape), any_rank, rank4, draw(st.integers(1, max_ops)),
                        rank4_first=True)
