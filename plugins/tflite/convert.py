"""TFLite subgraph -> ONNX: float models to plain ONNX, int8 models to QDQ ONNX.

Technique: op-by-op translation in the style of tflite2onnx (Wang Zhenhua), with the layout change
done once. TFLite tensors are NHWC, ONNX's spatial ops NCHW: every rank-4 activation is kept NCHW
inside the ONNX graph, 4-D weights are transposed at import time (CONV_2D [O,H,W,I] -> [O,I,H,W],
DEPTHWISE_CONV_2D [1,H,W,C·M] -> [C·M,1,H,W]), and axis-sensitive ops are rewritten for the NCHW
tensors: CONCATENATION's axis, MEAN's axes, PAD's paddings, SOFTMAX's axis, broadcast constants of
ADD/MUL. Ops that depend on the flatten order (RESHAPE, FULLY_CONNECTED of a rank-4 input) first go
back to NHWC order; a Transpose that only moves size-1 dimensions is emitted as a Reshape (a view).
So a graph has a Transpose at most where a 4-D tensor enters or leaves (graph input/output) or is
flattened with C and H·W both > 1.

int8 (the TFLite int8 quantization spec): each int8 activation tensor is an int8 ONNX tensor,
read through DequantizeLinear and written through QuantizeLinear with the file's exact scale and zero
point; weights are int8 initializers behind DequantizeLinear with the file's per-channel (or
per-tensor) scales (axis moved with the weight transposition); biases stay int32 with their scales.
A fused activation is a Relu / Clip between the op and its QuantizeLinear, which edgekit's int8
lowering turns into the integer clamp [act_min, act_max] TFLite Micro computes from the output
quantization. Each compute op therefore forms one ``DQ -> op -> [act] -> Q`` group for the mcu-c
back end's integer kernels.

Anything else raises :class:`edgekit.UsageError` naming the op and its operator index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekit.errors import UsageError
from edgekit.plugins.tflite.reader import Operator, Quant, Subgraph, Tensor

OPSET = 13
IR_VERSION = 8
#: NHWC -> NCHW and back.
TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)
#: NHWC axis -> NCHW axis.
AXIS_NCHW = {0: 0, 1: 2, 2: 3, 3: 1}
SUPPORTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "ADD", "MUL",
             "RESHAPE", "SOFTMAX", "QUANTIZE", "DEQUANTIZE", "CONCATENATION", "PAD", "MEAN", "LOGISTIC", "TANH",
             "RELU", "RELU6", "RELU_N1_TO_1")
#: Operator -> (fewest, most) inputs (most None: any number).
ARITY = {"CONV_2D": (2, 3), "DEPTHWISE_CONV_2D": (2, 3), "FULLY_CONNECTED": (2, 3), "ADD": (2, 2), "MUL": (2, 2),
         "RESHAPE": (1, 2), "CONCATENATION": (1, None), "PAD": (2, 2), "MEAN": (2, 2)}
#: Inputs a file may omit (index -1): the bias, RESHAPE's shape tensor (the options hold it).
OPTIONAL_INPUTS = {"CONV_2D": (2,), "DEPTHWISE_CONV_2D": (2,), "FULLY_CONNECTED": (2,), "RESHAPE": (1,)}
#: Operators whose output has their (first) input's shape.
SAME_SHAPE_OPS = ("SOFTMAX", "QUANTIZE", "DEQUANTIZE", "LOGISTIC", "TANH", "RELU", "RELU6", "RELU_N1_TO_1")
#: Operator -> {input: rank} the handler indexes by.
INPUT_RANKS = {"CONV_2D": {0: 4, 1: 4}, "DEPTHWISE_CONV_2D": {0: 4, 1: 4}, "FULLY_CONNECTED": {1: 2},
               "AVERAGE_POOL_2D": {0: 4}, "MAX_POOL_2D": {0: 4}}
#: Options that are sizes or step lengths: 0 or negative divides by zero or loops backwards.
POSITIVE_OPTIONS = ("StrideH", "StrideW", "FilterHeight", "FilterWidth", "DilationHFactor", "DilationWFactor")
ONNX_TYPES = {np.float32: TensorProto.FLOAT, np.int8: TensorProto.INT8, np.int32: TensorProto.INT32,
              np.uint8: TensorProto.UINT8, np.int64: TensorProto.INT64, np.int16: TensorProto.INT16}


def _permuted(shape, perm) -> tuple[int, ...]:
    return tuple(shape[p] for p in perm)


def is_view_permutation(shape, perm) -> bool:
    """True when transposing ``shape`` by ``perm`` keeps the memory order (it moves only size-1
    dimensions), so a Reshape does the same."""
    big = [d for d in range(len(shape)) if shape[d] != 1]
    moved = [p for p in perm if shape[p] != 1]
    return big == moved


@dataclass
class Converted:
    """The ONNX model and, per TFLite tensor index, the ONNX tensor holding it: the int8 tensor of
    an int8 activation (``int8_names``) or the float tensor (``float_names``), each in the ONNX
    layout (``nchw``: the TFLite tensor is NHWC and the ONNX one its NCHW transpose)."""

    model: onnx.ModelProto
    quantized: bool
    int8_names: dict[int, str] = field(default_factory=dict)
    float_names: dict[int, str] = field(default_factory=dict)
    nchw: set[int] = field(default_factory=set)
    op_outputs: list[tuple[int, str, list[int]]] = field(default_factory=list)  # (index, op, outputs)


class _Converter:
    def __init__(self, sg: Subgraph, where: str):
        self.sg, self.where = sg, where
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.used: set[str] = set()
        self.q: dict[int, str] = {}       # tensor -> int8 ONNX tensor
        self.f: dict[int, str] = {}       # tensor -> float ONNX tensor
        self.nchw: set[int] = set()
        self.op: Operator | None = None
        self.counter = 0
        self._main: str | None = None  # the op type of the node that gets the operator's own name
        self.quantized = any(t.dtype is np.int8 and t.quant is not None and not t.is_const for t in sg.tensors)

    # -- names and small builders ------------------------------------------------------------------

    def unique(self, base: str) -> str:
        from edgekit.model import fresh_name

        return fresh_name(re.sub(r"[^A-Za-z0-9_]", "_", base).strip("_")[:48] or "t", self.used)

    def tname(self, t: int, suffix: str = "") -> str:
        tensor = self.sg.tensors[t]
        short = tensor.name.split(";")[0].split("/")[-1] if tensor.name else ""
        return self.unique(f"t{t}_{short}{suffix}")

    def node(self, op_type: str, inputs: list[str], outputs: list[str] | None = None, **attrs) -> str:
        self.counter += 1
        prefix = f"op{self.op.index}_{self.op.op}" if self.op is not None else "io"
        name = prefix if op_type == getattr(self, "_main", None) else f"{prefix}/{op_type}{self.counter}"
        if outputs is None:
            outputs = [self.unique(f"{prefix}_{op_type}")]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self.unique_node(name), **attrs))
        return outputs[0]

    def unique_node(self, name: str) -> str:
        existing = {n.name for n in self.nodes}
        base, k = name, 1
        while name in existing:
            k += 1
            name = f"{base}_{k}"
        return name

    def init(self, array: np.ndarray, base: str) -> str:
        name = self.unique(base)
        self.inits.append(numpy_helper.from_array(np.array(array, order="C"), name))  # keeps 0-d
        return name

    def error(self, message: str) -> UsageError:
        op = self.op
        return UsageError(f"{self.where}: operator {op.index} ({op.op}): {message}")

    # -- quantization ---------------------------------------------------------------------------------

    def tensor(self, t: int) -> Tensor:
        return self.sg.tensors[t]

    def is_q(self, t: int) -> bool:
        tensor = self.tensor(t)
        return tensor.dtype is np.int8 and tensor.quant is not None

    def qparams(self, quant: Quant, what: str) -> tuple[str, str]:
        if not quant.per_tensor:
            raise self.error(f"{what} is quantized per channel; only weights may be")
        scale = self.init(np.array(quant.scale[0], dtype=np.float32), "scale")
        zp = self.init(np.array(int(quant.zero_point[0]), dtype=np.int8), "zero_point")
        return scale, zp

    def dq(self, q_name: str, quant: Quant) -> str:
        scale, zp = self.qparams(quant, f"'{q_name}'")
        return self.node("DequantizeLinear", [q_name, scale, zp], [self.unique(q_name + "_dq")])

    def quantize(self, f_name: str, quant: Quant, out: str | None = None) -> str:
        scale, zp = self.qparams(quant, "an activation")
        return self.node("QuantizeLinear", [f_name, scale, zp], [out or self.unique(f_name + "_q")])

    def check_activation_type(self, t: int) -> None:
        tensor = self.tensor(t)
        if tensor.dtype is np.float32 or self.is_q(t):
            return
        kind = {np.uint8: "uint8", np.int16: "int16"}.get(tensor.dtype, str(tensor.dtype))
        raise self.error(f"tensor {t} ('{tensor.name}') is {kind}"
                         + ("" if tensor.quant is None else " quantized")
                         + "; the importer reads float32 and int8 models")

    # -- reading operands -----------------------------------------------------------------------------

    def value(self, t: int) -> str:
        """Tensor ``t`` as a float ONNX tensor (DequantizeLinear of its int8 tensor when quantized)."""
        if t in self.f:
            return self.f[t]
        tensor = self.tensor(t)
        if tensor.is_const:
            data = tensor.data
            if data.ndim == 4:
                self.nchw.add(t)
                data = data.transpose(TO_NCHW)
            if self.is_q(t):
                q_name = self.init(data.astype(np.int8), f"c{t}")
                self.q[t] = q_name
                self.f[t] = self.dq(q_name, tensor.quant)
            elif tensor.dtype is np.float32:
                self.f[t] = self.init(data.astype(np.float32), f"c{t}")
            else:
                raise self.error(f"constant tensor {t} of type {tensor.dtype.__name__} as an operand")
            return self.f[t]
        if t in self.q:
            self.f[t] = self.dq(self.q[t], tensor.quant)
            return self.f[t]
        raise self.error(f"tensor {t} ('{tensor.name}') is read before it is written")

    def ishape(self, t: int) -> tuple[int, ...]:
        shape = self.tensor(t).shape
        return _permuted(shape, TO_NCHW) if t in self.nchw else tuple(shape)

    def const(self, t: int) -> np.ndarray:
        tensor = self.tensor(t)
        if not tensor.is_const:
            raise self.error(f"input tensor {t} ('{tensor.name}') must be a constant")
        return tensor.data

    # -- writing results ------------------------------------------------------------------------------

    def write(self, t: int, f_name: str, activation: str = "NONE", nchw: bool | None = None) -> None:
        """The op's float result ``f_name`` becomes tensor ``t`` (quantized to its int8 tensor when
        ``t`` is int8), after the fused activation."""
        tensor = self.tensor(t)
        rank4 = len(tensor.shape) == 4 if nchw is None else nchw
        if rank4:
            self.nchw.add(t)
        f_name = self.activation(f_name, activation)
        if self.is_q(t):
            self.q[t] = self.quantize(f_name, tensor.quant, self.tname(t))
        elif tensor.dtype is np.float32:
            self.f[t] = f_name
        else:
            self.check_activation_type(t)

    def activation(self, f_name: str, activation: str) -> str:
        if activation == "NONE":
            return f_name
        if activation == "RELU":
            return self.node("Relu", [f_name])
        bounds = {"RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}.get(activation)
        if bounds is None:
            raise self.error(f"fused activation {activation} is not supported")
        lo = self.init(np.array(bounds[0], dtype=np.float32), "clip_min")
        hi = self.init(np.array(bounds[1], dtype=np.float32), "clip_max")
        return self.node("Clip", [f_name, lo, hi])

    def view(self, t_in: int, steps: list[tuple[str, object]]) -> tuple[str, bool]:
        """Apply data-movement steps (``("Transpose", perm)`` / ``("Reshape", shape)``) to tensor
        ``t_in``; int8 tensors move as int8 (``DQ -> step -> Q`` with equal quantization). Returns
        (ONNX tensor, is_int8)."""
        quant = self.tensor(t_in).quant if self.is_q(t_in) else None
        if quant is not None:
            if t_in not in self.q:
                self.value(t_in)  # an int8 constant: its initializer
            cur = self.q[t_in]
        else:
            cur = self.value(t_in)
        for kind, arg in steps:
            src = self.dq(cur, quant) if quant is not None else cur
            if kind == "Transpose":
                out = self.node("Transpose", [src], perm=list(arg))
            else:
                shape = self.init(np.array(arg, dtype=np.int64), "shape")
                out = self.node("Reshape", [src, shape])
            cur = self.quantize(out, quant) if quant is not None else out
        return cur, quant is not None

    def layout_steps(self, shape_from: tuple[int, ...], perm) -> list[tuple[str, object]]:
        """One step that transposes ``shape_from`` by ``perm``: a Reshape when it is a view."""
        if is_view_permutation(shape_from, perm):
            return [("Reshape", list(_permuted(shape_from, perm)))] if list(perm) != sorted(perm) else []
        return [("Transpose", list(perm))]

    def to_tflite_order(self, t: int) -> list[tuple[str, object]]:
        """Steps that bring tensor ``t`` into its TFLite (NHWC) memory order."""
        return self.layout_steps(self.ishape(t), TO_NHWC) if t in self.nchw else []

    def finish_view(self, t_out: int, cur: str, is_int8: bool) -> None:
        if is_int8:
            # the last step's Q produced ``cur``; rename it to the tensor's int8 name
            self.q[t_out] = cur
        else:
            self.f[t_out] = cur

    # -- the ops --------------------------------------------------------------------------------------

    def convert(self) -> Converted:
        graph_inputs = []
        for t in self.sg.inputs:
            tensor = self.tensor(t)
            name = self.unique(tensor.name or f"input_{t}")
            graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(tensor.shape)))
            self.op = None
            if tensor.dtype is not np.float32 and not self.is_q(t):
                raise UsageError(f"{self.where}: graph input {t} ('{tensor.name}') is {tensor.dtype.__name__}; "
                                 f"the importer reads float32 and int8 inputs")
            if self.is_q(t):
                q_in = self.quantize(name, tensor.quant, self.tname(t, "_nhwc" if len(tensor.shape) == 4 else ""))
                self.q[t] = q_in
            else:
                self.f[t] = name
            if len(tensor.shape) == 4:
                steps = self.layout_steps(tensor.shape, TO_NCHW)
                cur, is_int8 = self.view(t, steps)
                self.q.pop(t, None), self.f.pop(t, None)
                self.nchw.add(t)
                self.finish_view(t, cur, is_int8)
        op_outputs = []
        for op in self.sg.operators:
            self.op = op
            handler = getattr(self, "op_" + op.op, None) if op.op in SUPPORTED else None
            if handler is None:
                raise UsageError(f"{self.where}: operator {op.index} ({op.op}) is not supported by the TFLite "
                                 f"importer (supported: {', '.join(SUPPORTED)})")
            self.check_operator(op)
            for t in [*op.inputs, *op.outputs]:
                if t >= 0 and not self.tensor(t).is_const:
                    self.check_activation_type(t)
            handler(op)
            op_outputs.append((op.index, op.op, list(op.outputs)))
        self.op = None
        graph_outputs = []
        for t in self.sg.outputs:
            tensor = self.tensor(t)
            name = self.unique(tensor.name or f"output_{t}")
            cur, is_int8 = self.view(t, self.to_tflite_order(t))
            if is_int8:
                self.node("DequantizeLinear", [cur, *self.qparams(tensor.quant, "the output")], [name])
            else:
                self.node("Identity", [cur], [name])
            graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(tensor.shape)))
        graph = helper.make_graph(self.nodes, "tflite", graph_inputs, graph_outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="edgekit-tflite")
        model.ir_version = IR_VERSION
        if self.quantized:  # the back end's int8 kernels then round as TFLite Micro's do
            from edgekit.plugins.mcu.qmath import METADATA_KEY

            model.metadata_props.add(key=METADATA_KEY, value="tflite")
        return Converted(model, self.quantized, dict(self.q), dict(self.f), set(self.nchw), op_outputs)

    # -- what every handler may assume ----------------------------------------------------------------

    def check_operator(self, op: Operator) -> None:
        """The operator's wiring and options as its handler reads them: input and output counts,
        no omitted (-1) required input, a non-constant output, ranks and positive spatial options.
        A file that gets one wrong is refused naming the operator, not with an IndexError inside."""
        fewest, most = ARITY.get(op.op, (1, 1))
        if not fewest <= len(op.inputs) <= (most or len(op.inputs)):
            expected = f"{fewest}" if fewest == most else f"{fewest} to {most or 'any number of'}"
            raise self.error(f"has {len(op.inputs)} input(s), expected {expected}")
        omitted = [k for k, t in enumerate(op.inputs) if t < 0 and k not in OPTIONAL_INPUTS.get(op.op, ())]
        if omitted:
            raise self.error(f"input {omitted[0]} is omitted (-1), but it is required")
        if len(op.outputs) != 1:
            raise self.error(f"has {len(op.outputs)} outputs, expected 1")
        if self.tensor(op.outputs[0]).is_const:
            raise self.error(f"writes tensor {op.outputs[0]}, which is a constant")
        for k, rank in INPUT_RANKS.get(op.op, {}).items():
            shape = self.tensor(op.inputs[k]).shape
            if len(shape) != rank or 0 in shape:
                raise self.error(f"input {k} (tensor {op.inputs[k]}) has shape {list(shape)}, "
                                 f"expected {rank}-D and non-empty")
        self.check_output_shape(op)
        if op.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D") and "FilterHeight" not in op.options:
            raise self.error("has no Pool2DOptions (filter size and strides)")
        bad = {k: v for k, v in op.options.items() if k in POSITIVE_OPTIONS and v < 1}
        if bad:
            raise self.error(", ".join(f"{k} {v}" for k, v in bad.items()) + ": must be at least 1")

    def check_output_shape(self, op: Operator) -> None:
        """Element-wise ops write their input's shape (binary ones the broadcast of both): the
        layout change relies on it (an NCHW input makes an NCHW output)."""
        shapes = [self.tensor(t).shape for t in op.inputs]
        out = self.tensor(op.outputs[0]).shape
        if op.op in SAME_SHAPE_OPS:
            expected = shapes[0]
        elif op.op in ("ADD", "MUL"):
            try:
                expected = np.broadcast_shapes(*shapes)
            except ValueError:
                raise self.error(f"input shapes {[list(s) for s in shapes]} do not broadcast") from None
        else:
            return
        if tuple(out) != tuple(expected):
            raise self.error(f"output tensor {op.outputs[0]} has shape {list(out)}, expected {list(expected)}")

    def _same_quantization(self, op: Operator) -> None:
        """An int8 clamp (RELU6, RELU_N1_TO_1) whose output is quantized as its input: TFLite Micro
        clamps the int8 values without rescaling them (TFLite rescales), so a file whose two
        quantizations differ has no single meaning (TFLite's converter never writes one)."""
        x, y = (self.tensor(t) for t in (op.inputs[0], op.outputs[0]))
        if self.is_q(op.inputs[0]) and self.is_q(op.outputs[0]) and (
                x.quant.scale[0] != y.quant.scale[0] or x.quant.zero_point[0] != y.quant.zero_point[0]):
            raise self.error(f"int8 input and output quantization differ ({x.quant.scale[0]:.6g}, "
                             f"{int(x.quant.zero_point[0])} vs {y.quant.scale[0]:.6g}, {int(y.quant.zero_point[0])}): "
                             f"TFLite Micro clamps without rescaling; give both the same quantization")

    # spatial ops

    def _same_pads(self, in_hw, k_hw, stride, dilation) -> list[int]:
        pads = []
        for size, k, s, d in zip(in_hw, k_hw, stride, dilation):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        return [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]

    def _pads(self, op, in_hw, k_hw, stride, dilation) -> list[int]:
        padding = op.options.get("Padding", "VALID")
        if padding == "VALID":
            return [0, 0, 0, 0]
        if padding == "SAME":
            return self._same_pads(in_hw, k_hw, stride, dilation)
        raise self.error(f"padding {padding}")

    def _weights(self, t: int, data: np.ndarray, axis: int) -> str:
        """A weight tensor (already in ONNX layout) as float: int8 behind DequantizeLinear with the
        file's scales (per channel along ``axis``), or float."""
        tensor = self.tensor(t)
        if tensor.dtype is np.float32:
            return self.init(data.astype(np.float32), f"w{t}")
        if tensor.dtype is not np.int8 or tensor.quant is None:
            raise self.error(f"weights tensor {t} is {tensor.dtype.__name__}; int8 or float32 expected")
        quant = tensor.quant
        if np.any(quant.zero_point != 0):
            raise self.error(f"weights tensor {t} has non-zero zero points")
        q_name = self.init(data.astype(np.int8), f"w{t}")
        if quant.per_tensor:
            scale = self.init(np.array(quant.scale[0], dtype=np.float32), "w_scale")
            return self.node("DequantizeLinear", [q_name, scale], [self.unique(q_name + "_dq")])
        scale = self.init(quant.scale.astype(np.float32), "w_scale")
        return self.node("DequantizeLinear", [q_name, scale], [self.unique(q_name + "_dq")], axis=axis)

    def _bias(self, t: int) -> list[str]:
        if t < 0:
            return []
        tensor = self.tensor(t)
        data = self.const(t)
        if tensor.dtype is np.float32:
            return [self.init(data.astype(np.float32), f"b{t}")]
        if tensor.dtype is not np.int32 or tensor.quant is None:
            raise self.error(f"bias tensor {t} is {tensor.dtype.__name__}; int32 or float32 expected")
        q_name = self.init(data.astype(np.int32), f"b{t}")
        scale = tensor.quant.scale.astype(np.float32)
        if scale.size == 1:
            s = self.init(np.array(scale[0], dtype=np.float32), "b_scale")
            return [self.node("DequantizeLinear", [q_name, s], [self.unique(q_name + "_dq")])]
        s = self.init(scale, "b_scale")
        return [self.node("DequantizeLinear", [q_name, s], [self.unique(q_name + "_dq")], axis=0)]

    def _conv(self, op, weights: np.ndarray, group: int) -> None:
        x, w, b = op.inputs[0], op.inputs[1], op.inputs[2] if len(op.inputs) > 2 else -1
        o = op.options
        if len(self.tensor(x).shape) != 4:
            raise self.error("input must be 4-D")
        _, h, wd, _ = self.tensor(x).shape
        stride = (o.get("StrideH", 1), o.get("StrideW", 1))
        dilation = (o.get("DilationHFactor", 1) or 1, o.get("DilationWFactor", 1) or 1)
        k_hw = weights.shape[2:]
        pads = self._pads(op, (h, wd), k_hw, stride, dilation)
        x_f = self.value(x)
        w_f = self._weights(w, weights, 0)
        self._main = "Conv"
        out = self.node("Conv", [x_f, w_f, *self._bias(b)], kernel_shape=list(k_hw), strides=list(stride),
                        dilations=list(dilation), pads=pads, group=group)
        self._main = None
        self.write(op.outputs[0], out, o.get("FusedActivationFunction", "NONE"))

    def op_CONV_2D(self, op):
        weights = self.const(op.inputs[1])  # [O, H, W, I]
        in_c = self.tensor(op.inputs[0]).shape[3]
        if weights.shape[3] != in_c:
            group = in_c // weights.shape[3]  # grouped convolution (TFLite >= 2.9)
        else:
            group = 1
        self._conv(op, weights.transpose(0, 3, 1, 2), group)

    def op_DEPTHWISE_CONV_2D(self, op):
        weights = self.const(op.inputs[1])  # [1, H, W, C*M]
        in_c = self.tensor(op.inputs[0]).shape[3]
        quant = self.tensor(op.inputs[1]).quant
        if quant is not None and not quant.per_tensor and quant.axis != 3:
            raise self.error(f"depthwise weights quantized along axis {quant.axis}, expected 3")
        self._conv(op, weights.transpose(3, 0, 1, 2), in_c)

    def _pool(self, op, onnx_op: str) -> None:
        x = op.inputs[0]
        o = op.options
        _, h, w, _ = self.tensor(x).shape
        k = (o["FilterHeight"], o["FilterWidth"])
        stride = (o["StrideH"], o["StrideW"])
        pads = self._pads(op, (h, w), k, stride, (1, 1))
        attrs = dict(kernel_shape=list(k), strides=list(stride), pads=pads)
        if onnx_op == "AveragePool":
            attrs["count_include_pad"] = 0
        self._main = onnx_op
        out = self.node(onnx_op, [self.value(x)], **attrs)
        self._main = None
        self.write(op.outputs[0], out, o.get("FusedActivationFunction", "NONE"))

    def op_AVERAGE_POOL_2D(self, op):
        self._pool(op, "AveragePool")

    def op_MAX_POOL_2D(self, op):
        self._pool(op, "MaxPool")

    def op_FULLY_CONNECTED(self, op):
        x, w, b = op.inputs[0], op.inputs[1], op.inputs[2] if len(op.inputs) > 2 else -1
        o = op.options
        if o.get("WeightsFormat", 0) != 0:
            raise self.error("shuffled weights format")
        weights = self.const(w)  # [N, K]
        n, k = weights.shape
        x_shape = self.tensor(x).shape
        m = int(np.prod(x_shape)) // k
        if m * k != int(np.prod(x_shape)) or m * n != int(np.prod(self.tensor(op.outputs[0]).shape)):
            raise self.error(f"input {list(x_shape)}, weights {[n, k]} and output "
                             f"{list(self.tensor(op.outputs[0]).shape)} do not fit together")
        steps = self.to_tflite_order(x)
        if tuple(x_shape) != (m, k):
            steps.append(("Reshape", [m, k]))
        if steps:
            cur, is_int8 = self.view(x, steps)
            x_f = self.dq(cur, self.tensor(x).quant) if is_int8 else cur
        else:
            x_f = self.value(x)
        quant = self.tensor(w).quant
        if quant is not None and not quant.per_tensor and quant.axis != 0:
            raise self.error(f"weights quantized along axis {quant.axis}, expected 0")
        w_f = self._weights(w, weights, 0)
        self._main = "Gemm"
        out = self.node("Gemm", [x_f, w_f, *self._bias(b)], transB=1)
        self._main = None
        t_out = op.outputs[0]
        out_shape = self.tensor(t_out).shape
        if tuple(out_shape) == (m, n):
            self.write(t_out, out, o.get("FusedActivationFunction", "NONE"), nchw=False)
            return
        # keep_num_dims or a rank-4 output: the result, then a view to the output's shape
        tmp = self.tensor(t_out)
        f_act = self.activation(out, o.get("FusedActivationFunction", "NONE"))
        if self.is_q(t_out):
            cur = self.quantize(f_act, tmp.quant)
            src = self.dq(cur, tmp.quant)
        else:
            src = f_act
        shape = list(out_shape) if len(out_shape) != 4 else list(_permuted(out_shape, TO_NCHW))
        if len(out_shape) == 4 and not is_view_permutation(out_shape, TO_NCHW):
            raise self.error("rank-4 output of FULLY_CONNECTED")
        reshaped = self.node("Reshape", [src, self.init(np.array(shape, dtype=np.int64), "shape")])
        self.write(t_out, reshaped)

    def _broadcast_operand(self, t: int, out_rank: int, out_nchw: bool) -> str:
        """Operand ``t`` of a broadcasting op whose output is rank ``out_rank``."""
        tensor = self.tensor(t)
        rank = len(tensor.shape)
        if not out_nchw or rank == 4:
            return self.value(t)
        if not tensor.is_const:
            raise self.error(f"broadcasting the rank-{rank} activation {t} against a rank-4 tensor")
        data = tensor.data.reshape((1,) * (4 - rank) + tuple(tensor.shape)).transpose(TO_NCHW)
        if self.is_q(t):
            q_name = self.init(data.astype(np.int8), f"c{t}")
            return self.dq(q_name, tensor.quant)
        return self.init(data.astype(np.float32), f"c{t}")

    def _binary(self, op, onnx_op: str) -> None:
        a, b = op.inputs[:2]
        t_out = op.outputs[0]
        out_rank = len(self.tensor(t_out).shape)
        for t in (a, b):
            if len(self.tensor(t).shape) == 4 and not self.tensor(t).is_const and t not in self.nchw:
                raise self.error(f"rank-4 operand {t} not in NCHW layout")
        self._main = onnx_op
        out = self.node(onnx_op, [self._broadcast_operand(a, out_rank, out_rank == 4),
                                  self._broadcast_operand(b, out_rank, out_rank == 4)])
        self._main = None
        self.write(t_out, out, op.options.get("FusedActivationFunction", "NONE"))

    def op_ADD(self, op):
        self._binary(op, "Add")

    def op_MUL(self, op):
        self._binary(op, "Mul")

    def op_RESHAPE(self, op):
        x, t_out = op.inputs[0], op.outputs[0]
        out_shape = list(self.tensor(t_out).shape)
        steps = self.to_tflite_order(x)
        in_shape = list(self.tensor(x).shape)
        if out_shape != in_shape:
            steps.append(("Reshape", out_shape))
        if len(out_shape) == 4:
            steps += self.layout_steps(tuple(out_shape), TO_NCHW)
            self.nchw.add(t_out)
        steps = _merge_reshapes(steps)
        if not steps:  # a no-op: still a new tensor
            steps = [("Reshape", list(self.ishape(t_out)))]
        cur, is_int8 = self.view(x, steps)
        if is_int8 and self.tensor(x).quant.scale[0] != self.tensor(t_out).quant.scale[0]:
            raise self.error("RESHAPE with different input and output quantization")
        self.finish_view(t_out, cur, is_int8)

    def op_SOFTMAX(self, op):
        x, t_out = op.inputs[0], op.outputs[0]
        beta = float(op.options.get("Beta", 1.0))
        if beta != 1.0:
            raise self.error(f"beta {beta} (only 1.0)")
        axis = 1 if x in self.nchw else -1
        self._main = "Softmax"
        out = self.node("Softmax", [self.value(x)], axis=axis)
        self._main = None
        self.write(t_out, out)

    def _unary(self, op, onnx_op: str, *extra: str) -> None:
        self._main = onnx_op
        out = self.node(onnx_op, [self.value(op.inputs[0]), *extra])
        self._main = None
        self.write(op.outputs[0], out, nchw=op.inputs[0] in self.nchw)

    def op_LOGISTIC(self, op):
        self._unary(op, "Sigmoid")

    def op_TANH(self, op):
        self._unary(op, "Tanh")

    def op_RELU(self, op):
        self._unary(op, "Relu")

    def _clip(self, op, lo: float, hi: float):
        self._same_quantization(op)
        self._unary(op, "Clip", self.init(np.array(lo, dtype=np.float32), "clip_min"),
                    self.init(np.array(hi, dtype=np.float32), "clip_max"))

    def op_RELU6(self, op):
        self._clip(op, 0.0, 6.0)

    def op_RELU_N1_TO_1(self, op):
        self._clip(op, -1.0, 1.0)

    def op_QUANTIZE(self, op):
        x, t_out = op.inputs[0], op.outputs[0]
        if not self.is_q(t_out):
            raise self.error("QUANTIZE to a type other than int8")
        self._main = "Identity"
        out = self.node("Identity", [self.value(x)])  # float input, or int8 requantized (DQ -> Q)
        self._main = None
        self.write(t_out, out, nchw=x in self.nchw)

    def op_DEQUANTIZE(self, op):
        x, t_out = op.inputs[0], op.outputs[0]
        if not self.is_q(x) or self.tensor(t_out).dtype is not np.float32:
            raise self.error("DEQUANTIZE other than int8 -> float32")
        self._main = "Identity"
        out = self.node("Identity", [self.value(x)])
        self._main = None
        self.write(t_out, out, nchw=x in self.nchw)

    def op_CONCATENATION(self, op):
        t_out = op.outputs[0]
        rank = len(self.tensor(t_out).shape)
        axis = int(op.options.get("Axis", 0)) % rank
        if rank == 4:
            axis = AXIS_NCHW[axis]
        self._main = "Concat"
        out = self.node("Concat", [self._broadcast_operand(t, rank, rank == 4) for t in op.inputs], axis=axis)
        self._main = None
        self.write(t_out, out, op.options.get("FusedActivationFunction", "NONE"))

    def op_PAD(self, op):
        x, t_out = op.inputs[0], op.outputs[0]
        pads = np.asarray(self.const(op.inputs[1]), dtype=np.int64).reshape(-1, 2)
        if x in self.nchw:
            pads = pads[list(TO_NCHW)]
        pads_name = self.init(np.concatenate([pads[:, 0], pads[:, 1]]).astype(np.int64), "pads")
        self._main = "Pad"
        out = self.node("Pad", [self.value(x), pads_name], mode="constant")  # 0.0 is the zero point
        self._main = None
        self.write(t_out, out, nchw=x in self.nchw)

    def op_MEAN(self, op):
        x, t_out = op.inputs[0], op.outputs[0]
        rank = len(self.tensor(x).shape)
        axes = sorted({int(a) % rank for a in np.asarray(self.const(op.inputs[1])).reshape(-1)})
        keep = bool(op.options.get("KeepDims", False))
        nchw = x in self.nchw
        onnx_axes = sorted(AXIS_NCHW[a] for a in axes) if nchw else axes
        self._main = "ReduceMean"
        out = self.node("ReduceMean", [self.value(x)], axes=onnx_axes, keepdims=1)
        self._main = None
        out_shape = list(self.tensor(t_out).shape)
        if keep or not nchw:
            if not keep:
                out = self.node("Reshape", [out, self.init(np.array(out_shape, dtype=np.int64), "shape")])
            self.write(t_out, out, nchw=nchw and keep)
            return
        # rank-4 NCHW input, dims dropped: the kept dims in TFLite (NHWC) order
        kept_nchw = _permuted(tuple(1 if a in axes else d for a, d in enumerate(self.tensor(x).shape)), TO_NCHW)
        if not is_view_permutation(kept_nchw, TO_NHWC):
            out = self.node("Transpose", [out], perm=list(TO_NHWC))
        out = self.node("Reshape", [out, self.init(np.array(out_shape, dtype=np.int64), "shape")])
        self.write(t_out, out, nchw=False)


def _merge_reshapes(steps: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """Consecutive Reshapes are one Reshape (to the last shape)."""
    merged: list[tuple[str, object]] = []
    for kind, arg in steps:
        if kind == "Reshape" and merged and merged[-1][0] == "Reshape":
            merged[-1] = (kind, arg)
        else:
            merged.append((kind, arg))
    return merged


def convert(sg: Subgraph, where: str = "model") -> Converted:
    """The ONNX form of TFLite subgraph ``sg`` (see the module docstring)."""
    return _Converter(sg, where).convert()
