"""Mutations of model files for front-end fuzzing (issue 9): byte-level (truncation, flips,
insertions, deletions) for any format, and structure-aware ones that decode the file first: ONNX
through its protobuf (dims, dtypes, initializers, dangling names, attributes, opsets, cycles), TFLite
by patching fields of the flatbuffer in place (shapes, types, buffer and opcode indices, quantization
scales and zero points, operator options, and the offsets themselves), so the result is a file a
user could plausibly hand edgekit: almost valid, wrong in one place.

Every mutation is ``(data, rng) -> (data, description)``; the description and the seed of ``rng``
reproduce the input exactly (:func:`mutate`).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

Mutation = Callable[[bytes, random.Random], tuple[bytes, str]]

# -- bytes ----------------------------------------------------------------------------------------


def truncate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """A download or copy that stopped early."""
    at = rng.randrange(len(data))
    return data[:at], f"truncated at byte {at} of {len(data)}"


def flip_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Bit rot: 1 to 8 bytes replaced by random ones."""
    out = bytearray(data)
    spots = sorted(rng.randrange(len(out)) for _ in range(rng.randint(1, 8)))
    for at in spots:
        out[at] = rng.randrange(256)
    return bytes(out), f"bytes replaced at {spots}"


def insert_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Stray bytes spliced in: every offset after them points elsewhere."""
    at, n = rng.randrange(len(data) + 1), rng.randint(1, 16)
    return data[:at] + rng.randbytes(n) + data[at:], f"{n} random bytes inserted at {at}"


def delete_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """A hole: 1 to 64 bytes cut out of the middle."""
    at = rng.randrange(len(data))
    n = rng.randint(1, min(64, len(data) - at))
    return data[:at] + data[at + n:], f"{n} bytes deleted at {at}"


BYTE_MUTATIONS: tuple[Mutation, ...] = (truncate, flip_bytes, insert_bytes, delete_bytes)

# -- ONNX -----------------------------------------------------------------------------------------

#: Dims a shape should never hold, and one merely wrong.
NASTY_DIMS = (0, -1, -7, 2**31, 2**62, 7)
#: Element types: ones edgekit refuses (string, bool, complex), undefined (0) and out of range (99).
NASTY_TYPES = (0, 2, 6, 7, 8, 9, 10, 11, 14, 99)


def _onnx_edit(edit: Callable) -> Mutation:
    """A structure-aware ONNX mutation from ``edit(model, rng) -> description`` (None: not applicable)."""

    def mutation(data: bytes, rng: random.Random) -> tuple[bytes, str]:
        import onnx

        model = onnx.ModelProto()
        model.ParseFromString(data)
        described = edit(model, rng)
        return (model.SerializeToString(), described) if described else (data, "")

    mutation.__name__ = mutation.__qualname__ = edit.__name__
    mutation.__doc__ = edit.__doc__
    return mutation


def _pick(rng: random.Random, items):
    """A random one of ``items``, None when there are none (the mutation does not apply)."""
    return rng.choice(items) if len(items) else None


def _values(model):
    graph = model.graph
    return [v for v in [*graph.input, *graph.output, *graph.value_info] if v.type.HasField("tensor_type")]


@_onnx_edit
def onnx_dim(model, rng):
    """A dim of an input, output or annotated intermediate set to 0, negative, huge or wrong."""
    values = [v for v in _values(model) if v.type.tensor_type.shape.dim]
    value = _pick(rng, values)
    if value is None:
        return None
    dims = value.type.tensor_type.shape.dim
    k, new = rng.randrange(len(dims)), rng.choice(NASTY_DIMS)
    dims[k].Clear()
    dims[k].dim_value = new
    return f"dim {k} of '{value.name}' set to {new}"


@_onnx_edit
def onnx_initializer_dims(model, rng):
    """An initializer's dims no longer match its data (a dim changed, dropped or added)."""
    tensor = _pick(rng, model.graph.initializer)
    if tensor is None:
        return None
    dims = list(tensor.dims)
    how = rng.choice(["set", "drop", "add"]) if dims else "add"
    if how == "set":
        k = rng.randrange(len(dims))
        dims[k] = rng.choice(NASTY_DIMS)
    elif how == "drop":
        dims.pop(rng.randrange(len(dims)))
    else:
        dims.insert(rng.randrange(len(dims) + 1), rng.choice((2, 0, 2**40)))
    del tensor.dims[:]
    tensor.dims.extend(dims)
    return f"initializer '{tensor.name}' dims set to {dims}"


@_onnx_edit
def onnx_dtype(model, rng):
    """The element type of an input or an initializer changed (its data stays as it was)."""
    choices = [*model.graph.input, *model.graph.initializer]
    item = rng.choice(choices)
    new = rng.choice(NASTY_TYPES)
    if hasattr(item, "data_type"):
        item.data_type = new
    else:
        item.type.tensor_type.elem_type = new
    return f"element type of '{item.name}' set to {new}"


@_onnx_edit
def onnx_drop_initializer(model, rng):
    """A weight missing: its consumers read an undefined name."""
    if not model.graph.initializer:
        return None
    k = rng.randrange(len(model.graph.initializer))
    name = model.graph.initializer[k].name
    del model.graph.initializer[k]
    return f"initializer '{name}' removed"


@_onnx_edit
def onnx_duplicate_initializer(model, rng):
    """Two initializers of one name (the second maybe of another shape)."""
    if not model.graph.initializer:
        return None
    copy = model.graph.initializer.add()
    copy.CopyFrom(rng.choice(model.graph.initializer[:-1]))
    if rng.random() < 0.5 and copy.dims:
        copy.dims[0] += 1
    return f"initializer '{copy.name}' duplicated (dims {list(copy.dims)})"


@_onnx_edit
def onnx_dangling_input(model, rng):
    """A node input renamed to a value nothing produces."""
    nodes = [n for n in model.graph.node if n.input]
    node = _pick(rng, nodes)
    if node is None:
        return None
    k = rng.randrange(len(node.input))
    node.input[k] = f"{node.input[k]}_dangling"
    return f"input {k} of node '{node.name}' ({node.op_type}) renamed to '{node.input[k]}'"


@_onnx_edit
def onnx_dangling_output(model, rng):
    """A graph output that no node produces, or no outputs at all, or one output twice."""
    graph = model.graph
    how = rng.choice(["rename", "clear", "twice"])
    if how == "rename":
        graph.output[0].name += "_nowhere"
        return f"graph output renamed to '{graph.output[0].name}'"
    if how == "clear":
        del graph.output[:]
        return "every graph output removed"
    graph.output.add().CopyFrom(graph.output[0])
    return f"graph output '{graph.output[0].name}' listed twice"


def _broken_attribute(attribute, rng) -> str:
    """One way to break ``attribute``: wrong type, empty, negative, zero or huge values."""
    from onnx import AttributeProto

    how = rng.choice(["empty", "negative", "zero", "huge", "retype", "rename"])
    if how == "rename":
        attribute.name += "_x"
    elif how == "retype":
        attribute.type = rng.choice([AttributeProto.STRING, AttributeProto.FLOAT, AttributeProto.GRAPH, AttributeProto.TENSOR])
    elif attribute.type == AttributeProto.INTS:
        value = {"empty": [], "negative": [-3] * len(attribute.ints), "zero": [0] * len(attribute.ints),
                 "huge": [2**40] * max(len(attribute.ints), 1)}[how]
        del attribute.ints[:]
        attribute.ints.extend(value)
    elif attribute.type == AttributeProto.INT:
        attribute.i = {"empty": 0, "negative": -3, "zero": 0, "huge": 2**40}[how]
    elif attribute.type == AttributeProto.FLOAT:
        attribute.f = {"empty": float("nan"), "negative": -1e30, "zero": 0.0, "huge": float("inf")}[how]
    else:
        attribute.Clear()
        attribute.name = "broken"
    return how


@_onnx_edit
def onnx_attribute(model, rng):
    """An attribute of a node removed or broken (wrong type, empty, zero, negative, huge)."""
    nodes = [n for n in model.graph.node if n.attribute]
    node = _pick(rng, nodes)
    if node is None:
        return None
    k = rng.randrange(len(node.attribute))
    name = node.attribute[k].name
    if rng.random() < 0.2:
        del node.attribute[k]
        return f"attribute '{name}' of node '{node.name}' removed"
    how = _broken_attribute(node.attribute[k], rng)
    return f"attribute '{name}' of node '{node.name}' ({node.op_type}) broken: {how}"


@_onnx_edit
def onnx_opset(model, rng):
    """The default-domain opset changed to an old, future or impossible version, or removed."""
    new = rng.choice([None, 0, 1, 9, 10, 27, 10_000, -1])
    default = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if new is None:
        for o in default:
            model.opset_import.remove(o)
        return "default opset import removed"
    for o in default:
        o.version = new
    return f"default opset set to {new}"


@_onnx_edit
def onnx_ir_version(model, rng):
    """An IR version that is missing, ancient or from the future."""
    model.ir_version = rng.choice([0, 1, 2, 3, 14, 100, -1])
    return f"ir_version set to {model.ir_version}"


@_onnx_edit
def onnx_cycle(model, rng):
    """A cycle: an earlier node (or a node itself) reads a later node's output."""
    nodes = model.graph.node
    if not nodes or not nodes[0].input:
        return None
    late = rng.randrange(len(nodes))
    early = rng.randrange(late + 1)
    k = rng.randrange(len(nodes[early].input)) if nodes[early].input else None
    if k is None:
        return None
    nodes[early].input[k] = nodes[late].output[0]
    return f"input {k} of node '{nodes[early].name}' now reads node '{nodes[late].name}' output"


@_onnx_edit
def onnx_duplicate_output(model, rng):
    """Two nodes writing one value (the graph is no longer in SSA form)."""
    nodes = model.graph.node
    if len(nodes) < 2:
        return None
    a, b = rng.sample(range(len(nodes)), 2)
    nodes[a].output[0] = nodes[b].output[0]
    return f"node '{nodes[a].name}' now writes '{nodes[b].output[0]}' too"


@_onnx_edit
def onnx_op_type(model, rng):
    """A node's op changed to another (maybe unknown, maybe a control-flow op without its graphs)."""
    node = _pick(rng, model.graph.node)
    if node is None:
        return None
    new = rng.choice(["Relu", "Conv", "MatMul", "Gemm", "LSTM", "If", "Loop", "Frobnicate", "Reshape", "Concat"])
    old, node.op_type = node.op_type, new
    if rng.random() < 0.2:
        node.domain = "com.example"
    return f"node '{node.name}' op {old} -> {node.domain + '::' if node.domain else ''}{new}"


@_onnx_edit
def onnx_short_data(model, rng):
    """An initializer whose raw data is shorter or longer than its dims say."""
    tensors = [t for t in model.graph.initializer if t.raw_data]
    tensor = _pick(rng, tensors)
    if tensor is None:
        return None
    cut = rng.choice([-1, -4, 3])
    tensor.raw_data = tensor.raw_data[:cut] if cut < 0 else tensor.raw_data + b"\0" * cut
    return f"raw data of '{tensor.name}' {'cut by' if cut < 0 else 'grown by'} {abs(cut)} bytes"


@_onnx_edit
def onnx_external_data(model, rng):
    """An initializer moved to external data that is missing, outside the model's directory or
    at an impossible offset."""
    from onnx import TensorProto

    tensor = _pick(rng, model.graph.initializer)
    if tensor is None:
        return None
    location = rng.choice(["missing.bin", "../../etc/passwd", "/etc/hostname", "", "."])
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    if rng.random() < 0.5:
        entry = tensor.external_data.add()
        entry.key, entry.value = "offset", rng.choice(["-8", "99999999999", "x"])
    return f"initializer '{tensor.name}' moved to external data '{location}'"


@_onnx_edit
def onnx_untyped_input(model, rng):
    """A graph input without a type, or without a shape."""
    value = rng.choice(model.graph.input)
    if rng.random() < 0.5:
        value.type.Clear()
        return f"type of input '{value.name}' removed"
    value.type.tensor_type.ClearField("shape")
    return f"shape of input '{value.name}' removed"


ONNX_MUTATIONS: tuple[Mutation, ...] = (
    onnx_dim, onnx_initializer_dims, onnx_dtype, onnx_drop_initializer, onnx_duplicate_initializer,
    onnx_dangling_input, onnx_dangling_output, onnx_attribute, onnx_opset, onnx_ir_version, onnx_cycle,
    onnx_duplicate_output, onnx_op_type, onnx_short_data, onnx_external_data, onnx_untyped_input)

# -- TFLite ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One patchable value in a flatbuffer: ``fmt`` (struct format) at byte ``pos``, and what it is."""

    pos: int
    fmt: str
    kind: str   # "index", "dim", "enum", "scale", "zero_point", "uoffset", "count", "value", "size"
    what: str


#: Scalar fields of the options tables the importer reads: (vtable slot, struct format, kind, name).
OPTION_SLOTS = {
    "Conv2DOptions": [(4, "b", "enum", "padding"), (6, "i", "value", "stride_w"), (8, "i", "value", "stride_h"),
                      (10, "b", "enum", "activation"), (12, "i", "value", "dilation_w"),
                      (14, "i", "value", "dilation_h")],
    "DepthwiseConv2DOptions": [(4, "b", "enum", "padding"), (6, "i", "value", "stride_w"),
                               (8, "i", "value", "stride_h"), (10, "i", "value", "depth_multiplier"),
                               (12, "b", "enum", "activation"), (14, "i", "value", "dilation_w"),
                               (16, "i", "value", "dilation_h")],
    "Pool2DOptions": [(4, "b", "enum", "padding"), (6, "i", "value", "stride_w"), (8, "i", "value", "stride_h"),
                      (10, "i", "value", "filter_w"), (12, "i", "value", "filter_h"), (14, "b", "enum", "activation")],
    "FullyConnectedOptions": [(4, "b", "enum", "activation"), (6, "b", "enum", "weights_format"),
                              (8, "b", "enum", "keep_num_dims")],
    "AddOptions": [(4, "b", "enum", "activation")],
    "MulOptions": [(4, "b", "enum", "activation")],
    "SoftmaxOptions": [(4, "f", "scale", "beta")],
    "ConcatenationOptions": [(4, "i", "index", "axis"), (6, "b", "enum", "activation")],
    "ReducerOptions": [(4, "b", "enum", "keep_dims")],
}


def _slot(tab, slot: int) -> int | None:
    """Absolute position of a table's field, None when the field is absent (its default)."""
    o = tab.Offset(slot)
    return tab.Pos + o if o else None


def _scalar(fields: list[Field], tab, slot: int, fmt: str, kind: str, what: str) -> None:
    pos = _slot(tab, slot)
    if pos is not None:
        fields.append(Field(pos, fmt, kind, what))


def _vector(fields: list[Field], tab, slot: int, fmt: str, kind: str, what: str) -> None:
    """A vector field: its length (a count) and each element, and the offset that points to it."""
    pos = _slot(tab, slot)
    if pos is None:
        return
    fields.append(Field(pos, "I", "uoffset", f"{what} (offset)"))
    o = tab.Offset(slot)
    start, n = tab.Vector(o), tab.VectorLen(o)
    fields.append(Field(start - 4, "I", "count", f"{what} (length)"))
    size = struct.calcsize(fmt)
    fields.extend(Field(start + i * size, fmt, kind, f"{what}[{i}]") for i in range(min(n, 64)))


def _tensor_fields(fields: list[Field], tensor, what: str) -> None:
    tab = tensor._tab
    fields.append(Field(tab.Pos, "i", "uoffset", f"{what} (vtable offset)"))
    _vector(fields, tab, 4, "i", "dim", f"{what} shape")
    _scalar(fields, tab, 6, "b", "enum", f"{what} type")
    _scalar(fields, tab, 8, "I", "index", f"{what} buffer")
    quant = tensor.Quantization()
    if quant is not None:
        _vector(fields, quant._tab, 8, "f", "scale", f"{what} scale")
        _vector(fields, quant._tab, 10, "q", "zero_point", f"{what} zero point")
        _scalar(fields, quant._tab, 16, "i", "index", f"{what} quantized dimension")


def _operator_fields(fields: list[Field], op, what: str) -> None:
    import tflite

    tab = op._tab
    _scalar(fields, tab, 4, "I", "index", f"{what} opcode index")
    _vector(fields, tab, 6, "i", "index", f"{what} inputs")
    _vector(fields, tab, 8, "i", "index", f"{what} outputs")
    _scalar(fields, tab, 10, "B", "enum", f"{what} options type")
    names = {v: k for k, v in vars(tflite.BuiltinOptions).items() if isinstance(v, int)}
    options = op.BuiltinOptions()
    for slot, fmt, kind, name in OPTION_SLOTS.get(names.get(op.BuiltinOptionsType()), []):
        if options is not None:
            option_tab = type(tab)(options.Bytes, options.Pos)
            _scalar(fields, option_tab, slot, fmt, kind, f"{what} {name}")


def tflite_fields(buf: bytes) -> list[Field]:
    """Every field of a TFLite model (subgraph 0) a structure-aware mutation may patch."""
    import tflite

    model = tflite.Model.GetRootAsModel(buf, 0)
    fields = [Field(0, "I", "uoffset", "root table offset")]
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        _scalar(fields, code._tab, 4, "b", "enum", f"opcode {i} deprecated builtin code")
        _scalar(fields, code._tab, 10, "i", "enum", f"opcode {i} builtin code")
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        pos = _slot(buffer._tab, 4)
        if pos is not None:
            start = buffer._tab.Vector(buffer._tab.Offset(4))
            fields.append(Field(start - 4, "I", "count", f"buffer {i} data (length)"))
        _scalar(fields, buffer._tab, 6, "Q", "size", f"buffer {i} offset")
        _scalar(fields, buffer._tab, 8, "Q", "size", f"buffer {i} size")
    sg = model.Subgraphs(0)
    _vector(fields, sg._tab, 6, "i", "index", "subgraph inputs")
    _vector(fields, sg._tab, 8, "i", "index", "subgraph outputs")
    for i in range(sg.TensorsLength()):
        _tensor_fields(fields, sg.Tensors(i), f"tensor {i}")
    for i in range(sg.OperatorsLength()):
        _operator_fields(fields, sg.Operators(i), f"operator {i}")
    return fields


#: Values to write per kind of field: the ones that break readers and kernels.
NASTY = {
    "index": (-1, -2, 5, 99, 2**31 - 1),
    "dim": (0, -1, 2**31 - 1, 65536, 3),
    "enum": (-1, 5, 99, 127),
    "scale": (0.0, float("nan"), float("inf"), -1.0, 1e-45, 1e38),
    "zero_point": (-129, 128, 2**40, -(2**62)),
    "uoffset": (0, 4, 2**31 - 1, 0x7FFFFFF0),
    "count": (0, 1, 2**31 - 1, 2**20),
    "value": (0, -1, 2**31 - 1, 1000),
    "size": (1, 2**63 - 1, 2**32),
}
_LIMITS = {"b": (-128, 127), "B": (0, 255), "i": (-(2**31), 2**31 - 1), "I": (0, 2**32 - 1),
           "q": (-(2**63), 2**63 - 1), "Q": (0, 2**64 - 1)}


def _fits(fmt: str, value) -> bool:
    if fmt == "f":
        return True
    lo, hi = _LIMITS[fmt]
    return isinstance(value, int) and lo <= value <= hi


def _patched(data: bytes, field: Field, value) -> bytes:
    out = bytearray(data)
    struct.pack_into("<" + field.fmt, out, field.pos, value)
    return bytes(out)


def set_field(data: bytes, what: str, value) -> bytes:
    """The TFLite file with the field named ``what`` (as :func:`tflite_fields` names it, e.g.
    ``"operator 0 opcode index"``) set to ``value``: regression tests rebuild a finding with it."""
    field = next(f for f in tflite_fields(data) if f.what == what)
    return _patched(data, field, value)


def tflite_patch(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One flatbuffer field (see :func:`tflite_fields`) set to a value that breaks it."""
    field = rng.choice(tflite_fields(data))
    value = rng.choice([v for v in NASTY[field.kind] if _fits(field.fmt, v)] or [0])
    return _patched(data, field, value), f"{field.what} set to {value}"


def tflite_swap_tensors(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Two operator tensor indices exchanged: the graph is wired wrongly but every index is valid."""
    slots = [f for f in tflite_fields(data) if f.kind == "index" and ("inputs[" in f.what or "outputs[" in f.what)]
    if len(slots) < 2:
        return data, ""
    a, b = rng.sample(slots, 2)
    va, vb = struct.unpack_from("<i", data, a.pos)[0], struct.unpack_from("<i", data, b.pos)[0]
    return _patched(_patched(data, a, vb), b, va), f"{a.what} ({va}) and {b.what} ({vb}) swapped"


TFLITE_MUTATIONS: tuple[Mutation, ...] = (tflite_patch, tflite_patch, tflite_patch, tflite_swap_tensors)

# -- choosing -------------------------------------------------------------------------------------


def mutations_for(suffix: str) -> tuple[Mutation, ...]:
    """Byte-level mutations and the structure-aware ones of the format, weighted about evenly."""
    structural = {".onnx": ONNX_MUTATIONS, ".tflite": TFLITE_MUTATIONS}.get(suffix, ())
    return BYTE_MUTATIONS * max(1, len(structural) // len(BYTE_MUTATIONS)) + structural


def mutate(data: bytes, suffix: str, seed: int) -> tuple[bytes, str]:
    """The mutated file of ``seed`` (a structure-aware mutation that does not apply falls back to a
    byte flip) and its description, which names the mutation."""
    rng = random.Random(seed)
    mutation = rng.choice(mutations_for(suffix))
    out, described = mutation(data, rng)
    if not described:
        mutation = flip_bytes
        out, described = flip_bytes(data, rng)
    return out, f"{mutation.__name__}: {described}"
