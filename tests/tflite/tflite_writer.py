"""A small writer of TFLite flatbuffers for tests: models built op by op with the ``tflite`` package's
generated schema builders (no TensorFlow converter is installed here). The TFLite interpreter
(``ai-edge-litert``) loads what it writes, which is what makes them fair test inputs."""

from __future__ import annotations

from dataclasses import dataclass, field

import flatbuffers
import numpy as np
import tflite

TYPES = {np.float32: 0, np.int32: 2, np.int8: 9, np.int64: 4}
ACT = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
PAD = {"SAME": 0, "VALID": 1}


@dataclass
class T:
    name: str
    shape: tuple
    dtype: type = np.float32
    data: np.ndarray | None = None
    quant: tuple | None = None  # (scales, zero_points, axis)


@dataclass
class Op:
    op: str
    inputs: list[int]
    outputs: list[int]
    options: tuple[str, dict] | None = None  # (options table name, {field: value})


@dataclass
class ModelSpec:
    tensors: list[T] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def add(self, name, shape, dtype=np.float32, data=None, quant=None) -> int:
        self.tensors.append(T(name, tuple(shape), dtype, None if data is None else np.asarray(data, dtype), quant))
        return len(self.tensors) - 1

    def op(self, op, inputs, outputs, options=None) -> None:
        self.ops.append(Op(op, list(inputs), list(outputs), options))


def _vector(b, start, values, prepend):
    start(b, len(values))
    for v in reversed(list(values)):
        prepend(v)
    return b.EndVector()


def _options(b, name: str, fields: dict):
    values = dict(fields)
    vectors = {}
    if name == "ReshapeOptions" and "NewShape" in values:
        vectors["NewShape"] = _vector(b, tflite.ReshapeOptionsStartNewShapeVector, values.pop("NewShape"),
                                      b.PrependInt32)
    getattr(tflite, name + "Start")(b)
    for key, value in values.items():
        if key == "FusedActivationFunction":
            value = ACT[value]
        elif key == "Padding":
            value = PAD[value]
        getattr(tflite, f"{name}Add{key}")(b, value)
    for key, off in vectors.items():
        getattr(tflite, f"{name}Add{key}")(b, off)
    return getattr(tflite, name + "End")(b)


def write(spec: ModelSpec) -> bytes:
    b = flatbuffers.Builder(1024)
    codes = sorted({o.op for o in spec.ops})
    # buffers: 0 is the empty buffer; each constant tensor has its own
    buffer_of, buffers = {}, []
    for i, t in enumerate(spec.tensors):
        if t.data is not None:
            data = np.ascontiguousarray(t.data.astype(t.dtype)).view(np.uint8).reshape(-1)
            buffer_of[i] = len(buffers) + 1
            buffers.append(b.CreateNumpyVector(data))
    buffer_offsets = []
    for data in [None, *buffers]:
        tflite.BufferStart(b)
        if data is not None:
            tflite.BufferAddData(b, data)
        buffer_offsets.append(tflite.BufferEnd(b))
    tensors = []
    for i, t in enumerate(spec.tensors):
        name = b.CreateString(t.name)
        shape = _vector(b, tflite.TensorStartShapeVector, t.shape, b.PrependInt32)
        quant = None
        if t.quant is not None:
            scales, zps, axis = t.quant
            sv = _vector(b, tflite.QuantizationParametersStartScaleVector, np.atleast_1d(scales).astype(float),
                         b.PrependFloat32)
            zv = _vector(b, tflite.QuantizationParametersStartZeroPointVector,
                         [int(z) for z in np.atleast_1d(zps)], b.PrependInt64)
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, sv)
            tflite.QuantizationParametersAddZeroPoint(b, zv)
            tflite.QuantizationParametersAddQuantizedDimension(b, axis)
            quant = tflite.QuantizationParametersEnd(b)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, TYPES[t.dtype])
        tflite.TensorAddBuffer(b, buffer_of.get(i, 0))
        tflite.TensorAddName(b, name)
        if quant is not None:
            tflite.TensorAddQuantization(b, quant)
        tensors.append(tflite.TensorEnd(b))
    operators = []
    for o in spec.ops:
        ins = _vector(b, tflite.OperatorStartInputsVector, o.inputs, b.PrependInt32)
        outs = _vector(b, tflite.OperatorStartOutputsVector, o.outputs, b.PrependInt32)
        opts = _options(b, *o.options) if o.options else None
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, codes.index(o.op))
        tflite.OperatorAddInputs(b, ins)
        tflite.OperatorAddOutputs(b, outs)
        if opts is not None:
            tflite.OperatorAddBuiltinOptionsType(b, getattr(tflite.BuiltinOptions, o.options[0]))
            tflite.OperatorAddBuiltinOptions(b, opts)
        operators.append(tflite.OperatorEnd(b))
    t_vec = _vector(b, tflite.SubGraphStartTensorsVector, tensors, b.PrependUOffsetTRelative)
    o_vec = _vector(b, tflite.SubGraphStartOperatorsVector, operators, b.PrependUOffsetTRelative)
    i_vec = _vector(b, tflite.SubGraphStartInputsVector, spec.inputs, b.PrependInt32)
    out_vec = _vector(b, tflite.SubGraphStartOutputsVector, spec.outputs, b.PrependInt32)
    sg_name = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, t_vec)
    tflite.SubGraphAddOperators(b, o_vec)
    tflite.SubGraphAddInputs(b, i_vec)
    tflite.SubGraphAddOutputs(b, out_vec)
    tflite.SubGraphAddName(b, sg_name)
    subgraph = tflite.SubGraphEnd(b)
    code_offsets = []
    for name in codes:
        code = getattr(tflite.BuiltinOperator, name)
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, 1)
        code_offsets.append(tflite.OperatorCodeEnd(b))
    c_vec = _vector(b, tflite.ModelStartOperatorCodesVector, code_offsets, b.PrependUOffsetTRelative)
    s_vec = _vector(b, tflite.ModelStartSubgraphsVector, [subgraph], b.PrependUOffsetTRelative)
    bu_vec = _vector(b, tflite.ModelStartBuffersVector, buffer_offsets, b.PrependUOffsetTRelative)
    desc = b.CreateString("edgekit test model")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, c_vec)
    tflite.ModelAddSubgraphs(b, s_vec)
    tflite.ModelAddDescription(b, desc)
    tflite.ModelAddBuffers(b, bu_vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def float_cnn(seed: int = 0) -> ModelSpec:
    """A float CNN over every layout-sensitive op the importer rewrites: conv (RELU6), depthwise with
    depth multiplier 2, average pool (SAME, padding excluded), ADD, MUL by a per-channel constant,
    CONCATENATION on channels, PAD on H and W, MAX_POOL, MEAN over W (H and C kept: their order
    matters), RESHAPE of a rank-4 tensor (the NHWC flatten order), FULLY_CONNECTED, TANH, LOGISTIC,
    SOFTMAX."""
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.standard_normal(s).astype(np.float32) * 0.5  # noqa: E731
    m = ModelSpec()
    x = m.add("input", (1, 8, 6, 3))
    w1, b1 = m.add("w1", (4, 3, 3, 3), data=r(4, 3, 3, 3)), m.add("b1", (4,), data=r(4))
    c1 = m.add("conv1", (1, 8, 6, 4))
    m.op("CONV_2D", [x, w1, b1], [c1], ("Conv2DOptions", dict(Padding="SAME", StrideH=1, StrideW=1,
                                                           FusedActivationFunction="RELU6")))
    w2, b2 = m.add("w2", (1, 3, 3, 8), data=r(1, 3, 3, 8)), m.add("b2", (8,), data=r(8))
    d2 = m.add("dw2", (1, 4, 3, 8))
    m.op("DEPTHWISE_CONV_2D", [c1, w2, b2], [d2],
         ("DepthwiseConv2DOptions", dict(Padding="SAME", StrideH=2, StrideW=2, DepthMultiplier=2,
                                         FusedActivationFunction="RELU")))
    p3 = m.add("avg3", (1, 4, 3, 8))
    m.op("AVERAGE_POOL_2D", [d2], [p3], ("Pool2DOptions", dict(Padding="SAME", StrideH=1, StrideW=1,
                                                             FilterHeight=2, FilterWidth=2)))
    a4 = m.add("add4", (1, 4, 3, 8))
    m.op("ADD", [d2, p3], [a4], ("AddOptions", dict(FusedActivationFunction="NONE")))
    k5 = m.add("k5", (8,), data=r(8) + 1)
    m5 = m.add("mul5", (1, 4, 3, 8))
    m.op("MUL", [a4, k5], [m5], ("MulOptions", dict(FusedActivationFunction="NONE")))
    c6 = m.add("cat6", (1, 4, 3, 16))
    m.op("CONCATENATION", [m5, d2], [c6], ("ConcatenationOptions", dict(Axis=3)))
    pads = m.add("pads", (4, 2), np.int32, data=np.array([[0, 0], [1, 0], [0, 1], [0, 0]]))
    p7 = m.add("pad7", (1, 5, 4, 16))
    m.op("PAD", [c6, pads], [p7])
    mp8 = m.add("max8", (1, 2, 2, 16))
    m.op("MAX_POOL_2D", [p7], [mp8], ("Pool2DOptions", dict(Padding="VALID", StrideH=2, StrideW=2,
                                                          FilterHeight=2, FilterWidth=2)))
    axes = m.add("axes", (1,), np.int32, data=np.array([2]))
    mean9 = m.add("mean9", (1, 2, 16))
    m.op("MEAN", [mp8, axes], [mean9], ("ReducerOptions", dict(KeepDims=False)))
    shp = m.add("shape", (2,), np.int32, data=np.array([1, 32]))
    r10 = m.add("flat10", (1, 32))
    m.op("RESHAPE", [mean9, shp], [r10], ("ReshapeOptions", dict(NewShape=[1, 32])))
    shp2 = m.add("shape2", (2,), np.int32, data=np.array([1, 64]))
    r11 = m.add("flat11", (1, 64))
    m.op("RESHAPE", [mp8, shp2], [r11], ("ReshapeOptions", dict(NewShape=[1, 64])))
    w12, b12 = m.add("w12", (10, 32), data=r(10, 32)), m.add("b12", (10,), data=r(10))
    f12 = m.add("fc12", (1, 10))
    m.op("FULLY_CONNECTED", [r10, w12, b12], [f12], ("FullyConnectedOptions", dict(FusedActivationFunction="NONE")))
    w13, b13 = m.add("w13", (10, 64), data=r(10, 64)), m.add("b13", (10,), data=r(10))
    f13 = m.add("fc13", (1, 10))
    m.op("FULLY_CONNECTED", [r11, w13, b13], [f13], ("FullyConnectedOptions", dict(FusedActivationFunction="RELU")))
    t14 = m.add("tanh14", (1, 10))
    m.op("TANH", [f12], [t14])
    s15 = m.add("sig15", (1, 10))
    m.op("LOGISTIC", [f13], [s15])
    a16 = m.add("add16", (1, 10))
    m.op("ADD", [t14, s15], [a16], ("AddOptions", dict(FusedActivationFunction="NONE")))
    sm = m.add("softmax", (1, 10))
    m.op("SOFTMAX", [a16], [sm], ("SoftmaxOptions", dict(Beta=1.0)))
    m.inputs, m.outputs = [x], [sm, c6]
    return m


def int8_ops(seed: int = 0) -> ModelSpec:
    """An int8 model over the ops beyond the MLPerf Tiny files: CONV_2D (per-channel weights), RELU,
    PAD, MAX_POOL_2D, MUL, RELU6, CONCATENATION on channels, MEAN over W, LOGISTIC and TANH, with
    the quantization TFLite's converter gives them (LOGISTIC out 1/256, -128; TANH out 1/128, 0;
    PAD, MAX_POOL, CONCATENATION and RELU6 here keeping their input's)."""
    rng = np.random.default_rng(seed)
    m = ModelSpec()
    q = lambda s, z: (np.array([s], np.float32), np.array([z]), 0)  # noqa: E731
    x = m.add("input", (1, 6, 6, 3), np.int8, quant=q(0.05, -10))
    w_scale = (rng.uniform(0.5, 1.5, 4) * 0.01).astype(np.float32)
    w1 = m.add("w1", (4, 3, 3, 3), np.int8, data=rng.integers(-127, 128, (4, 3, 3, 3)),
               quant=(w_scale, np.zeros(4, int), 0))
    b1 = m.add("b1", (4,), np.int32, data=rng.integers(-2000, 2000, 4), quant=(w_scale * 0.05, np.zeros(4, int), 0))
    c1 = m.add("conv1", (1, 6, 6, 4), np.int8, quant=q(0.04, -5))
    m.op("CONV_2D", [x, w1, b1], [c1], ("Conv2DOptions", dict(Padding="SAME", StrideH=1, StrideW=1,
                                                           FusedActivationFunction="NONE")))
    r2 = m.add("relu2", (1, 6, 6, 4), np.int8, quant=q(0.03, -128))
    m.op("RELU", [c1], [r2])
    pads = m.add("pads", (4, 2), np.int32, data=np.array([[0, 0], [1, 1], [0, 1], [0, 0]]))
    p3 = m.add("pad3", (1, 8, 7, 4), np.int8, quant=q(0.03, -128))
    m.op("PAD", [r2, pads], [p3])
    mp4 = m.add("max4", (1, 4, 3, 4), np.int8, quant=q(0.03, -128))
    m.op("MAX_POOL_2D", [p3], [mp4], ("Pool2DOptions", dict(Padding="VALID", StrideH=2, StrideW=2,
                                                          FilterHeight=2, FilterWidth=2)))
    m5 = m.add("mul5", (1, 4, 3, 4), np.int8, quant=q(0.02, -100))
    m.op("MUL", [mp4, mp4], [m5], ("MulOptions", dict(FusedActivationFunction="NONE")))
    r6 = m.add("relu6_6", (1, 4, 3, 4), np.int8, quant=q(0.03, -128))
    m.op("RELU6", [mp4], [r6])
    cat7 = m.add("cat7", (1, 4, 3, 8), np.int8, quant=q(0.03, -128))
    m.op("CONCATENATION", [mp4, r6], [cat7], ("ConcatenationOptions", dict(Axis=3)))
    axes = m.add("axes", (1,), np.int32, data=np.array([2]))
    mean8 = m.add("mean8", (1, 4, 8), np.int8, quant=q(0.025, -20))
    m.op("MEAN", [cat7, axes], [mean8], ("ReducerOptions", dict(KeepDims=False)))
    sig9 = m.add("sig9", (1, 4, 3, 4), np.int8, quant=q(1 / 256, -128))
    m.op("LOGISTIC", [m5], [sig9])
    tanh10 = m.add("tanh10", (1, 4, 8), np.int8, quant=q(1 / 128, 0))
    m.op("TANH", [mean8], [tanh10])
    m.inputs, m.outputs = [x], [sig9, tanh10, cat7]
    return m
