"""The naming and escaping authority (edgekit/naming.py): what model text may become in generated files."""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings, strategies as st

from edgekit.errors import BuildError
from edgekit.naming import (SymbolTable, c_comment, c_string, identifier, library_prefix, require_identifier,
                            require_relative_path, xml_text)

HOSTILE = ["n\\\rint x;", "a\\\n", "a\\\r\n", "??/", "a??/\nb", "*/ int x; /*", "/*", "*/", "x\u2028y",
           "\x00", "é", "#define X", '"', "'", "a" * 5000, "", "_", "__", "9", "int", "NULL", "ek_conv2d",
           "EK_T", "__tvm_ffi_x", "_Bool", "errno", "tvm_x", "main"]
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@pytest.mark.parametrize("text", HOSTILE)
def test_identifiers_are_plain_and_outside_reserved_namespaces(text):
    ident = identifier(text)
    assert IDENT.match(ident) and len(ident) <= 64
    assert not ident.lower().startswith(("ek_", "__", "tvm")) and not re.match(r"_[A-Z]", ident)
    assert ident not in {"int", "NULL", "errno", "main", "_Bool"}


def test_symbol_table_keeps_every_form_unique_case_insensitively():
    table = SymbolTable(reserved=("model_run", "inputs"))
    tensor = table.claim("t:x_inputs", "x_inputs", ("in_{}", "out_{}", "OFFSET_{}"))
    layer = table.claim("l:in_x", "in_x", ("{}_params", "{}_inputs"))
    const = table.claim("c:run", "run", ("model_{}",))
    upper = table.claim("t:X_INPUTS", "X_INPUTS", ("in_{}", "out_{}", "OFFSET_{}"))
    assert tensor == "x_inputs"
    assert layer == "in_x_2"          # in_x_inputs is the input's pointer
    assert const == "run_2"           # model_run is the API
    assert upper == "X_INPUTS_2"      # OFFSET_X_INPUTS would meet OFFSET_x_inputs upper-cased
    assert table.claim("t:x_inputs", "other") == tensor  # the same key, the same name
    kernel = table.claim("l:k", "ek_conv2d", ("{}_params",))
    assert not kernel.lower().startswith("ek_")
    table.reserve_prefix("model_moe0_e")
    assert table.claim("c:e", "moe0_e0_run", ("model_{}",)) != "moe0_e0_run"


@given(st.lists(st.text(min_size=0, max_size=30), min_size=1, max_size=30))
@settings(max_examples=200, deadline=None)
def test_any_names_get_distinct_identifiers(names):
    table = SymbolTable(reserved=("in_x",))
    forms = ("in_{}", "OFFSET_{}", "{}_params")
    got = [table.claim(i, name, forms) for i, name in enumerate(names)]
    written = [form.format(g).lower() for g in got for form in forms]
    assert len(set(written)) == len(written) and "in_x" not in written
    assert all(IDENT.match(g) for g in got)


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_comment_text_cannot_leave_or_splice_a_comment(text):
    safe = c_comment(text)
    assert all(0x20 <= ord(ch) < 0x7F for ch in safe)
    assert "\\" not in safe and "?" not in safe and "/*" not in safe and "*/" not in safe
    assert not safe.startswith(("/", "*")) and not safe.endswith(("/", "*"))
    assert len(safe) <= 160


def _compile_c(tmp_path, source: str) -> subprocess.CompletedProcess:
    path = tmp_path / "probe.c"
    path.write_bytes(source.encode("ascii"))
    return subprocess.run(["gcc", "-std=c99", "-trigraphs", "-Wall", "-Wextra", "-Werror", "-c", str(path),
                           "-o", str(tmp_path / "probe.o")], capture_output=True, text=True)


def test_hostile_text_in_comments_and_strings_compiles_to_nothing_else(tmp_path):
    # Each hostile text, once in a comment and once in a string: the C must compile warning-free
    # (trigraphs on) and hold exactly the strings' bytes, nothing more.
    parts = ["#include <string.h>"]
    for i, text in enumerate(HOSTILE):
        parts += [f"/* {c_comment(text)} */", f'static const char s{i}[] = "{c_string(text)}";']
    checks = " && ".join(f'sizeof s{i} == {len(t.encode()) + 1}u' for i, t in enumerate(HOSTILE))
    parts += [f"int probe(void) {{ return {checks}; }}",
              *(f"const char *use{i}(void) {{ return s{i}; }}" for i in range(len(HOSTILE)))]
    done = _compile_c(tmp_path, "\n".join(parts) + "\n")
    assert done.returncode == 0 and not done.stderr, done.stderr


def test_c_string_round_trips_every_byte():
    text = "a\"b\\c??/d\x00e\u2028\r\n\x7f"
    body = c_string(text)
    assert all(0x20 <= ord(ch) < 0x7F for ch in body) and "??" not in body
    decoded = re.sub(r"\\([0-7]{3}|.)", lambda m: chr(int(m[1], 8)) if len(m[1]) == 3 else m[1], body)
    assert decoded.encode("latin-1") == text.encode("utf-8")


@pytest.mark.parametrize("text", HOSTILE + ["]]>", "<script>", "&amp;", "\x1b[31m"])
def test_xml_text_parses_back(text):
    element = ET.fromstring(f'<t a="{xml_text(text)}">{xml_text(text)}</t>')
    assert element.tag == "t" and len(element) == 0


def test_library_prefix_shadows_no_header_and_no_kernel():
    for name in ("stdint", "math", "arm_math", "ek", "EK_common", "example_main", "a\\\rb", "../x"):
        prefix = library_prefix(name)
        assert IDENT.match(prefix)
        assert prefix.lower() not in {"stdint", "math", "arm_math", "ek", "example_main"}
        assert not prefix.lower().startswith("ek_")


@pytest.mark.parametrize("bad", ["../x.svg", "/etc/passwd", "a/../../b", ".hidden", "a\nb", "x\\y", "a b"])
def test_relative_paths_are_plain(bad):
    with pytest.raises(BuildError):
        require_relative_path(bad, "file")
    assert require_relative_path("experts_moe0_routing.svg", "file") == "experts_moe0_routing.svg"
    assert require_relative_path(".", "dir") == "."


@pytest.mark.parametrize("bad", ["a b", "x;y", "", "1x", "a\n"])
def test_require_identifier_refuses_non_identifiers(bad):
    with pytest.raises(BuildError):
        require_identifier(bad, "kernel")


def test_terminal_text_keeps_a_message_on_one_inert_line():
    from edgekit.naming import terminal_text

    said = terminal_text("node 'a\nb\r\u2028c\x1b[31m\u202ed\u0085' é")
    assert said.isprintable() and "é" in said
    assert "\\n" in said and "\\x1b" in said and "\\u2028" in said and "\\u202e" in said


def test_a_name_inside_a_reserved_prefix_moves_out_of_it():
    # numbering alone would stay inside the prefix for ever (a hang found by the test above)
    table = SymbolTable()
    table.reserve_prefix("model_moe0_e", "t0_x_", "arena")
    assert not table.claim("c", "moe0_e0_run", ("model_{}",)).startswith("moe0_e")
    table.reserve("t0_x")
    got = table.claim("t", "t0_x", ("{}",))
    assert got != "t0_x" and not got.startswith("t0_x_")
    assert not table.claim("a", "arena0", ("{}", "{}_shape")).startswith("arena")
