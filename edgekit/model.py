"""Model IR helpers every pass and back end shares: loading with clear errors, initializer access,
static shapes, statistics (nodes, parameters, MACs) and pattern rewriting through onnxscript.

Passes work on ``onnx.ModelProto``; where a rewrite is best expressed as a pattern, :func:`rewrite`
runs onnxscript's pattern rewriter on an onnx-ir copy and hands back a ModelProto.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from edgekit.errors import BuildError, UsageError, one_line
from edgekit.passes import ModelStats

# onnxruntime 1.31 refuses newer IR versions than this, though onnx 1.23 can write them.
RUNTIME_MAX_IR_VERSION = 13
MIN_OPSET = 11
# onnxruntime 1.31 refuses default-domain opsets newer than this ("under development" in onnx 1.23).
RUNTIME_MAX_OPSET = 26


def op_key(node: onnx.NodeProto) -> str:
    """``"Conv"`` for the default ONNX domain, ``"domain::Op"`` otherwise."""
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


def fresh_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base_1``, ``base_2``... : the first not in ``taken``, which it is added to."""
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def load_model(path: str | Path) -> onnx.ModelProto:
    """Load and validate an ONNX file; every failure is a one-line :class:`UsageError` naming the file."""
    from edgekit.userfiles import regular_file

    path = regular_file(Path(path), expected="an .onnx file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    if not data:
        raise UsageError(f"{path}: empty file, not an ONNX model")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # protobuf raises DecodeError, sometimes RuntimeWarning-like errors
        raise UsageError(f"{path}: not an ONNX model or truncated ({one_line(exc)})") from None
    if not model.HasField("graph") or not model.graph.output:
        raise UsageError(f"{path}: not an ONNX model (no graph or no outputs); is the file truncated?")
    try:
        from onnx.external_data_helper import load_external_data_for_model, uses_external_data

        if any(uses_external_data(t) for t in model.graph.initializer):
            load_external_data_for_model(model, str(path.parent))
    except Exception as exc:
        raise UsageError(f"{path}: cannot load external weights ({one_line(exc)})") from None
    validate(model, str(path))
    return model


#: IR 4 dropped the rule that every initializer is also a graph input. Passes (onnx_ir's, and ours)
#: remove unused inputs and add initializers freely, which makes an IR-3 model invalid ("X in
#: initializer but not in graph input"); old exports and onnx.version_converter output are IR 3.
MIN_IR_VERSION = 4


def raise_ir_version(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` at IR version 4 or newer, in place. IR 3 forced every initializer to be listed as a
    graph input too; those are the model's weights (``graph_inputs`` skips them), so they leave the
    input list, where IR 4 would read them as overridable and constant folding would not fold them."""
    if model.ir_version < MIN_IR_VERSION:
        init_names = {t.name for t in model.graph.initializer}
        kept = [i for i in model.graph.input if i.name not in init_names]
        del model.graph.input[:]
        model.graph.input.extend(kept)
        model.ir_version = MIN_IR_VERSION
    return model


def validate(model: onnx.ModelProto, where: str) -> None:
    """Everything edgekit needs of an input model, as one-line UsageErrors naming what is wrong:
    ``onnx.checker`` with strict type and shape checks (cycles, wrong dtypes), a minimum opset, ops
    that ONNX or onnxruntime define (the reference every build is verified against), finite weights."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # ValidationError, InferenceError, and ValueError for oversize protos
        raise UsageError(f"{where}: invalid ONNX model ({one_line(exc)})") from None
    opset = default_opset(model)
    if opset and opset < MIN_OPSET:
        raise UsageError(f"{where}: opset {opset} is older than {MIN_OPSET}; re-export with a newer opset "
                         f"or convert with onnx.version_converter")
    if opset > RUNTIME_MAX_OPSET:
        raise UsageError(f"{where}: opset {opset} is newer than {RUNTIME_MAX_OPSET}, the newest onnxruntime "
                         f"(which verifies every build) supports; re-export with opset {RUNTIME_MAX_OPSET} or older")
    outputs = [o.name for o in model.graph.output]
    twice = next((name for k, name in enumerate(outputs) if name in outputs[:k]), None)
    if twice is not None:
        raise UsageError(f"{where}: graph output '{twice}' is listed more than once; list each output once")
    from edgekit.verify import onnxruntime_ops

    known = onnxruntime_ops()
    for node in model.graph.node:
        if op_key(node) not in known and not onnx.defs.has(node.op_type, node.domain):
            raise UsageError(f"{where}: node '{node.name}' uses op '{op_key(node)}', which neither ONNX nor "
                             f"onnxruntime defines; edgekit verifies every model with onnxruntime")
    for what, tensor in _constant_tensors(model):
        values = _constant_values(tensor, what, where)
        if tensor.data_type in _FLOAT_TYPES:
            if not np.isfinite(values).all():
                bad = int(np.size(values) - np.isfinite(values).sum())
                raise UsageError(f"{where}: {what} has {bad} NaN or Inf value(s); "
                                 f"fix the training or export that produced them")


def _constant_tensors(model: onnx.ModelProto) -> Iterable[tuple[str, onnx.TensorProto]]:
    """The graph's constant data, each with how a message names it: its initializers, and the value
    of its Constant nodes (which exporters write weights as too)."""
    for tensor in model.graph.initializer:
        yield f"weight tensor '{tensor.name}'", tensor
    for node in model.graph.node:
        if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
            continue
        what = f"Constant node '{node.name or node.output[0]}'"
        for attr in node.attribute:
            if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                yield what, attr.t
            elif attr.name in ("value_float", "value_floats"):
                yield what, numpy_helper.from_array(np.array(onnx.helper.get_attribute_value(attr), np.float32))


def _constant_values(tensor: onnx.TensorProto, what: str, where: str) -> np.ndarray:
    """Constant data as an array; data that does not fit its dims and type (which onnx.checker lets
    through) is a UsageError naming the tensor, not a numpy error from the first pass to read it."""
    try:
        return numpy_helper.to_array(tensor)
    except Exception as exc:  # ValueError (size), TypeError and KeyError (type) from numpy_helper
        types = onnx.TensorProto.DataType
        kind = types.Name(tensor.data_type) if tensor.data_type in types.values() else tensor.data_type
        raise UsageError(f"{where}: {what} (dims {list(tensor.dims)}, type {kind}): its "
                         f"data does not match its dims and type ({one_line(exc)})") from None


_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
                onnx.TensorProto.BFLOAT16}


# ---------------------------------------------------------------------------------------------------
# Initializers
# ---------------------------------------------------------------------------------------------------

def initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer}


def initializer_array(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    for tensor in model.graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    return None


def set_initializer(model: onnx.ModelProto, name: str, array: np.ndarray) -> None:
    """Replace (or add) the initializer ``name`` with ``array``."""
    tensor = numpy_helper.from_array(np.ascontiguousarray(array), name)
    for i, existing in enumerate(model.graph.initializer):
        if existing.name == name:
            model.graph.initializer[i].CopyFrom(tensor)
            return
    model.graph.initializer.append(tensor)


def parameter_count(model: onnx.ModelProto) -> int:
    return sum(math.prod(t.dims) for t in model.graph.initializer)


# ---------------------------------------------------------------------------------------------------
# Inputs and shapes
# ---------------------------------------------------------------------------------------------------

def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Real inputs: old IR versions also list initializers as graph inputs."""
    init_names = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in init_names]


def tensor_dims(value: onnx.ValueInfoProto) -> list[int | str | None]:
    """Dims of a value: ints where static, the symbolic name or None where dynamic."""
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim]


def is_dynamic_dim(dim: int | str | None) -> bool:
    """Whether a dim (as :func:`tensor_dims` gives it) is left to the user: exporters spell a dynamic
    dim as a name (dim_param), no value at all, ``-1`` (paddle2onnx, some TensorFlow converters) or
    ``0``. ``--input-shape`` fixes these; any other dim is fixed and must match it."""
    return not isinstance(dim, int) or dim <= 0


def _shown_dim(dim: int | str | None) -> int | str:
    """A dim as messages show it: its size or name, '?' for a dynamic dim without a name."""
    return dim if isinstance(dim, str) or not is_dynamic_dim(dim) else "?"


def numpy_dtype(value: onnx.ValueInfoProto) -> np.dtype:
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))


#: the largest dim --input-shape takes: a tensor of int8 with it alone reaches MAX_TENSOR_BYTES
MAX_DIM = 2**31 - 1


def parse_shape(text: str) -> tuple[str | None, list[int]]:
    """``"1,3,32,32"``, ``"1x3x32x32"`` or ``"input_1=1,3,32,32"`` → (name or None, dims)."""
    name, _, dims = text.rpartition("=") if "=" in text else (None, "", text)
    try:
        values = [int(d) for d in dims.replace("x", ",").split(",") if d.strip()]
    except ValueError:
        values = []
    if not values or any(v <= 0 for v in values):
        raise UsageError(f"--input-shape '{text}': expected positive dims like 1,3,32,32 or name=1,3,32,32")
    too_large = next((v for v in values if v > MAX_DIM), None)
    if too_large is not None:  # ONNX dims are int64; no buildable tensor comes near this anyway
        raise UsageError(f"--input-shape '{text}': dim {too_large} is too large; each dim is at most "
                         f"{MAX_DIM:,} (and a whole tensor at most {MAX_TENSOR_BYTES:,} bytes)")
    return (name or None), values


def fix_input_shapes(model: onnx.ModelProto, shapes: Sequence[str], where: str) -> onnx.ModelProto:
    """Apply ``--input-shape`` values and refuse dynamic dims that remain, naming them."""
    inputs = graph_inputs(model)
    for text in shapes:
        name, dims = parse_shape(text)
        if name is None:
            if len(inputs) != 1:
                raise UsageError(f"--input-shape '{text}': the model has {len(inputs)} inputs "
                                 f"({', '.join(i.name for i in inputs)}); write name=dims")
            value = inputs[0]
        else:
            value = next((i for i in inputs if i.name == name), None)
            if value is None:
                raise UsageError(f"--input-shape '{text}': the model has no input '{name}' "
                                 f"(inputs: {', '.join(i.name for i in inputs)})")
        current = tensor_dims(value)
        if current and len(current) != len(dims):
            raise UsageError(f"--input-shape '{text}': input '{value.name}' has rank {len(current)}, "
                             f"not {len(dims)}")
        for existing, new in zip(current, dims):
            if not is_dynamic_dim(existing) and existing != new:
                shown = [d if not is_dynamic_dim(d) else "?" for d in current]
                raise UsageError(f"--input-shape '{text}': input '{value.name}' has fixed dims {shown}, "
                                 f"which {dims} contradicts; keep the fixed dims and set only the '?' ones")
        value.type.tensor_type.shape.Clear()
        for d in dims:
            value.type.tensor_type.shape.dim.add().dim_value = d
    empty = [(i.name, tensor_dims(i)) for i in inputs if 0 in tensor_dims(i)]
    if empty:
        name, dims = empty[0]
        raise UsageError(f"{where}: input '{name}' {dims} is zero-size (a dimension is 0); edgekit builds "
                         f"models whose tensors hold data: give a size with --input-shape {name}=...")
    dynamic = [(i.name, tensor_dims(i)) for i in inputs
               if not i.type.tensor_type.HasField("shape")
               or any(is_dynamic_dim(d) for d in tensor_dims(i))]
    if dynamic:
        described = "; ".join(f"'{n}' {[_shown_dim(d) for d in dims] or 'unknown shape'}"
                              for n, dims in dynamic)
        raise UsageError(f"{where}: dynamic input dims in {described}; give static ones with "
                         f"--input-shape {dynamic[0][0]}=1,...")
    check_tensor_sizes(model, where)
    return model


#: The largest tensor edgekit builds: memory plans, arenas and the generated C address bytes with
#: 32-bit offsets (and no microcontroller or phone model comes near it).
MAX_TENSOR_BYTES = 2**31 - 1


def check_tensor_sizes(model: onnx.ModelProto, where: str) -> None:
    """Refuse, naming it, any tensor (input, inferred intermediate or output, weight) larger than
    MAX_TENSOR_BYTES: before anything allocates it."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # validation reports broken models; here only the sizes matter
        inferred = model
    graph = inferred.graph
    sized = [(v.name, tensor_dims(v), v.type.tensor_type.elem_type) for v in [*graph.input, *graph.value_info,
                                                                           *graph.output]
             if v.type.HasField("tensor_type")]
    sized += [(t.name, list(t.dims), t.data_type) for t in graph.initializer]
    for name, dims, elem_type in sized:
        if not dims or not all(isinstance(d, int) and d > 0 for d in dims) or not elem_type:
            continue
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).itemsize
        nbytes = math.prod(dims) * itemsize
        if nbytes > MAX_TENSOR_BYTES:
            raise UsageError(f"{where}: tensor '{name}' {dims} would take {nbytes:,} bytes, more than the "
                             f"{MAX_TENSOR_BYTES:,} a build can address (32-bit arena offsets); use smaller "
                             f"input shapes (--input-shape) or split the model")


def infer_shapes(model: onnx.ModelProto, strict: bool = True) -> onnx.ModelProto:
    """ONNX shape inference with data propagation; strict errors become BuildError."""
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=strict, data_prop=True)
    except Exception as exc:
        raise BuildError(f"shape inference failed: {one_line(exc)}") from None


def value_shapes(model: onnx.ModelProto) -> dict[str, list[int | str | None]]:
    """Dims of every value whose shape is known (inputs, outputs, intermediates, initializers)."""
    shapes: dict[str, list[int | str | None]] = {}
    graph = model.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        if value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape"):
            shapes[value.name] = tensor_dims(value)
    for tensor in graph.initializer:
        shapes[tensor.name] = list(tensor.dims)
    return shapes


# ---------------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------------

def _static(dims: Iterable[Any] | None) -> list[int] | None:
    dims = list(dims) if dims is not None else None
    return dims if dims is not None and all(isinstance(d, int) and d > 0 for d in dims) else None


def node_macs(node: onnx.NodeProto, shapes: dict[str, list]) -> int:
    """Multiply-accumulates of one node (0 for ops without a MAC-dominated cost or unknown shapes)."""
    def shape(i: int, outputs: bool = False) -> list[int] | None:
        names = node.output if outputs else node.input
        return _static(shapes.get(names[i])) if i < len(names) and names[i] else None

    op = node.op_type
    out = shape(0, outputs=True)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if op == "Conv":
        w = shape(1)
        return math.prod(out) * math.prod(w[1:]) if out and w else 0
    if op == "ConvTranspose":
        x, w = shape(0), shape(1)
        return math.prod(x) * math.prod(w[1:]) if x and w else 0
    if op == "Gemm":
        a = shape(0)
        if not (a and out):
            return 0
        k = a[0] if attrs.get("transA", 0) else a[-1]
        return math.prod(out) * k
    if op == "MatMul":
        a = shape(0)
        return math.prod(out) * a[-1] if a and out else 0
    if op in ("LSTM", "GRU", "RNN"):
        x, w, r = shape(0), shape(1), shape(2)
        if not (x and w and r):
            return 0
        seq, batch = x[0], x[1]
        dirs, gates_hidden, inputs = w
        return seq * batch * dirs * gates_hidden * (inputs + r[-1])
    return 0


def model_stats(model: onnx.ModelProto) -> ModelStats:
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # statistics must never fail a build; MACs of unknown shapes count 0
        inferred = model
    shapes = value_shapes(inferred)
    return ModelStats(nodes=len(model.graph.node), parameters=parameter_count(model),
                      macs=sum(node_macs(n, shapes) for n in inferred.graph.node))


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[op_key(node)] = counts.get(op_key(node), 0) + 1
    return dict(sorted(counts.items()))


# ---------------------------------------------------------------------------------------------------
# Runtime compatibility and pattern rewriting
# ---------------------------------------------------------------------------------------------------

def for_runtime(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy onnxruntime accepts (IR version capped)."""
    if model.ir_version <= RUNTIME_MAX_IR_VERSION:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.ir_version = RUNTIME_MAX_IR_VERSION
    return copy


def rewrite(model: onnx.ModelProto, rules: Sequence[Any]) -> tuple[onnx.ModelProto, int]:
    """Apply onnxscript pattern rewrite rules; returns the new model and the number of matches."""
    import onnx_ir as ir
    from onnxscript.rewriter import pattern

    rule_set = rules if isinstance(rules, pattern.RewriteRuleSet) else pattern.RewriteRuleSet(list(rules))
    ir_model = ir.serde.deserialize_model(model)
    count = rule_set.apply_to_model(ir_model)
    if not count:
        return model, 0
    return ir.serde.serialize_model(ir_model), count
