"""Model preparation for code generation: static shapes, constant folding, BatchNorm folding.

The core's pipeline already folded constants, but the back end must not depend on it, so this
module runs its own cheap, defensive clean-up on a copy:

* ``Constant`` nodes become initializers; ``Shape``/``Size`` of statically shaped tensors become
  constants; any other node whose inputs are all constant is evaluated once with
  ``onnx.reference.ReferenceEvaluator`` (generic constant folding, no per-op code).
* strict shape inference, then every value must have a static shape (``BuildError`` otherwise).
* inference BatchNormalization directly after a Conv whose output feeds only it is folded into the
  Conv's weights and bias (``w' = w * s``, ``b' = (b - mean) * s + beta``, ``s = gamma/sqrt(var+eps)``).

:class:`GraphView` then answers what the lowering needs: shapes, constants, consumers, attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from edgekit.errors import BuildError

# Ops that are never folded even with constant inputs (they have no inputs or are nondeterministic,
# or, for DequantizeLinear, because the integer weights and their scales are what int8 kernels need:
# GraphView exposes them as QConst and still answers const() with the dequantized floats).
_NO_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
            "Bernoulli", "DequantizeLinear"}


def opset_of(model: onnx.ModelProto, domain: str = "") -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and domain == "":
            return imp.version
        if imp.domain == domain:
            return imp.version
    return 1


def _tensor_shape(vi: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in vi.type.tensor_type.shape.dim:
        if not d.HasField("dim_value") or d.dim_value < 0:
            return None
        dims.append(int(d.dim_value))
    return tuple(dims)


def _infer(model: onnx.ModelProto, where: str) -> onnx.ModelProto:
    try:
        return shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError / ValidationError with long texts
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BuildError(f"{where}: ONNX shape inference failed ({first}); give static input shapes "
                         f"with --input-shape or fix the model") from None


def _fold_constants(model: onnx.ModelProto) -> None:
    """Turn Constant nodes and nodes with only constant inputs into initializers (in place)."""
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    graph_inputs = {i.name for i in graph.input} - set(consts)
    shapes = {vi.name: _tensor_shape(vi) for vi in list(graph.value_info) + list(graph.input)}
    opset = opset_of(model)
    kept = []
    for node in graph.node:
        value = None
        if node.domain not in ("", "ai.onnx") or node.op_type in _NO_FOLD:
            kept.append(node)
            continue
        if node.op_type == "Constant":
            value = [_constant_value(node)]
        elif node.op_type in ("Shape", "Size") and shapes.get(node.input[0]) is not None:
            shape = np.array(shapes[node.input[0]], dtype=np.int64)
            if node.op_type == "Size":
                value = [np.array(int(np.prod(shape)), dtype=np.int64)]
            else:
                attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
                start, end = attrs.get("start", 0), attrs.get("end", len(shape))
                value = [shape[start:end]]
        elif node.input and all((not n) or n in consts for n in node.input) and \
                not any(n in graph_inputs for n in node.input):
            try:
                single = helper.make_model(
                    helper.make_graph([node], "fold", [], [helper.make_tensor_value_info(o, 0, None)
                                                           for o in node.output if o],
                                      [numpy_helper.from_array(consts[n], n) for n in node.input if n]),
                    opset_imports=[helper.make_opsetid("", opset)])
                value = ReferenceEvaluator(single).run(None, {})
            except Exception:  # not foldable here: keep the node, the lowering decides
                value = None
        if value is None:
            kept.append(node)
            continue
        for name, array in zip([o for o in node.output], value):
            if name:
                consts[name] = np.asarray(array)
                graph.initializer.append(numpy_helper.from_array(np.asarray(array), name))
    del graph.node[:]
    graph.node.extend(kept)


def _constant_value(node: onnx.NodeProto) -> np.ndarray:
    attr = node.attribute[0]
    if attr.name == "value":
        return numpy_helper.to_array(attr.t)
    v = helper.get_attribute_value(attr)
    dtype = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
             "value_ints": np.int64}.get(attr.name)
    if dtype is None:
        raise BuildError(f"node '{node.name}': Constant with attribute '{attr.name}' is not supported")
    return np.array(v, dtype=dtype)


def _fold_batchnorm_into_conv(model: onnx.ModelProto) -> None:
    """Fold inference BatchNormalization into the Conv feeding it (in place)."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for n in node.input:
            consumers[n] = consumers.get(n, 0) + 1
    outputs = {o.name for o in graph.output}
    producer = {o: node for node in graph.node for o in node.output}
    drop = []
    for bn in graph.node:
        if bn.op_type != "BatchNormalization" or len([o for o in bn.output if o]) != 1:
            continue
        conv = producer.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or consumers.get(bn.input[0]) != 1 \
                or bn.input[0] in outputs:
            continue
        if not all(n in inits for n in bn.input[1:5]) or conv.input[1] not in inits or \
                (len(conv.input) > 2 and conv.input[2] and conv.input[2] not in inits):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in bn.attribute}
        if attrs.get("training_mode", 0):
            continue
        eps = float(attrs.get("epsilon", 1e-5))
        gamma, beta, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64)
                                  for n in bn.input[1:5])
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        if any(v.size != w.shape[0] for v in (gamma, beta, mean, var)):
            continue  # inconsistent: leave it to the BatchNormalization lowering to report
        scale = gamma / np.sqrt(var + eps)
        b = (numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64).reshape(-1)
             if len(conv.input) > 2 and conv.input[2] else np.zeros(w.shape[0]))
        if b.size != w.shape[0]:
            continue
        w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        b = (b - mean) * scale + beta
        w_name, b_name = f"{conv.input[1]}__bnfold", f"{conv.input[1]}__bnfold_bias"
        graph.initializer.extend([numpy_helper.from_array(w.astype(np.float32), w_name),
                                  numpy_helper.from_array(b.astype(np.float32), b_name)])
        del conv.input[1:]
        conv.input.extend([w_name, b_name])
        conv.output[0] = bn.output[0]
        drop.append(bn)
    for bn in drop:
        graph.node.remove(bn)


def prepare(model: onnx.ModelProto, where: str = "model") -> onnx.ModelProto:
    """A shape-inferred, constant-folded, BatchNorm-folded copy of ``model``."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    # IR >= 4 lets initializers exist without a matching graph input; same semantics otherwise.
    model.ir_version = max(model.ir_version, 4)
    model = _infer(model, where)
    for _ in range(3):  # folding can make more shapes known and more nodes foldable
        before = len(model.graph.node)
        _fold_constants(model)
        model = _infer(model, where)
        if len(model.graph.node) == before:
            break
    _fold_batchnorm_into_conv(model)
    # Inputs that have an initializer are constants (IR < 4 lists them as inputs too).
    init_names = {t.name for t in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in init_names]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    return model


@dataclass
class QConst:
    """A quantized constant: the output of DequantizeLinear on constant inputs, kept unfolded."""

    values: np.ndarray          # the integers (int4/uint4 widened to int8/uint8)
    scale: np.ndarray           # float32: scalar, [C] along ``axis``, or blocked along ``axis``
    zero_point: np.ndarray | None
    axis: int
    block_size: int             # 0: per tensor or per axis
    onnx_dtype: int             # TensorProto type of the stored integers

    def dequantized(self) -> np.ndarray:
        return dequantize_linear(self.values, self.scale, self.zero_point, self.axis, self.block_size)


def _expand_quant_param(param: np.ndarray, shape: tuple[int, ...], axis: int, block_size: int) -> np.ndarray:
    """Scale/zero point broadcast to the data's shape (per tensor, per axis or blocked)."""
    param = np.asarray(param)
    if param.ndim == 0 or param.size == 1 and len(shape) != param.ndim:
        return param.reshape(())
    if block_size:
        return np.repeat(param, block_size, axis=axis).take(range(shape[axis]), axis=axis)
    view = [1] * len(shape)
    view[axis] = -1
    return param.reshape(view)


def dequantize_linear(values, scale, zero_point, axis: int, block_size: int) -> np.ndarray:
    """ONNX DequantizeLinear (per tensor, per axis, blocked) in float32."""
    values = np.asarray(values)
    axis = axis % max(values.ndim, 1)
    s = _expand_quant_param(np.asarray(scale, dtype=np.float32), values.shape, axis, block_size)
    q = values.astype(np.int32)
    if zero_point is not None:
        q = q - _expand_quant_param(np.asarray(zero_point).astype(np.int32), values.shape, axis,
                                    block_size)
    return (q.astype(np.float32) * s).astype(np.float32)


def _qconst_of(node: onnx.NodeProto, constants: dict[str, np.ndarray], dtypes: dict[str, int]) -> QConst:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    values = constants[node.input[0]]
    zp = constants[node.input[2]] if len(node.input) > 2 and node.input[2] else None
    if values.dtype.itemsize == 1 and values.dtype.kind not in "iu":  # int4/uint4 from ml_dtypes
        widened = np.int8 if dtypes.get(node.input[0]) == onnx.TensorProto.INT4 else np.uint8
        values = values.astype(widened)
        zp = zp.astype(widened) if zp is not None else None
    return QConst(values=values, scale=np.asarray(constants[node.input[1]], dtype=np.float32),
                  zero_point=zp, axis=int(attrs.get("axis", 1)) % max(values.ndim, 1),
                  block_size=int(attrs.get("block_size", 0)),
                  onnx_dtype=dtypes.get(node.input[0], 0))


@dataclass
class GraphView:
    """Read-only queries over a prepared model."""

    model: onnx.ModelProto
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    dtypes: dict[str, int] = field(default_factory=dict)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)
    producers: dict[str, onnx.NodeProto] = field(default_factory=dict)
    qconsts: dict[str, QConst] = field(default_factory=dict)
    opset: int = 1

    @classmethod
    def of(cls, model: onnx.ModelProto) -> GraphView:
        view = cls(model=model, opset=opset_of(model))
        graph = model.graph
        for t in graph.initializer:
            arr = numpy_helper.to_array(t)
            view.constants[t.name] = arr
            view.shapes[t.name] = tuple(int(d) for d in arr.shape)
            view.dtypes[t.name] = t.data_type
        for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
            shape = _tensor_shape(vi)
            if shape is not None:
                view.shapes.setdefault(vi.name, shape)
            if vi.type.HasField("tensor_type"):
                view.dtypes.setdefault(vi.name, vi.type.tensor_type.elem_type)
        for node in graph.node:
            for n in node.input:
                if n:
                    view.consumers.setdefault(n, []).append(node)
            for n in node.output:
                if n:
                    view.producers[n] = node
            if node.op_type == "DequantizeLinear" and node.domain in ("", "ai.onnx") and \
                    all(not n or n in view.constants for n in node.input):
                q = _qconst_of(node, view.constants, view.dtypes)
                view.qconsts[node.output[0]] = q
                view.constants[node.output[0]] = q.dequantized()
        return view

    def shape(self, name: str, node: onnx.NodeProto | None = None) -> tuple[int, ...]:
        if name not in self.shapes:
            where = f"node '{node.name}' ({node.op_type}): " if node is not None else ""
            raise BuildError(f"{where}tensor '{name}' has no static shape; the mcu-c back end needs "
                             f"static shapes (give --input-shape)")
        return self.shapes[name]

    def const(self, name: str) -> np.ndarray | None:
        return self.constants.get(name) if name else None

    def is_const(self, name: str) -> bool:
        return bool(name) and name in self.constants

    def qconst(self, name: str) -> QConst | None:
        """The integers behind a constant that a DequantizeLinear produces, else None."""
        return self.qconsts.get(name) if name else None

    def producer(self, name: str) -> onnx.NodeProto | None:
        return self.producers.get(name)

    @property
    def graph_outputs(self) -> list[str]:
        return [o.name for o in self.model.graph.output]


def attrs_of(node: onnx.NodeProto) -> dict[str, Any]:
    """Node attributes as Python values (strings decoded)."""
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        out[a.name] = v
    return out
