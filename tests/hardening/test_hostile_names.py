"""Hostile names (issue 21): model names built to escape from generated code, in every place a name
lands (inputs, outputs, nodes, intermediate tensors, initializers, Constant outputs, graph name,
producer, doc strings, ``--name``), through every back end (mcu-c on the host under ASan/UBSan and on
QEMU, --kernels tvm, the tvm back end, int8, mixture of experts, TFLite tensor names). Each build
either succeeds with every generated file clean, warning-free under ``gcc -trigraphs -Werror`` and
its run matching onnxruntime, or is refused as an input error (tests/hardening/hostile_names.py).

The checker's own rules are tested first, on hand-written escapes: a checker that sees nothing
would pass every build."""

from __future__ import annotations

import logging
import random
import re

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hardening import hostile_names as hn

logging.getLogger().setLevel(logging.ERROR)
FUZZ = settings(deadline=None, database=None, derandomize=True, max_examples=3,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module", autouse=True)
def _preloaded():
    hn.contract.preload()


# --- the checker catches what it is for --------------------------------------------------------

@pytest.mark.parametrize("text", [
    "/* node 'x\\\r int EKPWN1=1;//' */\nint a;\n",      # backslash + bare CR splices the comment
    "// node x\\\nint EKPWN1 = 1;\n",                   # a // comment continued: harmless here, but
    "/* x??/\n*/ int EKPWN1;\n",                       # ...the splice inside a comment is flagged
    "/* a */ int EKPWN1 = 1; /* b */\n",                 # */ in a name ended the comment
    "const char *s = \"x\"; EKPWN1(); \"\";\n",          # a quote in a name ended the string
    "/* caf\u00e9 */ int x;\n",                          # non-ASCII text
    "int x\u2028EKPWN2;\n",
])
def test_c_checker_sees_escapes(text):
    assert hn.check_c(text, "f.c")


@pytest.mark.parametrize("text", [
    "/* x_int_EKPWN1_1 'a * /' */\n#include <stdint.h>\n#define A(x) \\\n    ((x) + 1)\n",
    "static const char s[] = \"EKPWN1 \\\"q\\\" \\\\\"; /* EKPWN1 */ char c = '\\'';\n",
])
def test_c_checker_accepts_clean_code(text):
    assert hn.check_c(text, "f.c") == []


@pytest.mark.parametrize("check,text", [
    (hn.check_make, "# x \\\nA := 1\n"),
    (hn.check_make, "A := $(shell EKPWN1)\n"),
    (hn.check_cmake, "add_library(x)\nadd_custom_target(EKPWN1 ALL)\n"),
    (hn.check_cmake, 'message("${EKPWN1}")\n'),
    (hn.check_cmake, "#[[ x\n"),
    (hn.check_kconfig, 'config A\n\tbool "x"\nconfig EKPWN1\n'),
    (hn.check_yaml, "name: x\nEKPWN1: 1\n"),
    (hn.check_json, '{"a": NaN}'),
])
def test_language_checkers_see_escapes(check, text):
    assert check(text, "f")


def test_svg_and_python_checkers_see_escapes():
    assert hn.check_svg(b'<svg xmlns="http://www.w3.org/2000/svg"><script>x</script></svg>', "f.svg")
    assert hn.check_svg(b'<svg xmlns="http://www.w3.org/2000/svg"><title>\x01</title></svg>', "f.svg")
    assert hn.check_python(b"# x\rEKPWN1 = 1\n", "f.py")
    assert hn.check_python(b"s = f'{EKPWN1}'\n", "f.py")
    assert hn.check_python(b"s = 'EKPWN1'  # EKPWN1\n", "f.py") == []


def test_generator_covers_every_class_and_is_reproducible():
    rng = random.Random(0)
    for cls in hn.CLASSES:
        names = [hn.hostile_name(rng, cls, k) for k in range(30)]
        assert len({n.text for n in names}) > 1, cls
        # sanitised, a name never leaves its probe standing alone (that would read as an escape)
        assert not any(hn.PROBE_WORD.search(re.sub(r"[^A-Za-z0-9_]+", "_", n.text).strip("_")) for n in names), cls
    assert [n.text for n in hn.hostile_names(5, 8)] == [n.text for n in hn.hostile_names(5, 8)]
    long = [hn.hostile_name(rng, "long", 0).text for _ in range(5)]
    assert all(900 <= len(t) <= 10_100 for t in long)
    assert "ek_conv2d_f32" in hn.kernel_functions()


# --- fixed cases: one per class and place --------------------------------------------------------

def _build(tmp_path, names: dict, flavour: str = "host", run: bool = True,
           must_build: bool = False) -> hn.HostileOutcome:
    """The template model with ``names`` in their slots (``lib``: --name), built and judged."""
    lib = names.pop("lib", None)
    path = tmp_path / "model.onnx"
    onnx.save(hn.template_model(names), path)
    outcome = hn.check_hostile_build(path, tmp_path / "out", flavour, lib_name=lib, run=run, must_build=must_build)
    assert not outcome.findings, f"{flavour} {names!r} lib={lib!r}:\n" + "\n".join(outcome.findings)
    return outcome


SPLICE = "x\\\r int EKPWN1=1;//"
#: (case id, names by slot): every class of name in the places it is most dangerous.
INJECTION_CASES = [
    ("splice-cr-node", {"node0": SPLICE}),
    ("splice-crlf-input", {"input0": "x\\\r\n int EKPWN1=1;//"}),
    ("splice-lf-output", {"output0": "y\\\n int EKPWN1=1;//"}),
    ("splice-blank-intermediate", {"tensor1": "t\\ \r EKPWN1(1);"}),
    ("trigraph-initializer", {"init0": "w??/\n int EKPWN1=1;//", "node2": "??=define EKPWN2 1"}),
    ("trailing-backslash-everywhere", {"node0": "a\\", "node3": "b\\\\", "tensor0": "c\\ ", "const0": "k\\"}),
    ("comment-close", {"node1": "*/ int EKPWN1=1; /*", "output1": "x*/EKPWN2(1);/*", "input1": "/*"}),
    ("newlines", {"node4": "x\n#define EKPWN1 =1\ny", "tensor2": "x\rint EKPWN2 =1;\ry"}),
    ("unicode-breaks", {"node5": "x\u2028int EKPWN1=1;", "input0": "x\u0085int EKPWN2=1;", "init1": "\u2029"}),
    ("quotes", {"input0": "\"); int EKPWN1=1; (\"", "output0": "'); EKPWN2 =1; ('", "node0": "\"\"\"; EKPWN3 =1"}),
    ("markup", {"node0": "</title><script>EKPWN1(1)</script>", "tensor0": "]]><!-- EKPWN2 =1 -->", "node1": "&amp;"}),
    ("shell-make-cmake", {"node0": "$(shell EKPWN1 =1)", "output1": "${EKPWN2 =1}", "tensor1": "`EKPWN3 =1`"}),
    ("nul-and-control", {"node0": "x\x00EKPWN1 =1", "tensor0": "\x01\x1b[2J\x7f", "input1": "a\tb"}),
    ("non-ascii", {"input0": "\u00e9", "output0": "\U0001F600", "node0": "\u202eEKPWN1 =1", "init0": "\ufeffw"}),
    ("metadata", {"graph": SPLICE, "producer": "*/ EKPWN1 =1 /*", "doc": "x\\\r\n#include \"EKPWN2=1\"\n"}),
    ("long-names", {"node0": "a" * 5000 + SPLICE + "b" * 50, "input0": "\u00e9" * 3000, "tensor0": "\\" * 1200}),
    # one build with a different class in every place: what CI runs of the cases above
    ("every-class", {"node0": SPLICE, "init0": "w??/\n int EKPWN2=1;//", "node3": "b\\",
                     "node1": "*/ EKPWN3(1); /*", "output0": "\"); int EKPWN4=1; (\"",
                     "tensor2": "x\rint EKPWN5 =1;\ry", "input1": "x\u2028int EKPWN6=1;",
                     "tensor0": "]]><!-- EKPWN7 =1 -->", "output1": "$(shell EKPWN8 =1)",
                     "node4": "x\x00\x1b[2JEKPWN9 =1", "node5": "\u202e\U0001F600", "input0": "a" * 3000 + SPLICE,
                     "graph": "g\\\r EKPWN10(1);", "producer": "??=define EKPWN11 1",
                     "doc": "x\\\r\n#include \"EKPWN12=1\"\n", "lib": "x\\\r EKPWN13=1"}),
]
LONG_TAIL = "_".join(["z" * 30] * 4)
#: Valid words that collide with C, with our own symbols, or with each other after sanitising: these
#: must build (a refusal is a finding) and compute the right values.
WORD_CASES = [
    ("c-keywords", {"input0": "int", "input1": "NULL", "output0": "main", "output1": "errno", "node0": "EK_T",
                    "tensor0": "return", "init0": "static", "node3": "printf"}),
    ("generated-symbols", {"input0": "arena", "input1": "inputs", "output0": "outputs", "output1": "model_run",
                           "tensor0": "OFFSET_x", "tensor1": "SCRATCH_0", "node0": "in_x", "node1": "out_x",
                           "init0": "x_params", "node5": "status"}),
    ("kernel-names", {"node0": "ek_conv2d", "node1": "ek_conv2d_f32", "tensor0": "ek_conv2d_params",
                      "node5": "ek_concat_f32", "init1": "EK_PROFILE_MARK"}),
    ("collide-input-list", {"input0": "x_inputs", "node5": "in_x", "input1": "x"}),
    ("collide-offset-params", {"tensor0": "x_params", "node0": "OFFSET_x", "tensor1": "x"}),
    ("collide-sanitised", {"input0": "a.b", "input1": "a-b", "tensor0": "a_b", "output0": "a b",
                           "output1": "a/b"}),
    ("collide-case", {"input0": "X", "input1": "x", "tensor0": "OFFSET_X", "tensor1": "offset_x"}),
    ("int8-run-io", {"node3": "run", "const0": "io", "tensor2": "model_run_io"}),
    ("anonymous-nodes", {"node0": "", "node1": "", "node3": "", "node4": "", "node5": "", "input0": "layer0",
                         "tensor0": "layer1_params", "tensor1": "t_2"}),
    ("collide-when-shortened", {"input0": "a" + LONG_TAIL, "input1": "b" + LONG_TAIL, "tensor0": "A" + LONG_TAIL,
                                "output0": LONG_TAIL + "a", "output1": LONG_TAIL + "b", "node0": "a" + LONG_TAIL}),
]
LIB_NAMES = [SPLICE, "x\n#define EKPWN1", "int", "stdio", "ek_conv", "model_run", "a b", "\u00e9", "", "9lives",
             "x" * 2000, "$(EKPWN1 =1)", "../x", "CMakeLists"]


#: The cases CI runs (each build takes seconds: the back end compiles the library to measure it);
#: the others are marked slow.
DEFAULT = {"every-class", "collide-input-list", "collide-offset-params", "int8-run-io", "lib2"}


def _cases(cases: list[tuple[str, object]]) -> list:
    return [pytest.param(case, value, id=case, marks=() if case in DEFAULT else pytest.mark.slow)
            for case, value in cases]


def test_fixed_names_keep_their_probes_glued():
    """A fixed name sanitised never leaves its probe standing alone (it would read as an escape)."""
    texts = [t for _, names in INJECTION_CASES + WORD_CASES for t in names.values()] + LIB_NAMES
    assert not [t for t in texts if hn.PROBE_WORD.search(re.sub(r"[^A-Za-z0-9_]+", "_", t).strip("_"))]


@pytest.mark.parametrize("case,names", _cases(INJECTION_CASES))
def test_injection_names_on_the_host(case, names, tmp_path):
    """mcu-c for the host: clean files, C warning-free under gcc -trigraphs -Werror (built, not run:
    a name that only reaches comments and strings cannot change what the code computes)."""
    _build(tmp_path, dict(names), run=False)


@pytest.mark.parametrize("case,names", _cases(WORD_CASES))
def test_valid_words_build_and_match(case, names, tmp_path):
    """Words that collide build, and run on the host under ASan/UBSan matching onnxruntime (a
    collision that reads the wrong pointer compiles)."""
    _build(tmp_path, dict(names), "int8" if case.startswith("int8") else "host", must_build=True)


@pytest.mark.parametrize("case,lib", _cases([(f"lib{k}", lib) for k, lib in enumerate(LIB_NAMES)]))
def test_library_name(case, lib, tmp_path):
    """--name: the library prefix, which also names files (not run: nothing else differs)."""
    _build(tmp_path, {"lib": lib}, run=False, must_build=lib.isidentifier() and lib not in ("int", "stdio"))


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["int8", "cortex-m4", "cortex-m4-tvm", "tvm"])
def test_injection_names_on_other_back_ends(flavour, tmp_path):
    """One build per back end with names in every slot: QEMU, TVM kernels under mcu-c, the tvm back
    end (its C and Python loaders), int8."""
    names = {"node0": SPLICE, "input0": "x\\\r\n int EKPWN2=1;//", "output0": "\"); EKPWN3 =1; (\"",
             "output1": "y??/\n EKPWN4(1);", "tensor1": "*/ EKPWN5 =1 /*", "const0": "io", "node3": "run",
             "init0": "x_params", "node5": "in_x", "graph": "g\\\r EKPWN6(1);", "lib": "x\\\r EKPWN7"}
    _build(tmp_path, names, flavour)


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["host", "cortex-m4", "tvm"])
def test_moe_model_with_hostile_names(flavour, tmp_path, moe_onnx):
    """The mixture-of-experts example, its tensors and nodes renamed, built with the experts pass:
    mcu-c's expert sub-libraries, linker fragment and routing picture (host under ASan/UBSan, QEMU),
    and the tvm back end's MoE driver."""
    names = hn.hostile_names(3, 10)
    model = hn.rename_model(moe_onnx, names, random.Random(3))
    path = tmp_path / "moe.onnx"
    onnx.save(model, path)
    outcome = hn.check_hostile_build(path, tmp_path / "out", flavour, lib_name="x\\\r EKPWN99=1",
                                     extra=("--passes", "experts-partition"))
    assert not outcome.findings, "\n".join(outcome.findings)
    assert "moe" in (tmp_path / "out" / "report.json").read_text()  # the experts pass did rewrite it


def test_tflite_tensor_names(tmp_path):
    """A .tflite file's tensor names, through the TFLite front end."""
    pytest.importorskip("tflite")
    from tests.tflite import tflite_writer as tw

    path = tmp_path / "m.tflite"
    path.write_bytes(tw.write(hn.tflite_spec([SPLICE, "*/ EKPWN2 =1 /*", "y??/\n EKPWN3(1);", "run"])))
    outcome = hn.check_hostile_build(path, tmp_path / "out", "host")
    assert not outcome.findings, "\n".join(outcome.findings)


MESSAGE_NAME = "x\r\n\x1b[2Jint EKPWN1=1;\u2028y\x85z"


@pytest.mark.parametrize("kind,extra", [("unsupported", ()), ("dynamic", ()),
                                        ("dynamic", ("--input-shape", "q\r\nEKPWN2=1,3"))],
                         ids=["unsupported-op-node", "dynamic-input", "unknown-input-shape-name"])
def test_refusals_naming_a_hostile_name_keep_to_one_line(kind, extra, tmp_path):
    """Error messages quote names: the one line on stderr must stay one line (no CR, LF, U+2028,
    U+0085) and carry no terminal control sequence."""
    path = tmp_path / "model.onnx"
    onnx.save(hn.refusal_model(kind, MESSAGE_NAME), path)
    violations = hn.check_refusal(path, tmp_path / "out", extra)
    assert not violations, "\n".join(violations)


# --- the bounded fuzz ------------------------------------------------------------------------------

@settings(FUZZ)
@given(hn.names_strategy(), st.randoms(use_true_random=False))
def test_random_hostile_names_build_clean(names, rng):
    """Random classes in random places, random --name too: built (not run) for the host, every file
    checked and compiled; benchmarks/fuzz_frontends.py --hostile-names N runs many more, with --run."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="ek-hostile-") as tmp:
        _build(Path(tmp), hn.assign(names, rng), run=False)


@pytest.fixture(scope="module")
def moe_onnx(tmp_path_factory):
    return hn.moe_model(tmp_path_factory.mktemp("moe"))
