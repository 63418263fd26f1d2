"""Reader of TensorFlow Lite flatbuffers (``.tflite``): the model's first subgraph as plain Python data.

Technique: the TFLite schema (``tensorflow/lite/schema/schema.fbs``) read through the flatbuffer
accessors the ``tflite`` PyPI package generates from it (``pip install 'edgekit[tflite]'``). Every
tensor comes out with its shape, type, constant data (if its buffer holds any) and quantization
(per-tensor or per-channel scales and zero points, quantized dimension); every operator with its
builtin op name, its tensor indices and the builtin options the converter reads (padding, strides,
dilation, fused activation, axis, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import UsageError

#: TFLite TensorType -> numpy dtype (the types the converter knows).
DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16,
          9: np.int8, 10: np.float64}
#: TFLite ActivationFunctionType.
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
PADDINGS = {0: "SAME", 1: "VALID"}


def _tflite():
    try:
        import tflite
    except ImportError:
        raise UsageError("the .tflite front end needs the tflite package: pip install 'edgekit[tflite]'") from None
    return tflite


@dataclass
class Quant:
    """Quantization of one tensor: ``scale``/``zero_point`` have one entry (per tensor) or one per
    slice along ``axis`` (per channel)."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0

    @property
    def per_tensor(self) -> bool:
        return self.scale.size == 1


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: Any                      # numpy dtype class
    type_code: int
    data: np.ndarray | None = None  # constant contents, in the tensor's shape
    quant: Quant | None = None

    @property
    def is_const(self) -> bool:
        return self.data is not None


@dataclass
class Operator:
    index: int
    op: str                       # builtin op name, e.g. "CONV_2D"
    inputs: list[int]             # tensor indices, -1 for an omitted optional input
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Subgraph:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]
    description: str = ""


def _builtin_names() -> dict[int, str]:
    tflite = _tflite()
    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def _options_class_names() -> dict[int, str]:
    tflite = _tflite()
    return {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_") and isinstance(v, int)}


#: The option fields read per options table (accessor names of the generated classes).
OPTION_FIELDS = {
    "Conv2DOptions": ("Padding", "StrideW", "StrideH", "DilationWFactor", "DilationHFactor", "FusedActivationFunction"),
    "DepthwiseConv2DOptions": ("Padding", "StrideW", "StrideH", "DepthMultiplier", "DilationWFactor",
                               "DilationHFactor", "FusedActivationFunction"),
    "Pool2DOptions": ("Padding", "StrideW", "StrideH", "FilterWidth", "FilterHeight", "FusedActivationFunction"),
    "FullyConnectedOptions": ("FusedActivationFunction", "WeightsFormat", "KeepNumDims"),
    "AddOptions": ("FusedActivationFunction",),
    "MulOptions": ("FusedActivationFunction",),
    "SubOptions": ("FusedActivationFunction",),
    "SoftmaxOptions": ("Beta",),
    "ConcatenationOptions": ("Axis", "FusedActivationFunction"),
    "ReducerOptions": ("KeepDims",),
    "ReshapeOptions": (),
}


def _options(op, class_name: str | None) -> dict[str, Any]:
    if class_name is None or class_name not in OPTION_FIELDS:
        return {}
    table = op.BuiltinOptions()
    if table is None:
        return {}
    tflite = _tflite()
    opts = getattr(tflite, class_name)()
    opts.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {}
    for name in OPTION_FIELDS[class_name]:
        out[name] = getattr(opts, name)()
    if class_name == "ReshapeOptions" and not opts.NewShapeIsNone():
        out["NewShape"] = [int(v) for v in opts.NewShapeAsNumpy()]
    if "FusedActivationFunction" in out:
        out["FusedActivationFunction"] = ACTIVATIONS.get(out["FusedActivationFunction"],
                                                         str(out["FusedActivationFunction"]))
    if "Padding" in out:
        out["Padding"] = PADDINGS.get(out["Padding"], str(out["Padding"]))
    return out


def read(path: str | Path) -> Subgraph:
    """Subgraph 0 of the ``.tflite`` file at ``path``."""
    path = Path(path)
    buf = path.read_bytes()
    return read_bytes(buf, str(path))


def read_bytes(buf: bytes, where: str = "model") -> Subgraph:
    tflite = _tflite()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise UsageError(f"{where}: not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        model = tflite.Model.GetRootAsModel(buf, 0)
        if model.SubgraphsLength() < 1:
            raise UsageError(f"{where}: the model has no subgraph")
        sg = model.Subgraphs(0)
        names, option_classes = _builtin_names(), _options_class_names()
        tensors = [_tensor(model, buf, sg.Tensors(i), i, where) for i in range(sg.TensorsLength())]
        operators = []
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            if op.OpcodeIndex() >= model.OperatorCodesLength():
                raise UsageError(f"{where}: operator {i} has opcode index {op.OpcodeIndex()}, but the file "
                                 f"defines {model.OperatorCodesLength()} operator code(s)")
            code = model.OperatorCodes(op.OpcodeIndex())
            builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
            name = names.get(builtin, f"BUILTIN_{builtin}")
            if name == "CUSTOM":
                custom = code.CustomCode()
                name = f"CUSTOM({custom.decode(errors='replace') if custom else '?'})"
            ins = [int(v) for v in op.InputsAsNumpy()] if not op.InputsIsNone() else []
            outs = [int(v) for v in op.OutputsAsNumpy()] if not op.OutputsIsNone() else []
            operators.append(Operator(i, name, ins, outs, _options(op, option_classes.get(op.BuiltinOptionsType()))))
        inputs = [int(v) for v in sg.InputsAsNumpy()]
        outputs = [int(v) for v in sg.OutputsAsNumpy()]
        desc = model.Description().decode(errors="replace") if model.Description() else ""
    except UsageError:
        raise
    except Exception as exc:  # a truncated or corrupt flatbuffer raises from deep in the accessors
        raise UsageError(f"{where}: corrupt TFLite flatbuffer ({type(exc).__name__}: {exc})") from None
    subgraph = Subgraph(tensors, operators, inputs, outputs, desc)
    check_indices(subgraph, where)
    return subgraph


def _tensor(model, buf: bytes, t, i: int, where: str) -> Tensor:
    """Tensor ``i`` with its constant data and quantization; a shape, buffer or quantization the
    file gets wrong is a UsageError naming the tensor (not a numpy error from deep in a reshape)."""
    name = t.Name().decode(errors="replace") if t.Name() is not None else ""
    what = f"{where}: tensor {i} ('{name}')"
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if not t.ShapeIsNone() else ()
    if any(d < 0 for d in shape):
        raise UsageError(f"{what} has shape {list(shape)}: a negative dim (dynamic shapes are not read; "
                         f"re-export with a fixed shape)")
    dtype = DTYPES.get(t.Type())
    if dtype is None:  # the converter and every consumer of Tensor.dtype need one
        raise UsageError(f"{what} has TFLite type {_type_name(t.Type())}, which the importer does not read "
                         f"(it reads {', '.join(np.dtype(d).name for d in DTYPES.values())}); re-export the "
                         f"model with those types")
    if t.Buffer() >= model.BuffersLength():
        raise UsageError(f"{what} refers to buffer {t.Buffer()}, but the file has {model.BuffersLength()}")
    b = model.Buffers(t.Buffer())
    raw = None
    if not b.DataIsNone() and b.DataLength() > 0:
        raw = b.DataAsNumpy().tobytes()
    elif b.Offset() > 1:  # large models keep buffers past the flatbuffer
        if b.Offset() + b.Size() > len(buf):
            raise UsageError(f"{what}: its buffer {t.Buffer()} lies past the end of the file "
                             f"(bytes {b.Offset()}..{b.Offset() + b.Size()} of {len(buf)}); is it truncated?")
        raw = buf[b.Offset():b.Offset() + b.Size()]
    data = None if raw is None else _constant(raw, shape, dtype, what)
    return Tensor(i, name, shape, dtype, int(t.Type()), data, _quantization(t.Quantization(), dtype, shape, what))


def _type_name(code: int) -> str:
    """``STRING (5)``: the schema's name of a TensorType code, and the code."""
    names = {v: k for k, v in vars(_tflite().TensorType).items() if not k.startswith("_") and isinstance(v, int)}
    return f"{names.get(code, 'unknown')} ({code})"


def _constant(raw: bytes, shape: tuple[int, ...], dtype, what: str) -> np.ndarray:
    expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if len(raw) != expected:
        raise UsageError(f"{what}: its buffer holds {len(raw)} bytes, but shape {list(shape)} of "
                         f"{np.dtype(dtype).name} needs {expected}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


#: The smallest usable scale: the smallest normal float32. A denormal scale makes requantization
#: multipliers no Q31 fixed-point multiplier holds (and TFLite Micro's rounding of them differs).
MIN_SCALE = float(np.finfo(np.float32).tiny)
#: int8 tensors' zero points lie in int8's range.
INT8_RANGE = (-128, 127)


def _quantization(q, dtype, shape: tuple[int, ...], what: str) -> Quant | None:
    """The tensor's scales and zero points, refused where no kernel could compute with them: a scale
    that is not finite and positive, a zero point outside int8 for an int8 tensor, per-channel
    parameters whose counts or dimension do not fit the shape."""
    if q is None or q.ScaleIsNone() or q.ScaleLength() == 0:
        return None
    scale = np.asarray(q.ScaleAsNumpy(), dtype=np.float32)
    zp = np.asarray(q.ZeroPointAsNumpy(), dtype=np.int64) if not q.ZeroPointIsNone() else np.zeros(scale.size, np.int64)
    axis = int(q.QuantizedDimension())
    usable = np.isfinite(scale) & (scale >= MIN_SCALE)
    if not usable.all():
        raise UsageError(f"{what} has quantization scale(s) {scale[~usable][:4].tolist()}; scales must be "
                         f"finite and positive (and not denormal: at least {MIN_SCALE:.3g})")
    if zp.size != scale.size:
        raise UsageError(f"{what} has {scale.size} quantization scale(s) but {zp.size} zero point(s)")
    if dtype is np.int8 and ((zp < INT8_RANGE[0]) | (zp > INT8_RANGE[1])).any():
        raise UsageError(f"{what} is int8 with zero point(s) {zp[(zp < -128) | (zp > 127)][:4].tolist()} "
                         f"outside [-128, 127]")
    if scale.size > 1 and not (0 <= axis < len(shape) and shape[axis] == scale.size):
        raise UsageError(f"{what} has {scale.size} per-channel scales along dimension {axis}, "
                         f"which does not fit its shape {list(shape)}")
    return Quant(scale, zp, axis)


def check_indices(sg: Subgraph, where: str) -> None:
    """Every tensor index the graph uses names a tensor (-1, an omitted optional input, only among
    operator inputs): a wrong index is a UsageError naming the operator, not an IndexError later,
    nor (negative) silently another tensor."""
    n = len(sg.tensors)

    def check(indices, what: str, optional: bool) -> None:
        bad = [t for t in indices if not (0 <= t < n or (optional and t == -1))]
        if bad:
            raise UsageError(f"{where}: {what} refers to tensor {bad[0]}, but the subgraph has {n} tensors")

    check(sg.inputs, "the subgraph's inputs", False)
    check(sg.outputs, "the subgraph's outputs", False)
    for op in sg.operators:
        check(op.inputs, f"operator {op.index} ({op.op}) input", True)
        check(op.outputs, f"operator {op.index} ({op.op}) output", False)
