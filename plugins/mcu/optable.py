"""The table of ONNX ops the mcu-c back end claims, and the limits of each claim.

``LOWERINGS`` maps an ONNX op type (default domain) to its lowering function; ``supported_ops``
is derived from it, so what ``edgekit inspect`` reports is exactly what ``lower`` accepts.
``LIMITS`` documents, per op, which attributes/forms are refused with a BuildError naming the node.
"""

from __future__ import annotations

from edgekit.plugins.mcu import (ops_elementwise, ops_nn, ops_norm, ops_pool, ops_quant, ops_reduce,
                                 ops_resize, ops_shape)

LOWERINGS: dict = {}
for _module in (ops_nn, ops_elementwise, ops_norm, ops_pool, ops_quant, ops_reduce, ops_resize, ops_shape):
    LOWERINGS.update(_module.LOWERINGS)

try:  # recurrent ops live in their own module (larger kernels)
    from edgekit.plugins.mcu import ops_rnn
    LOWERINGS.update(ops_rnn.LOWERINGS)
except ImportError:  # pragma: no cover - only while ops_rnn is being written
    pass

# All tensors are float32 (int64 shape/axes/pads inputs must be constants) and of static shape.
LIMITS = {
    "Conv": "1-D and 2-D; constant weights/bias; groups, strides, pads, auto_pad, dilations",
    "ConvTranspose": "1-D and 2-D; constant weights/bias; output_padding/output_shape/auto_pad",
    "Gemm": "any alpha/beta/transA/transB; C broadcast as scalar/[N]/[1,N]/[M,1]/[M,N]",
    "MatMul": "batched with broadcasting, at most 4 batch dims after collapsing",
    "Add": "numpy broadcasting, at most 6 dims after collapsing", "Sub": "as Add", "Mul": "as Add",
    "Div": "as Add",
    "MaxPool": "1-D and 2-D; no Indices output; storage_order 0",
    "AveragePool": "1-D and 2-D; count_include_pad, ceil_mode, pads, dilations",
    "Clip": "min/max constant", "BatchNormalization": "inference mode only",
    "Slice": "starts/ends/axes/steps constant", "Pad": "pads/value constant; constant/reflect/edge/wrap",
    "ReduceMean": "axes constant; rank <= 6", "Softmax": "any axis, opset < 13 semantics too",
    "Concat": "non-constant inputs", "LSTM": "see ops_rnn", "GRU": "see ops_rnn",
    "Max": "2 inputs (1: identity), broadcasting", "Min": "as Max", "Pow": "broadcasting",
    "PRelu": "slope broadcast to X (per-channel for opset < 7)",
    "ReduceSum": "as ReduceMean", "ReduceMax": "as ReduceMean", "ReduceMin": "as ReduceMean",
    "Dropout": "inference: identity; no mask output", "Expand": "constant shape",
    "Gelu": "approximate none/tanh", "LogSoftmax": "as Softmax",
    "Resize": "opset 11+, rank-4 NCHW, H and W only; constant scales or sizes; nearest (any "
              "nearest_mode) or linear; half_pixel, pytorch_half_pixel, align_corners, asymmetric; "
              "no antialias",
    "Split": "output sizes from shape inference", "Gather": "constant indices",
    "QuantizeLinear": "per-tensor, float32 -> int8",
    "DequantizeLinear": "int8 activations per tensor; int8/int32/int4 constants per tensor, per axis "
                        "or blocked (weights)",
    "LayerNormalization": "any axis, epsilon; stash_type 1; scale/bias broadcast (runtime ones as a "
                          "trailing block); optional Mean/InvStdDev outputs",
}


_UNARY_LIMIT = "any shape; runs in place when its input dies there"
for _op in ("Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Exp", "Log", "Sqrt",
            "Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Elu", "Selu", "Softplus", "Softsign", "Erf"):
    LIMITS.setdefault(_op, _UNARY_LIMIT)
for _op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"):
    LIMITS.setdefault(_op, "a view: no kernel, no copy (a copy when the result is a graph output)")
LIMITS.setdefault("Transpose", "any permutation, rank <= 6 after collapsing; identity layouts are views")
LIMITS.setdefault("GlobalAveragePool", "rank >= 2")
LIMITS.setdefault("GlobalMaxPool", "rank >= 2")


def supported_ops_list() -> list[str]:
    return sorted(LOWERINGS)
