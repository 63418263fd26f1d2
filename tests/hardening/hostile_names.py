"""Hostile names (issue 21): a generator of model names built to escape from generated code, models
that carry them in every place a name lands, and ``check_hostile_build``, which builds such a model
through the real CLI and proves that no name escaped into any generated file.

A name that tries to inject code carries a *probe*, ``EKPWN<n>``, placed where the injected code
would make it a token of its own (``x\\<CR> int EKPWN3=1;//``). Sanitising keeps it glued to its
neighbours (``x_int_EKPWN3_1``): a probe standing alone as a word outside comments and strings is
therefore an escape, in every language the build writes (C, assembly, linker scripts, Make, CMake,
Kconfig, YAML, JSON, SVG, Python).

Used by tests/hardening/test_hostile_names.py (fixed cases and a bounded fuzz) and by
``benchmarks/fuzz_frontends.py --hostile-names N`` (at scale). Everything is driven by a seed
(``random.Random``), so a finding is reproduced from its seed alone; hypothesis draws the seeds.
"""

from __future__ import annotations

import ast
import bisect
import json
import random
import re
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.hardening import contract

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ROOT / "plugins" / "mcu" / "kernels"

# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------

PROBE = "EKPWN"
#: A probe standing alone as a word: what an escape leaves behind. Every name glues its probe to a
#: neighbour (``EKPWN3=1``), so sanitising never leaves it alone (``x_int_EKPWN3_1``).
PROBE_WORD = re.compile(rf"(?<![A-Za-z0-9_]){PROBE}\d+(?![A-Za-z0-9_])")

LINE_ENDS = ["\r", "\n", "\r\n"]
#: What GCC also splices: blanks between the backslash and the line end (with only a warning).
SPLICE_ENDS = LINE_ENDS + [" \r", "\t\n", " \r\n"]
UNICODE_BREAKS = ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c"]
TRIGRAPHS = ["??=", "??/", "??'", "??(", "??)", "??!", "??<", "??>", "??-"]
CONTROL = [chr(c) for c in range(0, 32) if chr(c) not in "\r\n"] + ["\x7f", "\x1b[2J"]
NON_ASCII = ["é", "日本語", "\U0001F600", "\u202e", "\u200f", "\u200d", "\ufeff", "\u00a0", "ℌ", "ǅ"]
C_WORDS = ["int", "NULL", "main", "EK_T", "errno", "void", "return", "static", "const", "sizeof", "_Bool",
           "__attribute__", "__LINE__", "INFINITY", "NAN", "uint8_t", "size_t", "stdin", "printf", "memcpy",
           "assert", "abort", "exit", "malloc", "true", "bool", "restrict", "inline", "asm", "typeof",
           "defined", "include", "define", "None", "class", "lambda", "import", "self", "if", "endif"]
GENERATED = ["run", "io", "arena", "inputs", "outputs", "model_run", "model_run_io", "model_weights",
             "OFFSET_x", "SCRATCH_0", "in_x", "out_x", "x_params", "EK_T8", "EK_T32", "EK_PROFILE_MARK",
             "ek_profile_mark", "MODEL_H", "MODEL_ARENA_SIZE", "MODEL_INPUT_0_COUNT", "input_0", "output_0",
             "status", "i", "model", "m_model", "t_int", "x_2", "ek_conv2d", "ek_conv2d_params", "ek_b0_x",
             "ek_tvm_abi", "EK_TVM_NONE", "DLTensor", "model_kernels", "weights", "LIBRARY", "INPUTS"]
#: Glued onto a base name by the emitters: a base plus one of these is another name's identifier.
AFFIX_PREFIXES = ["in_", "out_", "OFFSET_", "SCRATCH_", "model_", "ek_", "EK_", "MODEL_", "t_", "m_", "ek_b0_"]
AFFIX_SUFFIXES = ["_params", "_inputs", "_outputs", "_weights", "_bias", "_io", "_run", "_H", "_COUNT",
                  "_INDEX", "_2", "_row", "_data", "_scale", "_zero_point"]


@lru_cache(maxsize=1)
def kernel_functions() -> tuple[str, ...]:
    """Every function and type the kernel headers declare (``ek_conv2d_f32``, ``ek_conv2d_params``)."""
    names = set()
    for header in sorted(KERNELS.glob("*.h")):
        names |= set(re.findall(r"\b(ek_\w+)\s*\(", header.read_text()))
        names |= set(re.findall(r"}\s*(ek_\w+)\s*;", header.read_text()))
    return tuple(sorted(names))


def _code(rng: random.Random, probe: str) -> str:
    """Code that would run if it escaped, with the probe as a word of its own."""
    return rng.choice([f" int {probe}=1;//", f"\nint {probe}(void){{return system(\"touch /tmp/p\");}}//",
                       f" {probe}(1);", f"#define {probe} 1", f"}} {probe}; {{"])


def _splice(rng, probe):  # the original exploit: backslash, a bare line end, then code
    return f"x\\{rng.choice(SPLICE_ENDS)}{_code(rng, probe)}"


def _newline(rng, probe):
    return f"x{rng.choice(LINE_ENDS)}{rng.choice(['#define ', 'int ', ''])}{probe} =1;{rng.choice(LINE_ENDS)}y"


def _unicode_break(rng, probe):
    return f"x{rng.choice(UNICODE_BREAKS)}int {probe}=1;"


def _trigraph(rng, probe):
    if rng.random() < 0.5:  # ??/ is a backslash where trigraphs are on: a splice again
        return f"x??/{rng.choice(LINE_ENDS)}{_code(rng, probe)}"
    return f"x{rng.choice(TRIGRAPHS)}{rng.choice(TRIGRAPHS)} {probe} =1"


def _trailing_backslash(rng, probe):  # a comment ending in a backslash swallows the next line
    return rng.choice(["x\\", "x\\\\", "x\\ ", "x\\\t", "x??/", f"a\\b {probe} =\\"])


def _comment(rng, probe):
    return rng.choice([f"*/ int {probe}=1; /*", f"x/* {probe} =1", f"x// {probe} =1", f"*/\n#include \"{probe}\"\n/*",
                       f"x*/{probe}(1);/*", "*/", "/*", "//"])


def _preprocessor(rng, probe):
    return rng.choice([f"#define {probe} 1", f"#include <{probe}>", f"#pragma {probe} =1", f"#{probe} =1",
                       f"x\n#undef NULL\n#define NULL {probe} =1"])


def _quote(rng, probe):
    return rng.choice([f"\"); int {probe}=1; (\"", f"'); {probe} =1; ('", f"x\\\"; {probe} =1; \\\"",
                       f"\"\"\"; {probe} =1; \"\"\"", f"x'''\n{probe} =1\n'''", f"{{{probe} =1}}", f"x{{{probe}=1}}"])


def _markup(rng, probe):
    return rng.choice([f"</title><script>{probe}(1)</script>", f"]]><!-- {probe} =1 -->", f"&{probe}=1;",
                       f"<{probe} onload=\"x\">", f"x\"/><{probe} a=\"", "&amp;&lt;&#0;", f"<![CDATA[{probe} =1]]>"])


def _shell(rng, probe):
    return rng.choice([f"$({probe} =1)", f"${{{probe} =1}}", f"`{probe} =1`", f"x; {probe} =1; y",
                       f"$(shell {probe} =1)", f"x\")\nadd_custom_target({probe} ALL)\n#",
                       f"x\nbuild: {{cmake: {probe} =1}}", f"x\n\t{probe} =1", f"$<{probe} =1>",
                       f"x\nconfig {probe}=1\n\tbool", f"$ENV{{{probe} =1}}", f"#[[ {probe} =1"])


def _control(rng, probe):
    return f"x{rng.choice(CONTROL)}{rng.choice(CONTROL)}{probe} =1"


def _non_ascii(rng, probe):
    return f"{rng.choice(NON_ASCII)}x{rng.choice(NON_ASCII)} {probe} =1"


def _long(rng, probe):
    filler = rng.choice(["a", "a.", "é", "\\", "_", "a/b;"]) * rng.randint(1000, 10000)
    return filler[: rng.randint(900, 9000)] + _splice(rng, probe) + filler[: rng.randint(10, 100)]


def _c_word(rng, probe):
    return rng.choice(C_WORDS)


def _generated(rng, probe):
    return rng.choice(GENERATED + list(kernel_functions()))


#: Class name -> maker(rng, probe) of one name. The makers of the last two classes carry no probe:
#: their names are valid words, what they break is linking, compiling or the values read.
CLASSES = {"splice": _splice, "newline": _newline, "unicode-break": _unicode_break, "trigraph": _trigraph,
           "trailing-backslash": _trailing_backslash, "comment": _comment, "preprocessor": _preprocessor,
           "quote": _quote, "markup": _markup, "shell": _shell, "control": _control, "non-ascii": _non_ascii,
           "long": _long, "c-word": _c_word, "generated-symbol": _generated}


def collision_family(rng: random.Random) -> list[str]:
    """Distinct names that meet after sanitising, or once the emitters glue on their affixes:
    ``a.b``/``a-b``/``a_b``, ``X``/``x``, ``x_inputs``/``in_x``, ``x_params``/``OFFSET_x``, or once
    long identifiers are shortened."""
    base = rng.choice(["x", "a", "conv", "X", "run", "io", "t", "ek_conv2d", "model", "0"])
    kind = rng.randrange(5)
    if kind == 4:  # long names that differ only where a shortened identifier would cut them off
        tail = "_".join(["z" * 30] * 4)
        return [f"{head}{tail}" for head in ("a", "b", "A", "a.")] + [f"{tail}{end}" for end in ("a", "b")]
    if kind == 0:
        return [f"{base}{sep}b" for sep in rng.sample([".", "-", "_", " ", "/", ":", "__", "é", ";"], 4)]
    if kind == 1:
        return list(dict.fromkeys([base, base.upper(), base.lower(), base.swapcase() + "_", f"_{base}_"]))
    prefix, suffix = rng.choice(AFFIX_PREFIXES), rng.choice(AFFIX_SUFFIXES)
    if kind == 2:
        return [f"{base}{suffix}", f"{prefix}{base}", f"{prefix}{base}{suffix}", base]
    return [f"{base}_{suffix.lstrip('_')}", f"{suffix.lstrip('_')}", f"{prefix.rstrip('_')}", base + "_2"]


@dataclass
class Name:
    """One hostile name: its class, its text, and the probe it carries (None for word classes)."""

    cls: str
    text: str
    probe: str | None


def hostile_name(rng: random.Random, cls: str, n: int) -> Name:
    """A name of class ``cls`` carrying probe number ``n``."""
    probe = f"{PROBE}{n}"
    text = CLASSES[cls](rng, probe)
    return Name(cls, text, probe if probe in text else None)


def hostile_names(seed: int, count: int, first_probe: int = 0) -> list[Name]:
    """``count`` names of random classes from ``seed``, with one collision family in most draws."""
    rng = random.Random(seed)
    names = [hostile_name(rng, rng.choice(sorted(CLASSES)), first_probe + k) for k in range(count)]
    if count > 2 and rng.random() < 0.7:
        family = collision_family(rng)
        at = rng.sample(range(count), min(len(family), count))
        for i, text in zip(at, family):
            names[i] = Name("collision", text, None)
    return names


def names_strategy(max_names: int = 10):
    """Hypothesis: lists of hostile names, each list reproducible from the seed hypothesis draws."""
    from hypothesis import strategies as st

    return st.tuples(st.integers(0, 2**32 - 1), st.integers(1, max_names)).map(lambda t: hostile_names(*t))


# ---------------------------------------------------------------------------------------------
# Models that carry them
# ---------------------------------------------------------------------------------------------

#: Places a name lands in the template model (in this order), and the metadata fields.
TENSOR_SLOTS = ["input0", "input1", "output0", "output1", "tensor0", "tensor1", "tensor2", "init0", "init1",
                "const0"]
NODE_SLOTS = ["node0", "node1", "node2", "node3", "node4", "node5"]
META_SLOTS = ["graph", "producer", "doc", "lib"]
SLOTS = TENSOR_SLOTS + NODE_SLOTS + META_SLOTS
DEFAULTS = {s: s for s in SLOTS} | {"lib": None}


def template_model(names: dict[str, str | None]) -> onnx.ModelProto:
    """Two inputs, two outputs, a Conv, a Constant, three intermediates: each in its slot's name.

    input0 -Conv(init0, init1)-> tensor0 -Sigmoid-> tensor1 -Add(const0)-> tensor2 -Add(input1)-> output0
                             Concat(tensor1, tensor2) -> output1
    Every op quantizes under --quantize int8 (the Add with a constant is the int8 case of issue 21);
    the Concat reads its inputs through a list (``<layer>_inputs``).
    """
    s = DEFAULTS | {k: v for k, v in names.items() if v is not None or k == "lib"}
    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.uniform(-0.5, 0.5, (4, 2, 3, 3)).astype(np.float32), s["init0"])
    bias = numpy_helper.from_array(rng.uniform(-0.5, 0.5, 4).astype(np.float32), s["init1"])
    constant = numpy_helper.from_array(rng.uniform(-0.5, 0.5, (1, 4, 1, 1)).astype(np.float32), "k")
    n = helper.make_node
    nodes = [n("Conv", [s["input0"], s["init0"], s["init1"]], [s["tensor0"]], name=s["node0"], pads=[1, 1, 1, 1]),
             n("Sigmoid", [s["tensor0"]], [s["tensor1"]], name=s["node1"]),
             n("Constant", [], [s["const0"]], name=s["node2"], value=constant),
             n("Add", [s["tensor1"], s["const0"]], [s["tensor2"]], name=s["node3"]),
             n("Add", [s["tensor2"], s["input1"]], [s["output0"]], name=s["node4"]),
             n("Concat", [s["tensor1"], s["tensor2"]], [s["output1"]], name=s["node5"], axis=1)]
    for node in nodes:
        node.doc_string = s["doc"]
    graph = helper.make_graph(
        nodes, s["graph"],
        [helper.make_tensor_value_info(s["input0"], TensorProto.FLOAT, [1, 2, 6, 6]),
         helper.make_tensor_value_info(s["input1"], TensorProto.FLOAT, [1, 4, 6, 6])],
        [helper.make_tensor_value_info(s["output0"], TensorProto.FLOAT, [1, 4, 6, 6]),
         helper.make_tensor_value_info(s["output1"], TensorProto.FLOAT, [1, 8, 6, 6])],
        [weights, bias], doc_string=s["doc"])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name=s["producer"],
                              producer_version=s["producer"], doc_string=s["doc"])
    helper.set_model_props(model, {s["producer"]: s["doc"]})
    model.ir_version = 8
    return model


def assign(names: list[Name], rng: random.Random, slots: list[str] = SLOTS) -> dict[str, str | None]:
    """The names spread over distinct random slots; tensor names stay distinct (ONNX requires it)."""
    chosen = rng.sample(slots, min(len(names), len(slots)))
    result: dict[str, str | None] = {}
    for slot, name in zip(chosen, names):
        taken = {v for k, v in result.items() if k in TENSOR_SLOTS}
        result[slot] = name.text if slot not in TENSOR_SLOTS or name.text not in taken else name.text + "'"
    return result


def rename_model(model: onnx.ModelProto, names: list[Name], rng: random.Random) -> onnx.ModelProto:
    """Any model with some of its tensors and nodes renamed to ``names`` (kept distinct): how the
    MoE and int8 example models get hostile names."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    tensors = list(dict.fromkeys([v.name for v in g.input] + [i.name for i in g.initializer] +
                                 [o for node in g.node for o in node.output] + [v.name for v in g.output]))
    tensors = [t for t in tensors if t]
    picks = rng.sample(tensors, min(len(tensors), max(1, len(names) // 2)))
    mapping, used = {}, set(tensors) - set(picks)
    for old, name in zip(picks, names):
        new = name.text
        while new in used:  # keep tensor names distinct
            new += "'"
        mapping[old] = new
        used.add(new)
    for name, node in zip(names[len(picks):], rng.sample(list(g.node), min(len(g.node), len(names) - len(picks)))):
        node.name = name.text
    _apply_mapping(g, mapping)
    return model


def _apply_mapping(g: onnx.GraphProto, mapping: dict[str, str]) -> None:
    for v in [*g.input, *g.output, *g.value_info]:
        v.name = mapping.get(v.name, v.name)
    for init in g.initializer:
        init.name = mapping.get(init.name, init.name)
    for node in g.node:
        node.input[:] = [mapping.get(i, i) for i in node.input]
        node.output[:] = [mapping.get(o, o) for o in node.output]


def tflite_spec(names: list[str]):
    """A float TFLite model (x -ADD k-> t -RELU-> y) whose four tensors carry ``names``."""
    from tests.tflite import tflite_writer as tw

    x, k, t, y = (list(names) + ["x", "k", "t", "y"][len(names):])[:4]
    spec = tw.ModelSpec()
    ix = spec.add(x, (1, 4, 4, 3))
    ik = spec.add(k, (3,), data=np.array([0.5, -0.25, 1.0], np.float32))
    it = spec.add(t, (1, 4, 4, 3))
    iy = spec.add(y, (1, 4, 4, 3))
    spec.op("ADD", [ix, ik], [it], ("AddOptions", {"FusedActivationFunction": "NONE"}))
    spec.op("RELU", [it], [iy])
    spec.inputs, spec.outputs = [ix], [iy]
    return spec


def moe_model(directory: Path, timeout: float = 600.0) -> onnx.ModelProto:
    """The MoE MLP example (examples/moe) as ONNX, as edgekit's PyTorch front end exports it (the
    build's reference.onnx for the onnxruntime back end, which applies no rewrite of its own)."""
    out = directory / "moe-export"
    result = contract.run_cli(["build", f"{ROOT}/examples/moe/moe_models.py:make_moe_mlp", "--input-shape", "1,16",
                               "--target", "x86-64", "-o", str(out), "-q"], timeout)
    if result.code != 0:
        raise RuntimeError(f"exporting the MoE example failed: {result.stderr.strip()[:300]}")
    return onnx.load(str(out / "reference.onnx"))


# ---------------------------------------------------------------------------------------------
# The checker: generated text, language by language
# ---------------------------------------------------------------------------------------------

TEXT_SUFFIXES = {".c", ".h", ".S", ".s", ".ld", ".mk", ".cmake", ".yml", ".yaml", ".json", ".svg", ".xml", ".py",
                 ".txt", ".md", ".toml", ".cfg", ".ini", ".conf"}
TEXT_NAMES = {"CMakeLists.txt", "Kconfig", "Makefile"}
_PRINTABLE = re.compile(r"[^\t\n\x20-\x7e]")
_TRIGRAPH = re.compile(r"\?\?[=/'()!<>\-]")
_TRIGRAPH_OF = dict(zip("=/'()!<>-", "#\\^[]|{}~"))
#: GCC splices a backslash and a line end (LF, CR or CRLF), also with blanks between (a warning).
_SPLICE = re.compile(r"\\[ \t\f\v]*(?:\r\n|\r|\n)")


def _nonprintable(text: str, where: str) -> list[str]:
    bad = sorted({repr(c) for c in _PRINTABLE.findall(text)})
    return [f"{where}: characters outside printable ASCII: {', '.join(bad[:8])}"] if bad else []


def _escapes(text: str, where: str) -> list[str]:
    found = sorted(set(PROBE_WORD.findall(text)))
    return [f"{where}: model text escaped into code: {', '.join(found)}"] if found else []


def _splice_lines(text: str) -> tuple[str, list[int]]:
    """Phase 2 of translation: the text with splices removed, line ends made LF, and the offsets (in
    the result) where a splice was."""
    out, at, last = [], [], 0
    for m in _SPLICE.finditer(text):
        out.append(text[last:m.start()])
        last = m.end()
        at.append(sum(map(len, out)))
    out.append(text[last:])
    return re.sub(r"\r\n?", "\n", "".join(out)), at


_C_TOKEN = re.compile(r"""
    (?P<block>/\*.*?(?:\*/|\Z)) | (?P<line>//[^\n]*) |
    (?P<string>"(?:[^"\\\n]|\\.)*(?:"|$)) | (?P<char>'(?:[^'\\\n]|\\.)*(?:'|$)) |
    (?P<ident>[A-Za-z_][A-Za-z0-9_]*) | (?P<number>\.?[0-9](?:[eEpP][+-]|[A-Za-z0-9_.])*) |
    (?P<space>[ \t\f\v]+) | (?P<newline>\n) |
    (?P<punct>\.\.\.|<<=|>>=|->|\+\+|--|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^!~<>=?:;,.#()\[\]{}]) |
    (?P<stray>.)""", re.S | re.M | re.X)


def c_tokens(text: str):
    """(kind, start, end, text) of C preprocessing tokens, comments and directives' headers."""
    at_line_start, directive, pos = True, None, 0
    while pos < len(text):
        if directive == "include" and text[pos] == "<":  # a header name, not operators
            end = text.find(">", pos)
            end = len(text) if end < 0 else end + 1
            yield "header", pos, end, text[pos:end]
            pos = end
            continue
        m = _C_TOKEN.match(text, pos)
        kind, value = m.lastgroup, m.group()
        if kind == "newline":
            at_line_start, directive = True, None
        elif kind == "punct" and value == "#" and at_line_start:
            directive = "start"
        elif kind == "ident" and directive == "start":
            directive = value
        if kind not in ("space", "block", "newline"):
            at_line_start = False
        yield kind, m.start(), m.end(), value
        pos = m.end()


def check_c(text: str, where: str) -> list[str]:
    """Generated C, read as GCC reads it with -trigraphs: printable ASCII with LF line ends; no
    trigraph anywhere; no splice inside a comment or literal; comments closed and without
    ``/*``, ``*/`` or a trailing backslash; literals closed; every code token a C token of
    [A-Za-z0-9_] and punctuation; no probe as a code token."""
    findings = _nonprintable(text, where)
    if _TRIGRAPH.search(text):
        findings.append(f"{where}: trigraph {_TRIGRAPH.search(text).group()!r} (with -trigraphs it is replaced)")
    text = _TRIGRAPH.sub(lambda m: _TRIGRAPH_OF[m.group()[2]], text)
    logical, splices = _splice_lines(text)
    for kind, start, end, value in c_tokens(logical):
        spliced = bisect.bisect_right(splices, start) < bisect.bisect_left(splices, end)
        findings += _c_token_findings(kind, value, spliced, logical, start, where)
    return list(dict.fromkeys(findings))


def _c_token_findings(kind: str, value: str, spliced: bool, logical: str, start: int, where: str) -> list[str]:
    line = logical.count("\n", 0, start) + 1
    here = f"{where}:{line}"
    if kind in ("block", "line"):
        body = value[2:-2] if kind == "block" else value[2:]
        problems = [p for p, bad in (("a line splice", spliced), ("'/*'", "/*" in body),
                                     ("'*/'", kind == "line" and "*/" in body),
                                     ("no end", kind == "block" and not value.endswith("*/") or len(value) < 4 and
                                      kind == "block")) if bad]
        return [f"{here}: comment with {', '.join(problems)}: {value[:80]!r}"] if problems else []
    if kind in ("string", "char"):
        quote = value[0]
        if spliced or len(value) < 2 or not value.endswith(quote) or value.endswith("\\" + quote) and \
                not value.endswith("\\\\" + quote):
            return [f"{here}: {kind} literal spliced or not closed: {value[:80]!r}"]
        return []
    if kind == "stray":
        return [f"{here}: stray character {value!r} in code"]
    if kind == "ident" and PROBE_WORD.fullmatch(value):
        return [f"{here}: model text escaped into code: {value}"]
    return []


def check_linker_script(text: str, where: str) -> list[str]:
    """A GNU ld script: C comments; the probe only inside comments and strings."""
    findings = _nonprintable(text, where)
    code = []
    for kind, start, end, value in c_tokens(text):
        if kind in ("block", "line"):
            findings += _c_token_findings(kind, value, False, text, start, where)
        elif kind not in ("string",):
            code.append(value)
    return findings + _escapes(" ".join(code), where)


def _hash_comment_split(line: str) -> tuple[str, str]:
    """(code, comment) of a line in a '#'-comment language (Make, Kconfig, YAML), quotes respected."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] != "\\"):
            return line[:i], line[i + 1:]
    return line, ""


def check_make(text: str, where: str) -> list[str]:
    """A Makefile fragment: printable ASCII; a comment line never ends with a backslash (Make would
    continue the comment onto the next line); the probe only in comments; no $(shell) or backtick."""
    findings = _nonprintable(text, where)
    code = []
    for n, line in enumerate(text.split("\n"), 1):
        body, comment = _hash_comment_split(line)
        if comment and comment.rstrip(" \t").endswith("\\"):
            findings.append(f"{where}:{n}: comment continued onto the next line: {line[:80]!r}")
        code.append(body)
        if re.search(r"\$[({]shell\b|`", body):
            findings.append(f"{where}:{n}: shell command in a Make fragment: {line[:80]!r}")
    return findings + _escapes("\n".join(code), where)


def check_cmake(text: str, where: str) -> list[str]:
    """CMake: printable ASCII; no bracket comment or argument (#[[ / [[) opened by a name; quoted
    arguments closed; the probe only in comments and quoted arguments, never inside ${...}, $<...>
    or $ENV{...} (expanded even in quotes)."""
    findings = _nonprintable(text, where)
    code, quoted, pos = [], [], 0
    bracket = re.search(r".{0,20}\[=*\[.{0,20}", text)
    if bracket:
        findings.append(f"{where}: bracket comment or argument: {bracket.group()!r}")
    while pos < len(text):
        c = text[pos]
        if c == "#":
            pos = _end_of_line(text, pos)
        elif c == '"':
            m = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S).match(text, pos)
            if not m:
                return findings + [f"{where}: quoted argument not closed: {text[pos:pos + 80]!r}"]
            quoted.append(m.group(1))
            pos = m.end()
        else:
            code.append(c)
            pos += 1
    references = re.findall(r"\$(?:ENV)?\{[^}]*\}|\$<[^>]*>", "".join(code) + "\n" + "\n".join(quoted))
    return findings + _escapes("".join(code), where) + _escapes(" ".join(references), where + " (${...})")


def _end_of_line(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end < 0 else end


def check_kconfig(text: str, where: str) -> list[str]:
    """Kconfig: printable ASCII; the probe only in comments, quoted strings and help text (the
    lines indented deeper than their ``help``); no $(...) macro outside help text and comments."""
    findings = _nonprintable(text, where)
    code, help_indent = [], None
    for n, line in enumerate(text.split("\n"), 1):
        indent = len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())
        if help_indent is not None and (not line.strip() or indent > help_indent):
            continue
        help_indent = indent if line.strip() in ("help", "---help---") else None
        body, _ = _hash_comment_split(line)
        unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', body)
        if unquoted.count('"') % 2:
            findings.append(f"{where}:{n}: string not closed: {line[:80]!r}")
        if "$(" in body:
            findings.append(f"{where}:{n}: Kconfig macro outside help text: {line[:80]!r}")
        code.append(unquoted)
    return findings + _escapes("\n".join(code), where)


def check_yaml(text: str, where: str) -> list[str]:
    """YAML: printable ASCII, parses, and the probe is in no mapping key (a name that adds keys)."""
    import yaml

    findings = _nonprintable(text, where)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return findings + [f"{where}: YAML does not parse: {str(exc).splitlines()[0]}"]
    return findings + _escapes(" ".join(_keys(data)), where + " (keys)")


def _keys(data) -> list[str]:
    if isinstance(data, dict):
        return [str(k) for k in data] + [k for v in data.values() for k in _keys(v)]
    if isinstance(data, list):
        return [k for v in data for k in _keys(v)]
    return []


def check_json(text: str, where: str) -> list[str]:
    def reject(constant):
        raise ValueError(f"non-standard constant {constant}")

    try:
        json.loads(text, parse_constant=reject)
    except ValueError as exc:
        return [f"{where}: JSON does not parse: {exc}"]
    return []


#: SVG elements the plan drawing may use; anything else (script, foreignObject...) came from a name.
SVG_TAGS = {"svg", "title", "text", "rect", "g", "line", "path", "desc", "tspan"}


def check_svg(data: bytes, where: str) -> list[str]:
    """SVG: well-formed XML without a DTD, only drawing elements, no event-handler attributes, the
    probe in no element or attribute name."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        return [f"{where}: DTD or entity declaration"]
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        return [f"{where}: XML does not parse: {exc}"]
    findings = []
    for el in root.iter():
        tag = el.tag.rpartition("}")[2]
        if tag not in SVG_TAGS or any(a.lower().startswith("on") for a in el.attrib):
            findings.append(f"{where}: element <{tag}> with attributes {sorted(el.attrib)[:5]}")
        findings += _escapes(" ".join([tag, *el.attrib]), where)
    return findings


def check_python(data: bytes, where: str) -> list[str]:
    """Python: parses as the interpreter parses it (CR is a line end there too); the probe in no
    identifier (name, attribute, argument, definition, import), only in strings and comments."""
    try:
        tree = ast.parse(data)
    except (SyntaxError, ValueError) as exc:
        return [f"{where}: Python does not parse: {exc}"]
    words = []
    for node in ast.walk(tree):
        for attr in ("id", "attr", "name", "arg", "asname", "module"):
            value = getattr(node, attr, None)
            if isinstance(value, str):
                words.append(value)
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            words += node.names
    return _escapes(" ".join(words), where)


def check_text_file(path: Path, where: str) -> list[str]:
    """The rules of the language of ``path`` (by name); [] for a file no rule reads."""
    data = path.read_bytes()
    if b"\0" in data[:4096] and path.suffix not in (".json", ".svg"):
        return []  # a binary file (object, library, weights)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [f"{where}: not UTF-8"]
    name, suffix = path.name, path.suffix
    if suffix in (".c", ".h", ".S"):
        return check_c(text, where)
    if suffix == ".s" or suffix == ".ld":
        return check_linker_script(text, where)
    if suffix == ".mk" or name == "Makefile":
        return check_make(text, where)
    if name == "CMakeLists.txt" or suffix == ".cmake":
        return check_cmake(text, where)
    if name == "Kconfig":
        return check_kconfig(text, where)
    if suffix in (".yml", ".yaml"):
        return check_yaml(text, where)
    if suffix == ".json":
        return check_json(text, where)
    if suffix in (".svg", ".xml"):
        return check_svg(data, where)
    if suffix == ".py":
        return check_python(data, where)
    return _nonprintable(text, where) + _escapes(text, where)


def check_tree(out: Path) -> list[str]:
    """Every text file the build wrote, by its language's rules."""
    findings = []
    for path in sorted(out.rglob("*")):
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES):
            findings += check_text_file(path, str(path.relative_to(out)))
    return findings


#: What the host compiler must accept without a word: C99, every warning, trigraphs on.
GCC_STRICT = ("gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-trigraphs", "-fsyntax-only")


@lru_cache(maxsize=1)
def _tvm_includes() -> tuple[str, ...]:
    """The TVM back end's driver includes TVM's C API headers (found as that back end finds them;
    importing TVM takes seconds, so only for a tree that needs them, once)."""
    try:
        from edgekit.compiler.export import include_dirs
    except ImportError:
        return ()
    return tuple(f"-I{d}" for d in include_dirs())


def _generated_sources(out: Path) -> list[Path]:
    """The C files of ``out`` that a model may have shaped: not the kernels copied verbatim."""
    return [p for p in sorted(out.rglob("*.c"))
            if not ((KERNELS / p.name).is_file() and (KERNELS / p.name).read_bytes() == p.read_bytes())]


def compile_findings(out: Path) -> list[str]:
    """Every generated C file compiled on the host with GCC_STRICT."""
    sources = _generated_sources(out)
    includes = sorted({f"-I{p.parent}" for p in out.rglob("*.h")} | {f"-I{out}"})
    if any(re.search(rb"#include [<\"]tvm/", p.read_bytes()) for p in sources):
        includes += _tvm_includes()
    findings = []
    for src in sources:
        done = subprocess.run([*GCC_STRICT, *includes, str(src)], capture_output=True, text=True, timeout=120)
        if done.returncode or done.stderr.strip():
            first = next((ln for ln in done.stderr.splitlines() if "error" in ln or "warning" in ln), done.stderr[:200])
            findings.append(f"{src.relative_to(out)}: gcc -trigraphs -Werror: {first.strip()[:300]}")
    return findings


# ---------------------------------------------------------------------------------------------
# One build
# ---------------------------------------------------------------------------------------------

#: Back ends and what a build of each runs: the host (mcu-c under ASan/UBSan), QEMU, TVM.
FLAVOURS = {
    "host": ("--target", "x86-64", "--backend", "mcu-c"),
    "int8": ("--target", "x86-64", "--backend", "mcu-c", "--quantize", "int8"),
    "cortex-m4": ("--target", "cortex-m4"),
    "cortex-m4-tvm": ("--target", "cortex-m4", "--kernels", "tvm"),
    "tvm": ("--target", "x86-64", "--backend", "tvm"),
}


#: What a message must not carry raw: C0 controls but tab and newline, DEL, C1 controls (CSI).
_TERMINAL_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass
class HostileOutcome:
    """One build's verdict: ``escapes`` (probe or rule breaks in generated text) and ``violations``
    (contract, compiler or run failures) must both be empty."""

    code: int | None
    message: str
    escapes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def built(self) -> bool:
        return self.code == 0

    @property
    def refused(self) -> bool:
        return self.code in (1, 2) and not self.violations

    @property
    def findings(self) -> list[str]:
        return self.escapes + self.violations


def check_hostile_build(model: Path | str, out: Path, flavour: str = "host", lib_name: str | None = None,
                        run: bool = True, extra: tuple[str, ...] = (), timeout: float = 300.0,
                        must_build: bool = False) -> HostileOutcome:
    """Build ``model`` into ``out`` through the real CLI and judge it.

    A refusal must keep the contract (tests/hardening/contract.py) and be an input error (exit 2):
    a name cannot make a correct build fail, so exit 1 (the C did not compile, the run did not
    match) is a violation. ``must_build``: names that are valid words (keywords, our own symbols,
    collisions) must build. A success must leave every generated file clean (``check_tree``), its C
    must compile with GCC_STRICT, and with ``run`` the build itself compared its run with
    onnxruntime (on the host under ASan/UBSan, or on QEMU)."""
    args = ["build", str(model), "-o", str(out), "-q", *FLAVOURS[flavour], *extra]
    args += ["--run"] if run else []
    args += ["--name", lib_name] if lib_name is not None else []
    result = contract.run_cli(args, timeout)
    lines = result.stderr.strip().splitlines()
    outcome = HostileOutcome(result.code, lines[0][:300] if lines else "", seconds=result.seconds)
    verdict = contract.judge(result, out)
    if _TERMINAL_CONTROL.search(result.stderr):  # a name echoed raw can rewrite the user's terminal
        outcome.violations.append(f"control characters on stderr: {result.stderr.strip()[:200]!r}")
    if verdict:
        outcome.violations.append(f"contract: {verdict}")
    elif result.code == 1:
        outcome.violations.append(f"exit 1 (the build failed on a name): {outcome.message}")
    elif result.code == 2 and must_build:
        outcome.violations.append(f"refused a valid name: {outcome.message}")
    if result.code == 0 and out.is_dir():
        outcome.escapes += check_tree(out)
        outcome.violations += compile_findings(out)
        outcome.violations += _run_findings(out, flavour) if run else []
    return outcome


def refusal_model(kind: str, name: str) -> onnx.ModelProto:
    """A model edgekit must refuse, with ``name`` where the refusal names it: ``unsupported`` (a
    node of an op mcu-c lacks), ``dynamic`` (an input without a static shape)."""
    dims = ["N", 3] if kind == "dynamic" else [2, 3]
    op = "Hardmax" if kind == "unsupported" else "Relu"
    graph = helper.make_graph([helper.make_node(op, [name], ["y"], name=name)], "g",
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def check_refusal(model: Path | str, out: Path, extra: tuple[str, ...] = (), timeout: float = 120.0) -> list[str]:
    """A build that must fail, naming a hostile name: refused by the contract (one line, no
    traceback, no directory) without raw control characters; the violations."""
    result = contract.run_cli(["build", str(model), "-o", str(out), "-q", "--target", "cortex-m4", *extra], timeout)
    violations = [] if result.code else ["built, though it had to be refused"]
    verdict = contract.judge(result, out)
    violations += [f"contract: {verdict}"] if verdict else []
    if _TERMINAL_CONTROL.search(result.stderr):
        violations.append(f"control characters on stderr: {result.stderr.strip()[:200]!r}")
    return violations


def _run_findings(out: Path, flavour: str) -> list[str]:
    """A --run build must have run and been compared (on the host: under ASan and UBSan)."""
    ran = json.loads((out / "report.json").read_text()).get("run") or {}
    if ran.get("judged_against") not in ("onnxruntime", "float64"):
        return [f"--run did not compare the run with onnxruntime: {sorted(ran)}"]
    host_mcu = flavour in ("host", "int8")
    if host_mcu and ran.get("measurements", {}).get("sanitizers") != "address,undefined":
        return [f"the host run was not under ASan/UBSan: {ran.get('measurements')}"]
    return []
