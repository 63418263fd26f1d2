"""Oracles for imported ``.tflite`` models, and the per-layer comparison against them.

* :class:`TflmOracle`: TensorFlow Lite Micro on the host (the ``tflite-micro`` PyPI package, its
  reference kernels; CMSIS-NN is bit-exact with them). With ``preserve=True`` every intermediate
  tensor is kept, so each operator's output can be read after an inference.
* :func:`litert_reference`: the TFLite interpreter (``ai-edge-litert``) with its reference kernels
  (``OpResolverType.BUILTIN_REF``; the default XNNPACK delegate rounds differently).
* :func:`layer_probe_model`: the converted ONNX model with every operator's output as an extra
  graph output (int8 through its DequantizeLinear, so an ``io=int8`` build returns the integers),
  and :func:`first_difference`, which walks the operators in order and names the first whose
  output differs from TFLite Micro's.

Both oracle packages are test dependencies (``edgekit[dev]``); importing this module needs neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgekit.plugins.tflite.convert import TO_NCHW, Converted
from edgekit.plugins.tflite.reader import Subgraph


#: Operators whose output is a view of their input.
VIEW_OPS = ("RESHAPE",)


#: TFLite Micro's bookkeeping in the arena beyond the tensors (per-op and per-tensor structs).
ARENA_OVERHEAD_BYTES = 64 * 1024


def arena_size(sg: Subgraph, file_bytes: int) -> int:
    """A tensor arena that holds every tensor at once (``preserve`` keeps them all), with room to
    spare. The tflite-micro package's default, 10x the file's size, is too small for a small model
    with large activations, and its interpreter then crashes the process (a segfault, not an error)."""
    tensors = sum(int(np.prod(t.shape, dtype=np.int64)) * np.dtype(t.dtype or np.float32).itemsize
                  for t in sg.tensors)
    return max(10 * file_bytes, 2 * tensors + ARENA_OVERHEAD_BYTES)


class TflmOracle:
    """TFLite Micro's interpreter for one model file."""

    def __init__(self, path: str | Path, preserve: bool = False):
        from tflite_micro.python.tflite_micro import runtime

        from edgekit.plugins.tflite.reader import read

        config = runtime.InterpreterConfig.kPreserveAllTensors if preserve else \
            runtime.InterpreterConfig.kAllocationRecording
        sg = read(path)
        self.interpreter = runtime.Interpreter.from_file(str(path), intrepreter_config=config,
                                                         arena_size=arena_size(sg, Path(path).stat().st_size))
        self.n_outputs = len(sg.outputs)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        for i, x in enumerate(inputs):
            self.interpreter.set_input(x, i)
        self.interpreter.invoke()
        return [np.array(self.interpreter.get_output(k)) for k in range(self.n_outputs)]

    def tensors(self, indices: list[int]) -> dict[int, np.ndarray]:
        """Tensors of the last inference (needs ``preserve=True``), by TFLite tensor index."""
        found = {}
        for t in indices:
            d = self.interpreter.GetTensor(t, 0)
            found[t] = np.array(d["tensor_data"]).reshape(d["shape"])
        return found


def litert_reference(path: str | Path):
    """A TFLite interpreter with the reference kernels, tensors allocated."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                              experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    return interpreter


def random_int8_inputs(sg: Subgraph, n: int, seed: int = 0) -> list[list[np.ndarray]]:
    """``n`` seeded random int8 input sets (uniform over [-128, 127]) in TFLite's shapes."""
    rng = np.random.default_rng(seed)
    return [[rng.integers(-128, 128, size=sg.tensors[t].shape, dtype=np.int8) for t in sg.inputs]
            for _ in range(n)]


def to_tflite_layout(conv: Converted, t: int, value: np.ndarray, shape) -> np.ndarray:
    """An ONNX-side value of TFLite tensor ``t`` in TFLite's shape (NCHW back to NHWC)."""
    if t in conv.nchw and len(shape) == 4:
        nchw = tuple(shape[p] for p in TO_NCHW)
        return np.asarray(value).reshape(nchw).transpose(0, 2, 3, 1)
    return np.asarray(value).reshape(shape)


def layer_probe_model(conv: Converted, sg: Subgraph) -> tuple[onnx.ModelProto, dict[str, int]]:
    """``conv.model`` with each operator's output (but views' and the graph outputs) also a graph
    output ``probe_op<index>_t<tensor>``;
    returns the model and probe output name -> TFLite tensor index. Float outputs are probed
    through an Identity."""
    model = onnx.ModelProto()
    model.CopyFrom(conv.model)
    graph = model.graph
    existing = {o.name for o in graph.output}
    probes: dict[str, int] = {}
    for index, op, outputs in conv.op_outputs:
        if op in VIEW_OPS:
            continue  # the same values as its input (and an alias the back end cannot output)
        for t in outputs:
            if t in sg.outputs:
                continue  # already a graph output
            name = f"probe_op{index}_t{t}"
            if t in conv.int8_names:
                quant = sg.tensors[t].quant
                s = numpy_helper.from_array(np.array(quant.scale[0], dtype=np.float32), name + "_s")
                z = numpy_helper.from_array(np.array(int(quant.zero_point[0]), dtype=np.int8), name + "_z")
                graph.initializer.extend([s, z])
                graph.node.append(helper.make_node("DequantizeLinear", [conv.int8_names[t], s.name, z.name],
                                                   [name], name=name))
            elif t in conv.float_names and conv.float_names[t] not in existing:
                graph.node.append(helper.make_node("Identity", [conv.float_names[t]], [name], name=name))
            else:
                continue
            graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                              _onnx_shape(conv, t, sg.tensors[t].shape)))
            probes[name] = t
    return model, probes


def _onnx_shape(conv: Converted, t: int, shape) -> list[int]:
    return [shape[p] for p in TO_NCHW] if t in conv.nchw and len(shape) == 4 else list(shape)


@dataclass
class LayerDiff:
    """The first operator whose output differs from TFLite Micro's."""

    op_index: int
    op: str
    tensor: int
    differing: int        # values that differ, over all inputs
    total: int
    max_lsb: int
    example: tuple        # (input number, TFLite-layout index, ours, TFLite Micro's)

    def __str__(self) -> str:
        k, where, ours, theirs = self.example
        return (f"operator {self.op_index} ({self.op}), tensor {self.tensor}: {self.differing} of {self.total} "
                f"values differ, by up to {self.max_lsb} LSB (input {k}, index {where}: ours {ours}, "
                f"TFLite Micro {theirs})")


def first_difference(conv: Converted, sg: Subgraph, ours: list[dict[int, np.ndarray]],
                     theirs: list[dict[int, np.ndarray]]) -> list[LayerDiff]:
    """Per operator, in order, the comparison of its int8 output with TFLite Micro's over all
    inputs; returns the differing operators (the first is the first differing layer)."""
    found = []
    for index, op, outputs in conv.op_outputs:
        for t in outputs:
            if t not in ours[0]:
                continue
            a = np.stack([o[t] for o in ours]).astype(np.int32)
            b = np.stack([th[t] for th in theirs]).astype(np.int32)
            diff = a != b
            if diff.any():
                k, *where = np.argwhere(diff)[0]
                found.append(LayerDiff(index, op, t, int(diff.sum()), int(diff.size),
                                       int(np.abs(a - b).max()),
                                       (int(k), tuple(int(w) for w in where), int(a[(k, *where)]),
                                        int(b[(k, *where)]))))
    return found


def layer_model(conv: Converted, sg: Subgraph, op_index: int) -> tuple[onnx.ModelProto, list[int], int]:
    """Operator ``op_index`` alone, cut out of ``conv.model``: one float graph input per activation
    input (in the ONNX layout, quantized by a QuantizeLinear with the tensor's own scale and zero
    point, so an ``io=int8`` build takes the integers) and one output (its int8 result through a
    DequantizeLinear). Returns (model, input tensor indices, output tensor index); it lets a run
    feed the operator TFLite Micro's own input, which isolates that operator's arithmetic."""
    from onnx.utils import Extractor

    op = sg.operators[op_index]
    ins = [t for t in op.inputs if t >= 0 and not sg.tensors[t].is_const and t in conv.int8_names]
    (out,) = op.outputs
    if out not in conv.int8_names or not ins:
        raise ValueError(f"operator {op_index} ({op.op}) has no int8 activation input/output")
    model = onnx.shape_inference.infer_shapes(conv.model)
    sub = Extractor(model).extract_model([conv.int8_names[t] for t in ins], [conv.int8_names[out]])
    nodes, inits, inputs = [], [], []
    for t in ins:
        quant = sg.tensors[t].quant
        name = f"in_t{t}"
        s = numpy_helper.from_array(np.array(quant.scale[0], dtype=np.float32), name + "_s")
        z = numpy_helper.from_array(np.array(int(quant.zero_point[0]), dtype=np.int8), name + "_z")
        inits += [s, z]
        nodes.append(helper.make_node("QuantizeLinear", [name, s.name, z.name], [conv.int8_names[t]], name=name))
        inputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                    _onnx_shape(conv, t, sg.tensors[t].shape)))
    nodes += list(sub.graph.node)
    quant = sg.tensors[out].quant
    s = numpy_helper.from_array(np.array(quant.scale[0], dtype=np.float32), "out_s")
    z = numpy_helper.from_array(np.array(int(quant.zero_point[0]), dtype=np.int8), "out_z")
    nodes.append(helper.make_node("DequantizeLinear", [conv.int8_names[out], "out_s", "out_z"], ["out"], name="out"))
    outputs = [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, _onnx_shape(conv, out, sg.tensors[out].shape))]
    graph = helper.make_graph(nodes, f"op{op_index}", inputs, outputs, [*sub.graph.initializer, *inits, s, z])
    layer = helper.make_model(graph, opset_imports=list(conv.model.opset_import))
    layer.ir_version = conv.model.ir_version
    layer.metadata_props.extend(conv.model.metadata_props)  # the int8 arithmetic the model asks for
    return layer, ins, out
