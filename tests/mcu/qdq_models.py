"""Small float models and their QDQ int8 versions, quantized by onnxruntime with the scheme the int8
kernels assume (int8 asymmetric activations, int8 symmetric per-channel weights, int32 bias)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


def quantize(model: onnx.ModelProto, input_shape: dict[str, tuple[int, ...]], samples: int = 8,
             seed: int = 0, exclude: tuple[str, ...] = (), per_channel: bool = True) -> onnx.ModelProto:
    """QDQ int8 version of ``model`` calibrated (MinMax) on seeded normal inputs."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(seed)
    data = [{k: rng.standard_normal(s).astype(np.float32) for k, s in input_shape.items()}
            for _ in range(samples)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(data)

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "f.onnx", Path(tmp) / "q.onnx"
        onnx.save(model, src)
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=per_channel,
                        nodes_to_exclude=list(exclude))
        return onnx.load(dst)


def _model(nodes, inputs, outputs, inits) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def _t(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def _w(rng, name, shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def conv_block(seed: int = 0, depthwise: bool = False) -> onnx.ModelProto:
    """Conv+Relu -> (depthwise) Conv -> Add residual -> MaxPool -> GlobalAveragePool -> Flatten -> Gemm
    -> Softmax: every int8 kernel family of a small CNN."""
    rng = np.random.default_rng(seed)
    c = 8
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1],
                         group=c if depthwise else 1),
        helper.make_node("Add", ["c2", "r1"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("AveragePool", ["p"], ["ap"], name="avg", kernel_shape=[2, 2], strides=[1, 1]),
        helper.make_node("GlobalAveragePool", ["ap"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=-1),
    ]
    inits = [_w(rng, "w1", (c, 3, 3, 3)), _w(rng, "b1", (c,), 0.1),
             _w(rng, "w2", (c, 1 if depthwise else c, 3, 3)), _w(rng, "b2", (c,), 0.1),
             _w(rng, "wf", (10, c)), _w(rng, "bf", (10,), 0.1)]
    return _model(nodes, [_t("x", (1, 3, 12, 12))], [_t("y", (1, 10))], inits)


def mlp(seed: int = 0) -> onnx.ModelProto:
    """MatMul+Add+Relu -> Gemm -> Sigmoid (a lookup table) -> Mul by a constant."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m"], name="mm"),
        helper.make_node("Add", ["m", "b1"], ["h"], name="bias"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["z"], name="fc2"),
        helper.make_node("Sigmoid", ["z"], ["s"], name="sigmoid"),
        helper.make_node("Mul", ["s", "k"], ["y"], name="scale"),
    ]
    inits = [_w(rng, "w1", (20, 24)), _w(rng, "b1", (24,), 0.1), _w(rng, "w2", (24, 6)),
             _w(rng, "b2", (6,), 0.1), _w(rng, "k", (6,), 1.0)]
    return _model(nodes, [_t("x", (3, 20))], [_t("y", (3, 6))], inits)


def residual_block(seed: int = 0) -> onnx.ModelProto:
    """Conv -> [Conv+Relu -> Conv] + skip -> Relu -> GlobalAveragePool -> Gemm: ResNet's block, whose
    Add the back end runs as the second conv's epilogue, in place over the skip tensor."""
    rng = np.random.default_rng(seed)
    c = 8
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["a"], name="stem_relu"),
        helper.make_node("Conv", ["a", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["a", "c2"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], name="fc", transB=1),
    ]
    inits = [_w(rng, "w0", (c, 3, 3, 3)), _w(rng, "b0", (c,), 0.1), _w(rng, "w1", (c, c, 3, 3), 0.2),
             _w(rng, "b1", (c,), 0.1), _w(rng, "w2", (c, c, 3, 3), 0.2), _w(rng, "b2", (c,), 0.1),
             _w(rng, "wf", (5, c)), _w(rng, "bf", (5,), 0.1)]
    return _model(nodes, [_t("x", (1, 3, 10, 10))], [_t("y", (1, 5))], inits)
