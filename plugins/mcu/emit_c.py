"""C emitters: ``<name>.h`` (API and sizes), ``<name>.c`` (the schedule: one kernel call per layer,
offsets as named constants, profiling marks) and ``<name>_weights.c`` (aligned const arrays).

Output is byte-identical for the same model: no timestamps or paths, iteration in schedule or
sorted order, floats printed with ``%.9g`` (round-trips every float32 exactly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgekit.naming import SymbolTable, c_comment, c_string
from edgekit.plugins.mcu.planner import MemoryPlan
from edgekit.plugins.mcu.schedule import C_TYPES, ConstRef, CSymbol, Layer, Schedule, dims_str

#: Arena pointer macro per tensor element type (float tensors keep the short EK_T).
ARENA_MACROS = {"float32": ("EK_T", "float"), "int8": ("EK_T8", "int8_t"), "uint8": ("EK_TU8", "uint8_t"),
                "int16": ("EK_T16", "int16_t"), "int32": ("EK_T32", "int32_t")}


def const_ctype(array: np.ndarray) -> str:
    """C element type of a constant array (float32 and the integer types the kernels read)."""
    return "float" if array.dtype.kind == "f" else C_TYPES[str(array.dtype)]

KERNEL_HEADER_ORDER = ("ek_conv", "ek_gemm", "ek_elementwise", "ek_activation", "ek_batchnorm",
                       "ek_pool", "ek_softmax", "ek_reduce", "ek_transform", "ek_rnn")


def c_float(v: float) -> str:
    """A C float literal that reads back as the same float32."""
    v = float(np.float32(v))
    if math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    s = "%.9g" % v
    if "e" not in s and "." not in s:
        s += ".0"
    return s + "f"


@dataclass
class Names:
    """Every C identifier of one generated model."""

    prefix: str
    tensors: dict[str, str]
    consts: dict[str, str]
    layers: list[str]

    @property
    def upper(self) -> str:
        return self.prefix.upper()


def library_identifiers(prefix: str, sched: Schedule) -> tuple[str, ...]:
    """The fixed identifiers of a library's translation units (its API, size macros, the locals and
    macros of ``<prefix>.c``): reserved before any model name is given one."""
    P = prefix.upper()
    api = [f"{P}_{what}" for what in ("H", "ARENA_SIZE", "ARENA_ALIGN", "NUM_INPUTS", "NUM_OUTPUTS",
                                       "NUM_LAYERS", "SECTION", *HEADER_FIXED_MACROS)]
    api += [f"{prefix}_{what}" for what in ("run", "run_io", "arena", "expert_load", "weights", "weights_t")]
    api += [f"{P}_{kind}_{i}_{what}" for kind, tensors in (("INPUT", sched.inputs), ("OUTPUT", sched.outputs))
            for i, name in enumerate(tensors)
            for what in (*IO_MACROS, *(f"DIM_{d}" for d in range(len(sched.tensors[name].shape))))]
    api += [f"{prefix}_{moe.layer.name}_experts" for moe in sched.moe]
    api += [f"SCRATCH_{i}" for i in range(len(sched.layers))]
    # parameters and locals of the run functions and of the weak expert load hook
    return (*api, "inputs", "outputs", "input", "output", "arena", "weights", "W", "layer", "expert", "slot",
            "stored", "bytes", "src", "dst", "i", "EK_PROFILE", "EK_PROFILE_MARK")


def assign_names(prefix: str, sched: Schedule, weights_pointer: str | None = None) -> Names:
    """Every identifier made from a model name, from one :class:`~edgekit.naming.SymbolTable` per
    library: each tensor, constant and layer claims all the forms it is written as (``in_x``,
    ``out_x``, ``OFFSET_x``, ``<PREFIX>_INPUT_X_COUNT``; ``<prefix>_x``; ``x_params``, ``x_inputs``),
    so no two can meet, nor meet a fixed name. ``weights_pointer``: the constants are fields of a
    struct reached through that pointer (an expert sub-library's weights), not arrays of their own."""
    P = prefix.upper()
    table = SymbolTable(reserved=library_identifiers(prefix, sched))
    # an expert sub-library's header (included by this source) owns every name under its prefix
    table.reserve_prefix(*(f"{prefix}_{moe.layer.name}_e" for moe in sched.moe))
    io = set(sched.inputs) | set(sched.outputs)
    tensors = {}
    for name in sched.inputs + sched.outputs + sorted(set(sched.tensors) - io):
        forms = ("in_{}", "out_{}", "OFFSET_{}")
        if name in io:
            forms += tuple(f"{P}_{kind}_{{}}_{what}" for kind in ("INPUT", "OUTPUT") for what in ("COUNT", "INDEX"))
        tensors[name] = table.claim(("tensor", name), name, forms)
    for name, t in sched.tensors.items():
        t.c_name = tensors[name]
    consts = {}
    for key, c in sched.consts.items():
        # Keys are "<node>__<role>": name the node's first fused part, keep the role readable.
        base, _, role = key.rpartition("__") if "__" in key else (key, "", "")
        hint = f"{base.split(';', 1)[0]}_{role}" if role else key
        field_name = table.claim(("const", key), hint, ("{}",) if weights_pointer else (f"{prefix}_{{}}",), "c")
        c.c_name = field_name if weights_pointer else f"{prefix}_{field_name}"
        consts[key] = f"{weights_pointer}->{field_name}" if weights_pointer else c.c_name
    layers = [table.claim(("layer", i), layer.node or f"layer{i}", ("{}_params", "{}_inputs"), "layer")
              for i, layer in enumerate(sched.layers)]
    return Names(prefix, tensors, consts, layers)


def _c_value(v, names: Names) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, ConstRef):
        return names.consts[v.key]
    if isinstance(v, CSymbol):
        return f"{names.prefix}_{v.suffix}"
    if isinstance(v, (list, tuple)):
        return "{" + ", ".join(_c_value(x, names) for x in v) + "}"
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return c_float(float(v))


def _pointer(name: str, sched: Schedule, names: Names, plan: MemoryPlan) -> str:
    root = sched.root(name)
    t = sched.tensors[root]
    if t.kind == "input":
        return f"in_{names.tensors[root]}"
    if t.kind == "output":
        return f"out_{names.tensors[root]}"
    if name in plan.borrowed:
        output = plan.borrowed[name][0]
        return (f"(({sched.tensors[name].ctype} *)(void *)((uint8_t *)out_{names.tensors[output]} + "
                f"OFFSET_{names.tensors[root]}))")
    return f"{ARENA_MACROS[sched.tensors[name].dtype][0]}(OFFSET_{names.tensors[root]})"


def _args(layer: Layer, sched: Schedule, names: Names, plan: MemoryPlan, params_name: str | None) -> str:
    parts = [f"&{params_name}"] if params_name else []
    for a in layer.args:
        kind = a[0]
        if kind in ("in", "out"):
            parts.append(_pointer(a[1], sched, names, plan))
        elif kind == "const":
            parts.append(names.consts[a[1]])
        elif kind == "null":
            parts.append("NULL")
        elif kind == "scratch":
            parts.append(f"EK_T(SCRATCH_{layer.index})")
        elif kind == "in_list":
            parts.append(f"{names.layers[layer.index]}_inputs")
    return ", ".join(parts)


def layer_comment(layer: Layer) -> str:
    return c_comment(f"layer {layer.index}: node '{layer.node}' {layer.op} {layer.summary}")


#: Element type codes (<P>_DTYPE_*) and layout codes (<P>_LAYOUT_*) every library header defines.
DTYPE_CODES = {"float32": 0, "int8": 1, "uint8": 2, "int16": 3, "int32": 4}
LAYOUT_CODES = {"": "UNKNOWN", "NCHW": "NCHW", "NHWC": "NHWC"}
#: Fixed macros of a header besides the sizes: <P>_<name>.
HEADER_FIXED_MACROS = ("EDGEKIT_VERSION", "MODEL_SHA256", "OUTPUT_WORKSPACE_BYTES",
                       *(f"DTYPE_{d.upper()}" for d in DTYPE_CODES), *(f"LAYOUT_{c}" for c in LAYOUT_CODES.values()))
#: Per input/output macros: <P>_INPUT_<i>_<name> (and <P>_INPUT_<i>_DIM_<d>).
IO_MACROS = ("TYPE", "DTYPE", "ALIGN", "COUNT", "BYTES", "RANK", "SHAPE", "LAYOUT", "CHANNELS", "HEIGHT",
             "WIDTH", "SCALE", "ZERO_POINT")
_C_ELEMENT = {"float32": "float", "int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t"}


def element_align(dtype: str) -> int:
    """The alignment the kernels need of a caller's buffer of ``dtype``: its element size (the
    kernels read bytes of int8 data one at a time or through memcpy)."""
    return np.dtype(dtype).itemsize


def build_macros(prefix: str, info) -> list[str]:
    """The header's build record: comment and macros (``info``: a :class:`.build_info.BuildInfo`)."""
    P = prefix.upper()
    return ["/* edgekit's version, and the sha256 of the model file it read (\"\" when the library was",
            " * generated from a model in memory). */",
            f'#define {P}_EDGEKIT_VERSION "{c_string(info.edgekit_version)}"',
            f'#define {P}_MODEL_SHA256 "{c_string(info.model_sha256)}"', ""]


def type_macros(prefix: str) -> list[str]:
    P = prefix.upper()
    return [f"/* Element types: {P}_INPUT_i_TYPE is the C type (declare buffers with it), {P}_INPUT_i_DTYPE",
            f" * its code (for #if and switch), {P}_INPUT_i_ALIGN the alignment in bytes {prefix}_run_io",
            " * checks. */",
            *(f"#define {P}_DTYPE_{d.upper()} {code}" for d, code in DTYPE_CODES.items()),
            f"/* Layouts: every tensor is dense and row-major over {P}_INPUT_i_SHAPE. {P}_INPUT_i_LAYOUT",
            " * names the dimensions when the model shows them (an image op reads or writes the tensor);",
            " * _CHANNELS, _HEIGHT and _WIDTH then give them. */",
            *(f"#define {P}_LAYOUT_{c} {i}" for i, c in enumerate(LAYOUT_CODES.values())), ""]


def io_macros(prefix: str, kind: str, index: int, name: str, dtype: str, shape, layout: str = "",
              align: int | None = None, quant: tuple[float, int] | None = None, ctype: str | None = None) -> list[str]:
    """One input's or output's macros (``kind``: INPUT or OUTPUT; ``name`` from the model, commented).
    ``ctype``: the C element type of a dtype outside :data:`DTYPE_CODES` (which then has no _DTYPE)."""
    P, shape = prefix.upper(), [int(d) for d in shape]
    m = f"{P}_{kind}_{index}"
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    where = f", {layout}" if layout else ""
    code = [f"#define {m}_DTYPE {P}_DTYPE_{dtype.upper()}"] if dtype in DTYPE_CODES else []
    lines = [f"/* {kind.lower()} {index}: '{c_comment(name)}' {dtype} [{', '.join(map(str, shape))}]{where} */",
             f"#define {m}_TYPE {_C_ELEMENT.get(dtype) or ctype}", *code,
             f"#define {m}_ALIGN {align or element_align(dtype)}u",
             f"#define {m}_COUNT {count}", f"#define {m}_BYTES {count * np.dtype(dtype).itemsize}",
             f"#define {m}_RANK {len(shape)}", f"#define {m}_SHAPE {{{', '.join(map(str, shape)) or '1'}}}",
             *(f"#define {m}_DIM_{d} {n}" for d, n in enumerate(shape)),
             f"#define {m}_LAYOUT {P}_LAYOUT_{LAYOUT_CODES[layout]}"]
    if layout:
        c, h, w = (1, 2, 3) if layout == "NCHW" else (3, 1, 2)
        lines += [f"#define {m}_CHANNELS {shape[c]}", f"#define {m}_HEIGHT {shape[h]}", f"#define {m}_WIDTH {shape[w]}"]
    if quant is not None:
        lines += [f"/* int8 data: real value = {m}_SCALE * (q - {m}_ZERO_POINT) */",
                  f"#define {m}_SCALE {c_float(quant[0])}", f"#define {m}_ZERO_POINT {int(quant[1])}"]
    return lines


def header_opening(prefix: str, generator: str, step: str, info=None) -> list[str]:
    """The start of a library header: what built it (``info``, a :class:`.build_info.BuildInfo`),
    guard, C++ linkage, and the profiling hook called around each ``step`` (a layer, a kernel)."""
    guard = f"{prefix.upper()}_H"
    built = [f" * Built by {c_comment(info.summary())}."] if info is not None else []
    return [f"/* {prefix}.h: generated by edgekit ({generator}). Do not edit.", *built, " */",
            f"#ifndef {guard}", f"#define {guard}", "", "#include <stdint.h>", "",
            "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
            f"/* Profiling hook: called once before the first {step} and once after each {step}.",
            f" * Define EK_PROFILE and provide ek_profile_mark() to count per-{step} work. */",
            "#ifndef EK_PROFILE_MARK", "#ifdef EK_PROFILE", "void ek_profile_mark(void);",
            "#define EK_PROFILE_MARK() ek_profile_mark()", "#else",
            "#define EK_PROFILE_MARK() ((void)0)", "#endif", "#endif", ""]


def io_alignments(sched: Schedule, plan: MemoryPlan) -> dict[str, int]:
    """The alignment run_io checks of each input and output buffer: its element's, and 4 bytes for an
    output that holds other tensors (float, int32) before it is written."""
    borrowed = {output for output, _ in plan.borrowed.values()}
    return {n: max(element_align(sched.tensors[n].dtype), 4 if n in borrowed else 1)
            for n in sched.inputs + sched.outputs}


def emit_header(names: Names, sched: Schedule, plan: MemoryPlan, static_arena: bool, info=None,
                layouts: tuple[list[str], list[str]] | None = None) -> str:
    """``info``: the :class:`.build_info.BuildInfo` the header records (edgekit's version alone when
    None); ``layouts``: each input's and output's layout (see :mod:`.io_layout`)."""
    from edgekit.plugins.mcu.build_info import BuildInfo

    p, P = names.prefix, names.upper
    info = info or BuildInfo(static_arena=static_arena)
    aligns = io_alignments(sched, plan)
    if layouts is None or (len(layouts[0]), len(layouts[1])) != (len(sched.inputs), len(sched.outputs)):
        layouts = ([""] * len(sched.inputs), [""] * len(sched.outputs))  # not known for these tensors
    lines = [*header_opening(p, "back end mcu-c", "layer", info), *build_macros(p, info),
             f"/* Bytes of working memory (tensor arena) one inference needs; the arena must be",
             f" * 4-byte aligned ({P}_ARENA_ALIGN recommended). Inputs/outputs are not in it. */",
             f"#define {P}_ARENA_SIZE {plan.arena_bytes}u", f"#define {P}_ARENA_ALIGN 16u",
             f"/* Bytes of the output buffers that also serve as workspace during a call. When not 0, the",
             " * outputs must not overlap the inputs, and hold the outputs only once the call returns 0. */",
             f"#define {P}_OUTPUT_WORKSPACE_BYTES {plan.borrowed_bytes}u",
             f"#define {P}_NUM_INPUTS {len(sched.inputs)}",
             f"#define {P}_NUM_OUTPUTS {len(sched.outputs)}",
             f"#define {P}_NUM_LAYERS {len(sched.layers)}", "", *type_macros(p)]
    for kind, tensor_names in (("INPUT", sched.inputs), ("OUTPUT", sched.outputs)):
        for i, name in enumerate(tensor_names):
            t = sched.tensors[name]
            cn = names.tensors[name].upper()
            layout = layouts[kind == "OUTPUT"][i] if len(t.shape) == 4 else ""
            lines += [*io_macros(p, kind, i, sched.io_names.get(name, name), t.dtype, t.shape, layout,
                                 aligns[name], sched.io_quant.get(name)),
                      f"#define {P}_{kind}_{cn}_COUNT {t.count}",
                      f"#define {P}_{kind}_{cn}_INDEX {i}", ""]
    from edgekit.plugins.mcu import emit_moe

    lines += emit_moe.header_declarations(names, sched)
    if static_arena:
        lines += [f"/* The library's own arena: pass NULL as `arena` to use it. */",
                  f"extern uint8_t {p}_arena[];", ""]
    io_types = sorted({sched.tensors[n].dtype for n in sched.inputs + sched.outputs})
    arena_rule = ("`arena`: 4-byte aligned, or NULL for the static arena" if static_arena else
                  "`arena` is not used (NULL is fine)" if plan.arena_bytes == 0 else "`arena`: 4-byte aligned")
    lines += [f"/* Runs one inference. inputs[i]/outputs[i] point to {'/'.join(io_types)} buffers of",
              f" * {P}_INPUT_i_COUNT / {P}_OUTPUT_i_COUNT elements aligned to {P}_INPUT_i_ALIGN /",
              f" * {P}_OUTPUT_i_ALIGN bytes; {arena_rule}. Returns 0, or -1 (and",
              " * touches nothing) when `inputs`, `outputs` or a buffer is NULL or misaligned. */",
              f"int {p}_run_io(const void *const inputs[], void *const outputs[], uint8_t *arena);"]
    if len(sched.inputs) == 1 and len(sched.outputs) == 1:
        lines += ["", "/* One input, one output: the same as run_io. */",
                  f"int {p}_run({_run_signature(sched)});"]
    lines += ["", "#ifdef __cplusplus", "}", "#endif", "", f"#endif /* {P}_H */", ""]
    return "\n".join(lines)


def _run_signature(sched: Schedule) -> str:
    in_t, out_t = sched.tensors[sched.inputs[0]].ctype, sched.tensors[sched.outputs[0]].ctype
    return f"const {in_t} *input, {out_t} *output, uint8_t *arena"


def emit_source(names: Names, sched: Schedule, plan: MemoryPlan, static_arena: bool,
                weights_type: str | None = None) -> str:
    """``weights_type``: emit an expert sub-library (see :mod:`.emit_moe`): ``<prefix>_run(input,
    output, weights, arena)`` reading its constants through ``weights``, a ``weights_type``."""
    from edgekit.plugins.mcu import emit_moe

    p, P = names.prefix, names.upper
    families = [f for f in KERNEL_HEADER_ORDER if f in sched.families]
    families += sorted(sched.families - set(families))
    lines = [f"/* {p}.c: generated by edgekit (back end mcu-c). Do not edit.",
             f" * {len(sched.layers)} layers, arena {plan.arena_bytes} B (lower bound "
             f"{plan.lower_bound_bytes} B). */",
             "#include <stddef.h>", "#include <stdint.h>", "",
             # an expert runs inside its MoE layer: the layer's profiling mark covers it
             *(["#define EK_PROFILE_MARK() ((void)0)"] if weights_type else []), f'#include "{p}.h"']
    lines += [f'#include "kernels/{f}.h"' for f in families]
    if weights_type is None:
        lines += ["", "/* Weights (defined in " + f"{p}_weights.c). */"]
        for key, c in sched.consts.items():
            lines.append(f"extern const {const_ctype(c.array)} {c.c_name}[{max(c.array.size, 1)}];")
    lines += emit_moe.expert_tables(names, sched)
    lines += ["", "/* Byte offsets of the tensors in the arena. */"]
    arena_tensors = sorted({sched.root(n) for n in plan.tensor_offsets},
                           key=lambda n: (plan.tensor_offsets[n], names.tensors[n]))
    for n in arena_tensors:
        t = sched.tensors[n]
        lines.append(f"#define OFFSET_{names.tensors[n]} {plan.tensor_offsets[n]}u "
                     f"/* {dims_str(t.shape)}, {t.nbytes} B */")
    for n in sorted({sched.root(n) for n in plan.borrowed}, key=lambda n: (plan.borrowed[n], names.tensors[n])):
        t, (output, offset) = sched.tensors[n], plan.borrowed[n]
        lines.append(f"#define OFFSET_{names.tensors[n]} {offset}u /* {dims_str(t.shape)}, {t.nbytes} B, in "
                     f"the buffer of output '{c_comment(output)}' before it is written */")
    for idx, off in sorted(plan.scratch_offsets.items()):
        lines.append(f"#define SCRATCH_{idx} {off}u /* scratch of layer {idx}, "
                     f"{sched.layers[idx].scratch_bytes} B */")
    lines.append("")
    used_types = {sched.tensors[n].dtype for n in plan.tensor_offsets} | {"float32"}
    for dtype, (macro, ctype) in ARENA_MACROS.items():
        if dtype in used_types:
            lines.append(f"#define {macro}(offset) (({ctype} *)(void *)(arena + (offset)))")
    lines += ["", "/* Layer parameters. */"]
    for i, layer in enumerate(sched.layers):
        if layer.params_type is None:
            continue
        fields = ", ".join(f".{k} = {_c_value(v, names)}" for k, v in layer.params.items())
        lines.append(f"/* {layer_comment(layer)} */")
        lines.append(f"static const {layer.params_type} {names.layers[i]}_params = {{{fields}}};")
    if static_arena:
        lines += ["", f"uint8_t {p}_arena[{max(plan.arena_bytes, 16)}] EK_ALIGNED(16);"]
    if weights_type is None:
        lines += ["", f"int {p}_run_io(const void *const inputs[], void *const outputs[], uint8_t *arena)",
                  "{"]
    else:
        lines += emit_moe.expert_run_opening(p, weights_type)
    if not sched.inputs:
        lines.append("    (void)inputs;")
    if plan.arena_bytes == 0:
        lines.append("    (void)arena;")
    if static_arena:
        lines += ["    if (arena == NULL) {", f"        arena = {p}_arena;", "    }"]
    # Every pointer is checked before any is dereferenced or converted to its element type, so a
    # bad argument returns -1 instead of reaching a kernel (a misaligned float load is undefined).
    aligns = io_alignments(sched, plan)

    def buffer_checks(array: str, index: int, align: int) -> str:
        misaligned = f" || ((uintptr_t){array}[{index}] & {align - 1}u) != 0u" if align > 1 else ""
        return f"{array}[{index}] == NULL{misaligned}"

    checks = [] if weights_type is not None else ["inputs == NULL"] * bool(sched.inputs) + ["outputs == NULL"]
    checks += [buffer_checks("inputs", i, aligns[n]) for i, n in enumerate(sched.inputs)]
    checks += ["W == NULL"] if weights_type is not None else []
    checks += [buffer_checks("outputs", i, aligns[n]) for i, n in enumerate(sched.outputs)]
    # A model whose tensors all live in the caller's buffers needs no arena: NULL is fine then.
    checks += ["arena == NULL || ((uintptr_t)arena & 3u) != 0u"] if plan.arena_bytes > 0 else []
    condition = " ||\n        ".join(checks)
    lines += [f"    if ({condition}) {{", "        return -1;", "    }"]
    for i, name in enumerate(sched.inputs):
        ct = sched.tensors[name].ctype
        lines.append(f"    const {ct} *const in_{names.tensors[name]} = (const {ct} *)inputs[{i}];")
    for i, name in enumerate(sched.outputs):
        ct = sched.tensors[name].ctype
        lines.append(f"    {ct} *const out_{names.tensors[name]} = ({ct} *)outputs[{i}];")
    body_start = len(lines)
    lines.append("    EK_PROFILE_MARK();")
    for i, layer in enumerate(sched.layers):
        lines.append(f"    /* {layer_comment(layer)} */")
        params_name = f"{names.layers[i]}_params" if layer.params_type else None
        call = f"{layer.function}({_args(layer, sched, names, plan, params_name)});"
        lists = [a for a in layer.args if a[0] == "in_list"]
        if lists:
            ptrs = ", ".join(_pointer(n, sched, names, plan) for n in lists[0][1])
            ct = sched.tensors[lists[0][1][0]].ctype
            lines += ["    {", f"        const {ct} *const {names.layers[i]}_inputs[{len(lists[0][1])}] = "
                      f"{{{ptrs}}};", f"        {call}", "    }"]
        else:
            lines.append(f"    {call}")
        lines.append("    EK_PROFILE_MARK();")
    # An input no layer reads (a model may ignore one) is still checked above; say it is unused.
    read = {sched.root(n) for layer in sched.layers for kind, *rest in layer.args
            for n in ([rest[0]] if kind in ("in", "out") else rest[0] if kind == "in_list" else [])}
    lines[body_start:body_start] = [f"    (void)in_{names.tensors[n]};" for n in sched.inputs if n not in read]
    lines += ["    return 0;", "}"]
    if len(sched.inputs) == 1 and len(sched.outputs) == 1 and weights_type is None:
        lines += ["", f"int {p}_run({_run_signature(sched)})", "{",
                  "    const void *const inputs[1] = {input};",
                  "    void *const outputs[1] = {output};",
                  f"    return {p}_run_io(inputs, outputs, arena);", "}"]
    lines.append("")
    return "\n".join(lines)


def array_values(array: np.ndarray, indent: str) -> list[str]:
    """The lines of a C initializer's values (at least one value: C has no empty arrays)."""
    fmt = (lambda v: str(int(v))) if array.dtype.kind in "iu" else c_float
    per_line = (24 if array.dtype.itemsize == 1 else 12) if array.dtype.kind in "iu" else 8
    values = [fmt(v) for v in array.reshape(-1).tolist()] or ["0"]
    return [indent + ", ".join(values[i:i + per_line]) + "," for i in range(0, len(values), per_line)]


def emit_weights(names: Names, sched: Schedule) -> str:
    p = names.prefix
    out = [f"/* {p}_weights.c: generated by edgekit (back end mcu-c). Do not edit.",
           " * Constant weights, packed in the layout each kernel reads. */",
           "#include <math.h>", "#include <stdint.h>", "", '#include "kernels/ek_common.h"', ""]
    for key, c in sched.consts.items():
        flat = c.array.reshape(-1)
        ctype = const_ctype(c.array)
        out.append(f"/* node '{c_comment(c.node)}': {c_comment(key)} {list(c.array.shape)} */")
        out.append(f"const {ctype} {c.c_name}[{max(flat.size, 1)}] EK_ALIGNED(8) = {{")
        out += array_values(c.array, "    ")
        out.append("};")
        out.append("")
    return "\n".join(out)
