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
        tensors = []
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if not t.ShapeIsNone() else ()
            dtype = DTYPES.get(t.Type())
            data = None
            b = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
            if b is not None and not b.DataIsNone() and b.DataLength() > 0:
                if dtype is None:
                    raise UsageError(f"{where}: tensor {i} ('{t.Name().decode()}') has TFLite type {t.Type()}, "
                                     f"which the importer does not read")
                data = np.frombuffer(b.DataAsNumpy().tobytes(), dtype=dtype).reshape(shape)
            elif b is not None and b.Offset() > 1:  # large models keep buffers past the flatbuffer
                raw = buf[b.Offset():b.Offset() + b.Size()]
                data = np.frombuffer(raw, dtype=dtype).reshape(shape)
            quant = None
            q = t.Quantization()
            if q is not None and not q.ScaleIsNone() and q.ScaleLength() > 0:
                zp = q.ZeroPointAsNumpy() if not q.ZeroPointIsNone() else np.zeros(q.ScaleLength(), np.int64)
                quant = Quant(np.asarray(q.ScaleAsNumpy(), dtype=np.float32),
                              np.asarray(zp, dtype=np.int64), int(q.QuantizedDimension()))
            tensors.append(Tensor(i, t.Name().decode(errors="replace"), shape, dtype, int(t.Type()), data, quant))
        operators = []
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
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
    return Subgraph(tensors, operators, inputs, outputs, desc)
