"""Random valid small TFLite graphs (issue 9): a hypothesis strategy over the ops the .tflite front end
(plugins/tflite) imports, float or int8, written with tests/tflite/tflite_writer.py.

A graph is a chain from one NHWC input: spatial ops (CONV_2D, DEPTHWISE_CONV_2D, pools, PAD),
elementwise ones (activations, ADD and MUL with an earlier tensor or a per-channel constant),
CONCATENATION on channels, MEAN, then optionally RESHAPE to 2-D, FULLY_CONNECTED and SOFTMAX. int8
graphs follow the TFLite int8 quantization spec as TFLite's converter writes it (per-channel weight
scales with zero point 0, int32 biases of scale input x weight, LOGISTIC and SOFTMAX out 1/256 at
-128, TANH out 1/128 at 0, pools, PAD, RESHAPE, CONCATENATION and RELU6 keeping their input's
quantization), and sometimes a float input and output behind QUANTIZE / DEQUANTIZE. So TFLite Micro
runs every graph, and an int8 build in TFLite's arithmetic must match it bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from tests.tflite import tflite_writer as tw

ACTIVATIONS = ("NONE", "RELU", "RELU6")
#: Fixed output quantization (scale, zero point) of int8 ops whose output range is fixed.
FIXED_QUANT = {"LOGISTIC": (1 / 256, -128), "SOFTMAX": (1 / 256, -128), "TANH": (1 / 128, 0)}


@dataclass
class _Graph:
    """The spec being drawn, the current tensor, and whether it is int8."""

    spec: tw.ModelSpec
    int8: bool
    x: int = 0

    @property
    def shape(self) -> tuple[int, ...]:
        return self.spec.tensors[self.x].shape

    def quant(self, t: int | None = None):
        return self.spec.tensors[self.x if t is None else t].quant

    def add(self, name: str, shape, quant=None, same_quant: bool = False) -> int:
        """A new activation tensor (int8 with ``quant``, or its input's when ``same_quant``)."""
        if not self.int8:
            return self.spec.add(name, shape)
        return self.spec.add(name, shape, np.int8, quant=self.quant() if same_quant else quant)

    def push(self, op: str, inputs: list[int], shape, quant=None, options=None, same_quant=False) -> None:
        out = self.add(f"t{len(self.spec.tensors)}_{op.lower()}", shape, quant, same_quant)
        self.spec.op(op, inputs, [out], options)
        self.x = out


def _q(scale: float, zero_point: int):
    return (np.array([scale], np.float32), np.array([zero_point]), 0)


@st.composite
def _activation_quant(draw):
    """An int8 activation's quantization: scale 2^-7..2^-3-ish, zero point near the middle."""
    return _q(draw(st.sampled_from([0.01, 0.02, 0.035, 0.05, 0.08, 0.12])), draw(st.integers(-30, 30)))


def _weights(draw, g: _Graph, shape, out_axis: int, name: str) -> tuple[int, np.ndarray]:
    """Constant weights (int8 per-channel along ``out_axis`` in int8 graphs) and the per-channel scales."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    channels = shape[out_axis]
    if not g.int8:
        data = (rng.standard_normal(shape) * 0.5).astype(np.float32)
        return g.spec.add(name, shape, data=data), np.ones(channels)
    scales = (rng.uniform(0.5, 1.5, channels) * 0.01).astype(np.float32)
    data = rng.integers(-127, 128, shape)
    return g.spec.add(name, shape, np.int8, data=data, quant=(scales, np.zeros(channels, int), out_axis)), scales


def _bias(draw, g: _Graph, channels: int, w_scales: np.ndarray, name: str) -> int:
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    if not g.int8:
        return g.spec.add(name, (channels,), data=(rng.standard_normal(channels) * 0.5).astype(np.float32))
    scale = (w_scales * g.quant()[0][0]).astype(np.float32)
    return g.spec.add(name, (channels,), np.int32, data=rng.integers(-500, 500, channels),
                      quant=(scale, np.zeros(channels, int), 0))


def _out_hw(h: int, w: int, k: int, stride: int, padding: str) -> tuple[int, int]:
    if padding == "SAME":
        return -(-h // stride), -(-w // stride)
    return (h - k) // stride + 1, (w - k) // stride + 1


def _spatial(draw, g: _Graph, k_choices=(1, 2, 3)) -> tuple[int, int, str, int, int]:
    """Kernel, stride and padding that fit the current H and W: (k, stride, padding, out_h, out_w)."""
    _, h, w, _ = g.shape
    k = draw(st.sampled_from([k for k in k_choices if k <= min(h, w)]))
    stride = draw(st.sampled_from([1, 2]))
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    return (k, stride, padding, *_out_hw(h, w, k, stride, padding))


def conv(draw, g: _Graph) -> None:
    _, h, w, c = g.shape
    k, stride, padding, oh, ow = _spatial(draw, g)
    out_c = draw(st.integers(1, 4))
    wt, scales = _weights(draw, g, (out_c, k, k, c), 0, f"w{len(g.spec.tensors)}")
    b = _bias(draw, g, out_c, scales, f"b{len(g.spec.tensors)}")
    g.push("CONV_2D", [g.x, wt, b], (1, oh, ow, out_c), draw(_activation_quant()),
           ("Conv2DOptions", dict(Padding=padding, StrideH=stride, StrideW=stride,
                                  FusedActivationFunction=draw(st.sampled_from(ACTIVATIONS)))))


def depthwise(draw, g: _Graph) -> None:
    _, h, w, c = g.shape
    k, stride, padding, oh, ow = _spatial(draw, g, (1, 3))
    mult = draw(st.sampled_from([1, 2]))
    wt, scales = _weights(draw, g, (1, k, k, c * mult), 3, f"w{len(g.spec.tensors)}")
    b = _bias(draw, g, c * mult, scales, f"b{len(g.spec.tensors)}")
    g.push("DEPTHWISE_CONV_2D", [g.x, wt, b], (1, oh, ow, c * mult), draw(_activation_quant()),
           ("DepthwiseConv2DOptions", dict(Padding=padding, StrideH=stride, StrideW=stride, DepthMultiplier=mult,
                                           FusedActivationFunction=draw(st.sampled_from(ACTIVATIONS)))))


def pool(draw, g: _Graph) -> None:
    _, h, w, c = g.shape
    k, stride, padding, oh, ow = _spatial(draw, g, (1, 2, 3))
    g.push(draw(st.sampled_from(["AVERAGE_POOL_2D", "MAX_POOL_2D"])), [g.x], (1, oh, ow, c), same_quant=True,
           options=("Pool2DOptions", dict(Padding=padding, StrideH=stride, StrideW=stride, FilterHeight=k,
                                          FilterWidth=k)))


def pad(draw, g: _Graph) -> None:
    _, h, w, c = g.shape
    top, bottom, left, right = (draw(st.integers(0, 1)) for _ in range(4))
    pads = g.spec.add(f"pads{len(g.spec.tensors)}", (4, 2), np.int32,
                      data=np.array([[0, 0], [top, bottom], [left, right], [0, 0]]))
    g.push("PAD", [g.x, pads], (1, h + top + bottom, w + left + right, c), same_quant=True)


def unary(draw, g: _Graph) -> None:
    """An activation op; RELU6 keeps its input's quantization (TFLite Micro's clamps without
    rescaling; the importer refuses a RELU6 that would rescale), RELU may rescale."""
    op = draw(st.sampled_from(["RELU", "RELU6", "LOGISTIC", "TANH"]))
    quant = _q(*FIXED_QUANT[op]) if op in FIXED_QUANT else draw(_activation_quant())
    g.push(op, [g.x], g.shape, quant, same_quant=op == "RELU6")


def binary(draw, g: _Graph) -> None:
    """ADD or MUL of the current tensor with an earlier one of its shape (maybe itself) or with a
    per-channel constant."""
    same = [t for t, tensor in enumerate(g.spec.tensors)
            if tensor.shape == g.shape and tensor.data is None]
    if draw(st.booleans()):
        other = draw(st.sampled_from(same))
    else:
        c = g.shape[-1]
        rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
        if g.int8:
            other = g.spec.add(f"k{len(g.spec.tensors)}", (c,), np.int8, data=rng.integers(-127, 128, c),
                               quant=_q(0.02, 0))
        else:
            other = g.spec.add(f"k{len(g.spec.tensors)}", (c,), data=rng.standard_normal(c).astype(np.float32))
    op = draw(st.sampled_from(["ADD", "MUL"]))
    g.push(op, [g.x, other], g.shape, draw(_activation_quant()),
           (f"{op.capitalize()}Options", dict(FusedActivationFunction=draw(st.sampled_from(ACTIVATIONS)))))


def concat(draw, g: _Graph) -> None:
    """The current tensor concatenated with itself on channels (int8: one quantization throughout)."""
    n = draw(st.integers(2, 3))
    g.push("CONCATENATION", [g.x] * n, (*g.shape[:-1], g.shape[-1] * n), same_quant=True,
           options=("ConcatenationOptions", dict(Axis=3)))


def mean(draw, g: _Graph) -> None:
    """MEAN over H and W, keeping the dims (a global average pool)."""
    axes = g.spec.add(f"axes{len(g.spec.tensors)}", (2,), np.int32, data=np.array([1, 2]))
    g.push("MEAN", [g.x, axes], (1, 1, 1, g.shape[-1]), draw(_activation_quant()),
           ("ReducerOptions", dict(KeepDims=True)))


SPATIAL_STEPS = (conv, depthwise, pool, pad, unary, binary, concat, mean)


def head(draw, g: _Graph) -> None:
    """RESHAPE to [1, N], FULLY_CONNECTED, and maybe SOFTMAX."""
    size = int(np.prod(g.shape))
    shape = g.spec.add(f"shape{len(g.spec.tensors)}", (2,), np.int32, data=np.array([1, size]))
    g.push("RESHAPE", [g.x, shape], (1, size), same_quant=True, options=("ReshapeOptions", dict(NewShape=[1, size])))
    units = draw(st.integers(1, 8))
    wt, scales = _weights(draw, g, (units, size), 0, f"w{len(g.spec.tensors)}")
    b = _bias(draw, g, units, scales, f"b{len(g.spec.tensors)}")
    g.push("FULLY_CONNECTED", [g.x, wt, b], (1, units), draw(_activation_quant()),
           ("FullyConnectedOptions", dict(FusedActivationFunction=draw(st.sampled_from(ACTIVATIONS)))))
    if draw(st.booleans()):
        g.push("SOFTMAX", [g.x], (1, units), _q(*FIXED_QUANT["SOFTMAX"]), ("SoftmaxOptions", dict(Beta=1.0)))


@st.composite
def tflite_graphs(draw, int8: bool | None = None, max_ops: int = 5) -> tw.ModelSpec:
    """A random valid TFLite model spec (float, or int8 when ``int8``; either when None)."""
    int8 = draw(st.booleans()) if int8 is None else int8
    g = _Graph(tw.ModelSpec(), int8)
    shape = (1, draw(st.integers(2, 7)), draw(st.integers(2, 7)), draw(st.integers(1, 4)))
    float_io = int8 and draw(st.booleans())
    first = g.spec.add("input", shape) if float_io else g.add("input", shape, draw(_activation_quant()))
    g.x = first
    if float_io:
        g.push("QUANTIZE", [first], shape, draw(_activation_quant()))
    for _ in range(draw(st.integers(1, max_ops))):
        draw(st.sampled_from(SPATIAL_STEPS))(draw, g)
    if draw(st.booleans()):
        head(draw, g)
    if float_io:
        out = g.spec.add("output", g.shape)
        g.spec.op("DEQUANTIZE", [g.x], [out])
        g.x = out
    g.spec.inputs, g.spec.outputs = [first], [g.x]
    return g.spec


def describe(spec: tw.ModelSpec) -> str:
    """The graph as one line per op (shapes and quantization), for a finding's report."""
    def tensor(t: int) -> str:
        x = spec.tensors[t]
        q = "" if x.quant is None else f" q({float(np.atleast_1d(x.quant[0])[0]):.4g},{int(np.atleast_1d(x.quant[1])[0])})"
        return f"t{t}{list(x.shape)}{np.dtype(x.dtype).name}{q}{' const' if x.data is not None else ''}"

    lines = [f"inputs {[tensor(t) for t in spec.inputs]}"]
    lines += [f"{o.op}({', '.join(tensor(t) for t in o.inputs)}) -> {tensor(o.outputs[0])}"
              f"{' ' + str(o.options[1]) if o.options else ''}" for o in spec.ops]
    return "\n".join(lines)


def differential(spec: tw.ModelSpec, directory, samples: int = 2, timeout: float = 120.0) -> str | None:
    """`edgekit build --run` of the graph for the host (mcu-c under ASan/UBSan), which compares the
    run with onnxruntime and with TFLite Micro (the judge of int8 builds in TFLite's arithmetic).
    None when the build ran and TFLite Micro agrees; else what went wrong."""
    import json
    from pathlib import Path

    from tests.hardening.contract import check

    path, out = Path(directory) / "graph.tflite", Path(directory) / "out"
    path.write_bytes(tw.write(spec))
    outcome = check(path, out, ("--run", "--samples", str(samples)), timeout)
    if outcome.code != 0 or outcome.finding:
        return outcome.finding or f"exit {outcome.code}: {outcome.stderr.strip()}"
    run = json.loads((out / "report.json").read_text())["run"]
    tflm = run.get("references", {}).get("tflite")
    if tflm is None:
        return f"not compared with TFLite Micro: {run.get('reference_warnings')}"
    return None if tflm["agrees"] else f"differs from TFLite Micro: {tflm['summary']}"
