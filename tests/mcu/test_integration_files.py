"""The integration files and ``<name>.h`` keep their promises (issue #22), on libraries built by the
real CLI for Cortex-M targets:

- Zephyr: OUT is a module root whose ``zephyr/module.yml`` fits Zephyr's documented schema and
  points at files that exist; ``zephyr/CMakeLists.txt`` configures with CMake against recording
  stubs of Zephyr's functions, and what it hands Zephyr compiles for Cortex-M4; the Kconfig selects
  a full C library exactly when one inference reaches a libm function, and the FPU for float code
  on a target that has one.
- PlatformIO: ``library.json`` holds the documented fields and describes each build as it is.
- ``<name>.h``: its macros (types, layouts, dims, scales, workspace, version, sha256) agree with
  report.json, and run_io returns -1 on every NULL or misaligned argument, touching nothing, with
  no sanitizer report (and accepts an int8 buffer at any address, as its _ALIGN says).
- ``example_main.c`` prints real values (int8 dequantized) that match onnxruntime on the same
  input pattern, without printf float support, and compiles warning-free for Cortex-M4 and M0+.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgekit
from edgekit.plugins.mcu import hostbuild
from edgekit.plugins.mcu.plugin import McuBackend
from edgekit.target import Target
from tests.conftest import REPO, run_edgekit

from . import qdq_models

pytestmark = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("cmake") is None,
                                reason="needs arm-none-eabi-gcc and cmake")

HOST_FLAGS = (*hostbuild.STRICT_CFLAGS, *hostbuild.SANITIZE_FLAGS, "-O1", "-g")


# ---- the builds ----

def _plain_model() -> onnx.ModelProto:
    """Gemm -> Relu: float compute that calls no C math function."""
    rng = np.random.default_rng(5)
    w = numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc"), helper.make_node("Relu", ["h"], ["y"])],
        "plain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Path]:
    """name -> OUT: 'cb' a float CNN (softmax: expf) for cortex-m4; 'q' its int8 QDQ version with int8
    I/O for cortex-m4; 'plain' float Gemm+Relu for cortex-m0plus (no FPU, no libm)."""
    work = tmp_path_factory.mktemp("integration")
    float_cnn = qdq_models.conv_block()
    models = {"cb": (float_cnn, "cortex-m4", []),
              "q": (qdq_models.quantize(float_cnn, {"x": (1, 3, 12, 12)}), "cortex-m4", ["--option", "io=int8"]),
              "plain": (_plain_model(), "cortex-m0plus", [])}
    outs = {}

    def build(item):
        name, (model, target, extra) = item
        src = work / f"{name}.onnx"
        onnx.save(model, src)
        result = run_edgekit("build", str(src), "--target", target, "-o", str(work / name), "--name", name,
                             "-q", *extra)
        assert result.code == 0, result.stderr
        return name, work / name

    with ThreadPoolExecutor(max_workers=2) as pool:
        outs.update(pool.map(build, models.items()))
    return outs


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def _target(name: str) -> Target:
    return Target.from_toml(REPO / "targets" / f"{name}.toml")


def _run(cmd, cwd=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


# ---- Zephyr: module.yml against Zephyr's documented schema ----

#: zephyr/module.yml as Zephyr's scripts/zephyr_module.py validates it: key -> type (str, bool, a
#: nested mapping, or [type] for a sequence).
ZEPHYR_MODULE_SCHEMA = {
    "name": str,
    "build": {"cmake": str, "kconfig": str, "cmake-ext": bool, "kconfig-ext": bool, "sysbuild-cmake": str,
              "sysbuild-kconfig": str, "sysbuild-cmake-ext": bool, "sysbuild-kconfig-ext": bool, "depends": [str],
              "settings": {"board_root": str, "dts_root": str, "soc_root": str, "arch_root": str,
                           "module_ext_root": str, "sca_root": str}},
    "tests": [str], "samples": [str], "boards": [str],
    "blobs": [{"path": str, "sha256": str, "type": str, "version": str, "license-path": str, "url": str,
               "description": str, "doc-url": str}],
}


def read_simple_yaml(text: str):
    """The YAML subset a module.yml needs, read strictly: comments, block mappings indented by two
    spaces, block sequences, plain scalars (true/false are booleans). Anything else (tabs, flow
    style, quotes, anchors, multi-line scalars) raises ValueError."""
    lines = []
    for n, raw in enumerate(text.split("\n"), 1):
        if "\t" in raw:
            raise ValueError(f"line {n}: tab")
        body = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if body:
            indent = len(body) - len(body.lstrip(" "))
            if indent % 2:
                raise ValueError(f"line {n}: indent {indent}")
            lines.append((n, indent, body.strip()))

    def scalar(value: str, n: int):
        if re.search(r"[\"'{}\[\]&*!|>%@`]", value) or not value:
            raise ValueError(f"line {n}: not a plain scalar: {value!r}")
        return {"true": True, "false": False}.get(value, value)

    def block(pos: int, indent: int):
        n, ind, body = lines[pos]
        if ind != indent:
            raise ValueError(f"line {n}: indent {ind}, expected {indent}")
        if body.startswith("- "):
            items = []
            while pos < len(lines) and lines[pos][1] == indent and lines[pos][2].startswith("- "):
                items.append(scalar(lines[pos][2][2:].strip(), lines[pos][0]))
                pos += 1
            return items, pos
        mapping = {}
        while pos < len(lines) and lines[pos][1] == indent:
            n, _, body = lines[pos]
            m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_-]*):(?: (.*))?", body)
            if m is None or m.group(1) in mapping:
                raise ValueError(f"line {n}: not a new mapping key: {body!r}")
            pos += 1
            if m.group(2) is not None:
                mapping[m.group(1)] = scalar(m.group(2).strip(), n)
            elif pos < len(lines) and lines[pos][1] > indent:
                mapping[m.group(1)], pos = block(pos, indent + 2)
            else:
                raise ValueError(f"line {n}: key without a value")
        return mapping, pos

    data, pos = block(0, 0) if lines else ({}, 0)
    if pos != len(lines):
        raise ValueError(f"line {lines[pos][0]}: unexpected indentation")
    return data


def schema_errors(data, schema, where: str = "module.yml") -> list[str]:
    if isinstance(schema, dict):
        if not isinstance(data, dict):
            return [f"{where}: expected a mapping, got {data!r}"]
        errors = [f"{where}.{k}: not a key Zephyr's schema allows" for k in data if k not in schema]
        return errors + [e for k, v in data.items() if k in schema for e in schema_errors(v, schema[k], f"{where}.{k}")]
    if isinstance(schema, list):
        if not isinstance(data, list):
            return [f"{where}: expected a sequence, got {data!r}"]
        return [e for i, v in enumerate(data) for e in schema_errors(v, schema[0], f"{where}[{i}]")]
    return [] if type(data) is schema else [f"{where}: expected {schema.__name__}, got {data!r}"]


def test_yaml_reader_and_schema_check_reject_what_zephyr_rejects():
    assert read_simple_yaml("name: m\nbuild:\n  cmake: zephyr\n  cmake-ext: false\n  depends:\n    - a\n") == \
        {"name": "m", "build": {"cmake": "zephyr", "cmake-ext": False, "depends": ["a"]}}
    for bad in ("build:\n   cmake: x\n", "name: 'm'\n", "build: {cmake: x}\n", "name: m\nname: n\n", "\tname: m\n"):
        with pytest.raises(ValueError):
            read_simple_yaml(bad)
    assert schema_errors({"build": {"cmake": "z", "cmakefile": "x"}}, ZEPHYR_MODULE_SCHEMA)
    assert schema_errors({"build": {"kconfig-ext": "yes"}}, ZEPHYR_MODULE_SCHEMA)
    assert schema_errors({"build": "zephyr"}, ZEPHYR_MODULE_SCHEMA)
    assert not schema_errors({"name": "m", "build": {"depends": ["x"], "settings": {"dts_root": "."}}},
                             ZEPHYR_MODULE_SCHEMA)


@pytest.mark.parametrize("name", ["cb", "q", "plain"])
def test_zephyr_module_root_is_the_output_directory(builds, name):
    out = builds[name]
    text = (out / "zephyr" / "module.yml").read_text()
    meta = read_simple_yaml(text)
    try:
        import yaml  # a second, independent reader where it is installed
    except ImportError:
        pass
    else:
        assert yaml.safe_load(text) == meta
    assert schema_errors(meta, ZEPHYR_MODULE_SCHEMA) == []
    # Zephyr resolves both paths against the module root: the directory holding zephyr/module.yml
    assert (out / meta["build"]["cmake"] / "CMakeLists.txt").is_file()
    assert (out / meta["build"]["kconfig"]).is_file()
    # the comment tells the user to list that directory, not zephyr/ inside it
    assert "ZEPHYR_EXTRA_MODULES" in text and "/zephyr" not in text.split("ZEPHYR_EXTRA_MODULES", 1)[1].split("\n")[0]


# ---- Zephyr: the module's CMake against recording stubs ----

ZEPHYR_STUBS = """cmake_minimum_required(VERSION 3.13)
project(zephyr_stubs NONE)
# Zephyr's module functions, recording what the module hands them (any other Zephyr function the
# module called would stop the configure: CMake knows no such command).
set(EK_RECORD "${CMAKE_BINARY_DIR}/record.txt")
file(WRITE "${EK_RECORD}" "")
function(zephyr_library_named name)
  file(APPEND "${EK_RECORD}" "library|${name}\\n")
endfunction()
function(zephyr_library_sources)
  foreach(item IN LISTS ARGN)
    file(APPEND "${EK_RECORD}" "source|${item}\\n")
  endforeach()
endfunction()
function(zephyr_include_directories)
  foreach(item IN LISTS ARGN)
    file(APPEND "${EK_RECORD}" "include|${item}\\n")
  endforeach()
endfunction()
add_subdirectory("${ZEPHYR_CURRENT_MODULE_DIR}/zephyr" edgekit_module)
"""


def _configure_zephyr_module(out: Path, work: Path, config: dict[str, str]) -> list[tuple[str, str]]:
    work.mkdir(parents=True, exist_ok=True)
    (work / "CMakeLists.txt").write_text(ZEPHYR_STUBS)
    _run(["cmake", "-S", work, "-B", work / "build", f"-DZEPHYR_CURRENT_MODULE_DIR={out}",
          *(f"-D{k}={v}" for k, v in config.items())])
    return [tuple(line.split("|", 1)) for line in (work / "build" / "record.txt").read_text().splitlines()]


@pytest.mark.parametrize("name", ["cb", "q"])
def test_zephyr_cmake_hands_zephyr_sources_that_compile_for_cortex_m4(builds, name, tmp_path):
    out, report = builds[name], _report(builds[name])
    assert _configure_zephyr_module(out, tmp_path / "off", {}) == []  # CONFIG_EDGEKIT_<NAME> unset: nothing
    record = _configure_zephyr_module(out, tmp_path / "on", {f"CONFIG_EDGEKIT_{name.upper()}": "y"})
    assert ("library", f"edgekit_{name}") in record
    sources = [Path(v) for k, v in record if k == "source"]
    includes = [Path(v) for k, v in record if k == "include"]
    assert all(s.is_file() for s in sources) and all(d.is_dir() for d in includes)
    assert sorted(sources) == sorted(out / s for s in report["backend"]["sources"])
    target = _target("cortex-m4")

    def compile_one(src: Path):
        return subprocess.run([target.toolchain.cc, *target.toolchain.cflags, "-std=c99", "-Wall", "-Wextra",
                               "-Werror", "-O2", *(f"-I{d}" for d in includes), "-c", str(src), "-o",
                               str(tmp_path / f"{src.stem}.o")], capture_output=True, text=True)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(compile_one, sources))
    problems = [f"{s}: {r.stderr}" for s, r in zip(sources, results) if r.returncode or r.stderr]
    assert not problems, "\n".join(problems)


def _kconfig_entry(text: str, symbol: str) -> list[str]:
    """The option lines of ``config <symbol>`` (up to its help text), checked for Kconfig's shape."""
    lines = text.split("\n")
    start = lines.index(f"config {symbol}")
    entry = []
    for line in lines[start + 1:]:
        if line.strip() == "help":
            break
        assert line.startswith("\t"), f"not an option line of {symbol}: {line!r}"
        entry.append(line.strip())
    return entry


def test_zephyr_kconfig_selects_what_the_code_needs(builds):
    for name, out in builds.items():
        report = _report(out)
        entry = _kconfig_entry((out / "zephyr" / "Kconfig").read_text(), f"EDGEKIT_{name.upper()}")
        assert entry[0] == f'bool "edgekit model {name}"'
        # the libm functions the linked image holds decide the C library
        needs_libm = bool(report["backend"]["math_functions"])
        assert ("select REQUIRES_FULL_LIBC" in entry) == needs_libm, (name, entry)
        float_code = any(layer["dtype"] == "float32" for layer in report["backend"]["layers"])
        has_fpu = _target(report["target"]["name"]).fpu not in ("", "none")
        assert ("imply FPU" in entry) == (float_code and has_fpu), (name, entry)
    # what the three builds are: softmax's expf in the float CNN, none in Gemm+Relu (whose kernel
    # files still reference libm from functions the inference never calls)
    for out in builds.values():
        backend = _report(out)["backend"]
        assert set(backend["math_functions"]) <= set(backend["math_references"])
    assert "expf" in _report(builds["cb"])["backend"]["math_functions"]
    assert _report(builds["plain"])["backend"]["math_functions"] == []


# ---- PlatformIO ----

#: library.json fields PlatformIO documents (docs.platformio.org, manifests/library-json)
PIO_FIELDS = {"$schema", "name", "version", "description", "keywords", "homepage", "repository", "authors",
              "license", "frameworks", "platforms", "headers", "examples", "dependencies", "export", "scripts",
              "build"}
PIO_BUILD_FIELDS = {"flags", "unflags", "includeDir", "srcDir", "srcFilter", "extraScript", "libArchive",
                    "libLDFMode", "libCompatMode", "builder"}


def _library_json(out: Path) -> dict:
    return json.loads((out / "library.json").read_text())


@pytest.mark.parametrize("name", ["cb", "q", "plain"])
def test_platformio_library_json_is_valid_and_lists_exactly_the_sources(builds, name):
    out, report = builds[name], _report(builds[name])
    lib = _library_json(out)
    assert set(lib) <= PIO_FIELDS and set(lib["build"]) <= PIO_BUILD_FIELDS
    assert re.fullmatch(r"[a-z0-9](?:-?[a-z0-9])*", lib["name"]) and len(lib["name"]) <= 50
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9a-z.-]+)?", lib["version"]) and len(lib["version"]) <= 20
    assert 0 < len(lib["description"]) <= 255
    assert all(re.fullmatch(r"[a-z0-9](?:[a-z0-9._+-]*[a-z0-9])?", k) for k in lib["keywords"])
    assert lib["headers"] == [report["backend"]["header"]] and (out / lib["headers"][0]).is_file()
    srcs = lib["build"]["srcFilter"]
    assert srcs[0] == "-<*>" and all(re.fullmatch(r"\+<[^<>*]+>", s) for s in srcs[1:])
    listed = [s[2:-1] for s in srcs[1:]]
    assert sorted(listed) == sorted(report["backend"]["sources"]) and all((out / s).is_file() for s in listed)
    # the library's C files are exactly those listed; example_main.c (it has a main) is not
    shipped = sorted(str(p.relative_to(out)) for p in out.rglob("*.c"))
    assert sorted(listed + ["example_main.c"]) == shipped
    # libm for a link that keeps every section: whenever an object references it
    assert ("-lm" in lib["build"]["flags"]) == bool(report["backend"]["math_references"])
    assert ("PUBLIC m)" in (out / "CMakeLists.txt").read_text()) == bool(report["backend"]["math_references"])
    assert ("-lm" in (out / f"{name}.mk").read_text()) == bool(report["backend"]["math_references"])


def test_platformio_library_json_describes_each_build(builds):
    cb, q, plain = (_library_json(builds[n]) for n in ("cb", "q", "plain"))
    for lib, out, precision in ((cb, builds["cb"], "float32"), (q, builds["q"], "int8"),
                                (plain, builds["plain"], "float32")):
        report = _report(out)
        assert precision in lib["keywords"] and f": {precision} C99" in lib["description"]
        assert report["target"]["name"] in lib["keywords"] and f"for {report['target']['name']}" in lib["description"]
        assert report["model"]["frontend"] == "onnx" and "onnx" in lib["keywords"] and "from onnx" in lib["description"]
        assert report["model"]["sha256"][:16] in lib["description"]
        assert f"edgekit {report['edgekit_version']}" in lib["description"]
        assert lib["version"] == report["edgekit_version"]
        assert "caller's arena" in lib["description"] and "static-arena" not in lib["keywords"]
    assert "int8" not in cb["keywords"] and "float32" not in q["keywords"] and "quantized" in q["keywords"]
    assert cb["description"] != q["description"]


# ---- model.h: macros and the argument checks ----

def _probe_source(prefix: str, report: dict) -> str:
    """A host program that prints the header's macros and calls run_io with each argument NULL or
    misaligned in turn (buffers with a byte of room to shift), saying whether the outputs stayed
    untouched."""
    P = prefix.upper()
    backend = report["backend"]
    n_in, n_out = len(backend["inputs"]), len(backend["outputs"])
    lines = ["#include <stdint.h>", "#include <stdio.h>", "#include <string.h>", f'#include "{prefix}.h"', ""]
    for kind, n in (("INPUT", n_in), ("OUTPUT", n_out)):
        for i in range(n):
            lines.append(f"static uint8_t {kind.lower()}_{i}[{P}_{kind}_{i}_BYTES + 16] __attribute__((aligned(16)));")
            lines.append(f"static const int32_t {kind.lower()}_{i}_shape[] = {P}_{kind}_{i}_SHAPE;")
    in_ptrs = ", ".join(f"input_{i} + in_shift" for i in range(n_in)) or "NULL"
    out_ptrs = ", ".join(f"output_{i} + out_shift" for i in range(n_out))
    lines += [f"static uint8_t arena[{P}_ARENA_SIZE + 16] __attribute__((aligned(16)));", "",
              "static void run(const char *what, int in_shift, int out_shift, int arena_shift, int nulls)", "{",
              f"    const void *inputs[{max(n_in, 1)}] = {{{in_ptrs}}};",
              f"    void *outputs[{n_out}] = {{{out_ptrs}}};",
              "    int status, untouched = 1;", "    size_t b;"]
    lines += [f"    memset(output_{i}, 0x5A, sizeof output_{i});" for i in range(n_out)]
    lines += ["    if (nulls == 3) inputs[0] = NULL;", "    if (nulls == 4) outputs[0] = NULL;",
              f"    status = {prefix}_run_io(nulls == 1 ? NULL : inputs, nulls == 2 ? NULL : outputs, "
              "arena + arena_shift);"]
    lines += [f"    for (b = 0; b < sizeof output_{i}; b++) untouched &= output_{i}[b] == 0x5A;" for i in range(n_out)]
    lines += ['    printf("case %s %d %d\\n", what, status, untouched);', "}", "", "int main(void)", "{",
              "    int32_t d;",
              f'    printf("version %s\\n", {P}_EDGEKIT_VERSION);', f'    printf("sha256 %s\\n", {P}_MODEL_SHA256);',
              f'    printf("workspace %u\\n", (unsigned){P}_OUTPUT_WORKSPACE_BYTES);']
    for kind, n in (("INPUT", n_in), ("OUTPUT", n_out)):
        for i in range(n):
            m = f"{P}_{kind}_{i}"
            lines += [f"    {{ {m}_TYPE probe = 0; (void)probe; }}",  # the type macro declares a variable
                      f'    printf("{kind.lower()} {i} dtype %d align %u layout %d rank %d bytes %u", {m}_DTYPE, '
                      f"(unsigned){m}_ALIGN, {m}_LAYOUT, {m}_RANK, (unsigned)sizeof({m}_TYPE) * {m}_COUNT);",
                      f"    for (d = 0; d < {m}_RANK; d++) printf(\" %ld\", (long){kind.lower()}_{i}_shape[d]);",
                      f'#if {m}_DTYPE == {P}_DTYPE_INT8',
                      f'    printf(" scale %.9g zero_point %d", (double){m}_SCALE, (int){m}_ZERO_POINT);', "#endif",
                      f'#if {m}_LAYOUT != {P}_LAYOUT_UNKNOWN',
                      f'    printf(" chw %d %d %d", {m}_CHANNELS, {m}_HEIGHT, {m}_WIDTH);', "#endif",
                      '    printf("\\n");']
    cases = [("aligned", 0, 0, 0, 0), ("input+1", 1, 0, 0, 0), ("output+1", 0, 1, 0, 0), ("arena+1", 0, 0, 1, 0),
             ("arena+2", 0, 0, 2, 0), ("inputs=NULL", 0, 0, 0, 1), ("outputs=NULL", 0, 0, 0, 2),
             ("inputs[0]=NULL", 0, 0, 0, 3), ("outputs[0]=NULL", 0, 0, 0, 4)]
    lines += [f'    run("{what}", {a}, {b}, {c}, {d});' for what, a, b, c, d in cases]
    lines += ["    return 0;", "}", ""]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def host_objects(builds, tmp_path_factory) -> dict[str, list[Path]]:
    """Each build's library (the sources report.json lists) compiled for the host with ASan and
    UBSan, once for the tests that link a main to it."""
    work = tmp_path_factory.mktemp("host")
    return {name: hostbuild.compile_objects([out / s for s in _report(out)["backend"]["sources"]], work / name,
                                            [out, out / "kernels"], HOST_FLAGS)
            for name, out in builds.items() if name in ("cb", "q")}


def _host_program(out: Path, library: list[Path], main_source: Path, work: Path) -> Path:
    """``main_source`` linked with the sanitized ``library`` objects (any report aborts the program)."""
    objs = hostbuild.compile_objects([main_source], work / "obj", [out, out / "kernels"], HOST_FLAGS)
    exe = work / "program"
    _run(["gcc", *(f for f in HOST_FLAGS if "sanitize" in f), "-o", exe, *objs, *library, "-lm"])
    return exe


@pytest.mark.parametrize("name", ["cb", "q"])
def test_header_macros_and_argument_checks_keep_their_promise(builds, host_objects, name, tmp_path):
    out = builds[name]
    report, backend = _report(out), _report(out)["backend"]
    probe = tmp_path / "probe.c"
    probe.write_text(_probe_source(name, report))
    proc = subprocess.run([str(_host_program(out, host_objects[name], probe, tmp_path))], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "runtime error" not in proc.stderr, proc.stderr[-3000:]
    printed = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if not line.startswith(("case", "input",
                                                                                                   "output")))
    assert printed["version"] == report["edgekit_version"] == edgekit.__version__
    assert printed["sha256"] == report["model"]["sha256"] and len(printed["sha256"]) == 64
    assert int(printed["workspace"]) == backend["output_workspace_bytes"]
    codes = {"float32": 0, "int8": 1}
    aligns = {}
    for kind in ("input", "output"):
        for i, spec in enumerate(backend[f"{kind}s"]):
            line = next(x for x in proc.stdout.splitlines() if x.startswith(f"{kind} {i} "))
            fields = line.split()
            assert int(fields[3]) == codes[spec["dtype"]]
            aligns[kind] = int(fields[5])
            assert aligns[kind] == (4 if spec["dtype"] == "float32" else 1)
            assert int(fields[9]) == len(spec["shape"]) and int(fields[11]) == spec["bytes"]
            assert [int(v) for v in fields[12:12 + len(spec["shape"])]] == spec["shape"]
            rest = fields[12 + len(spec["shape"]):]
            if "quantization" in spec:
                assert float(rest[1]) == pytest.approx(spec["quantization"]["scale"], rel=1e-7)
                assert int(rest[3]) == spec["quantization"]["zero_point"]
            # the CNN's input feeds a Conv: NCHW, so channels/height/width are dims 1/2/3
            expected_layout = 1 if (kind == "input" and len(spec["shape"]) == 4) else 0
            assert int(fields[7]) == expected_layout
            if expected_layout:
                assert [int(v) for v in rest[rest.index("chw") + 1:]] == spec["shape"][1:]
    cases = {f[1]: (int(f[2]), int(f[3]))
             for f in (x.split() for x in proc.stdout.splitlines() if x.startswith("case"))}
    assert len(cases) == 9
    for case, (status, untouched) in cases.items():
        # an int8 buffer may sit at any address (its _ALIGN is 1); every other shift is refused
        accepted = case == "aligned" or (case in ("input+1", "output+1") and aligns[case.split("+")[0]] == 1)
        assert (status, untouched) == ((0, 0) if accepted else (-1, 1)), case


# ---- example_main.c ----

def _example_expected(out: Path) -> dict[str, list[float]]:
    """onnxruntime on reference.onnx with the inputs example_main.c makes: element i is (i % 17) / 17,
    quantized (in float32 arithmetic, as the C does) for an int8 input and fed dequantized."""
    backend = _report(out)["backend"]
    sess = ort.InferenceSession(str(out / "reference.onnx"), providers=["CPUExecutionProvider"])
    feeds = {}
    for spec, value in zip(backend["inputs"], sess.get_inputs()):
        x = (np.arange(spec["count"]) % 17).astype(np.float32) / np.float32(17)
        if "quantization" in spec:
            scale, zp = np.float32(spec["quantization"]["scale"]), spec["quantization"]["zero_point"]
            v = x / scale
            q = np.clip(np.trunc(np.where(v >= 0, v + np.float32(0.5), v - np.float32(0.5))) + zp, -128, 127)
            x = (scale * (q - zp)).astype(np.float32)
        feeds[value.name] = x.reshape(spec["shape"])
    return {f"output_{i}": r.reshape(-1)[:10].tolist() for i, r in enumerate(sess.run(None, feeds))}


def _parse_example(stdout: str) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for line in stdout.splitlines():
        m = re.fullmatch(r"(output_\d+)\[(\d+)\] = (-?\d+\.\d{6})", line)
        assert m, f"not a printed value: {line!r}"
        assert int(m.group(2)) == len(values.setdefault(m.group(1), []))
        values[m.group(1)].append(float(m.group(3)))
    return values


@pytest.mark.parametrize("name", ["cb", "q"])
def test_example_main_prints_real_values_that_match_onnxruntime(builds, host_objects, name, tmp_path):
    out = builds[name]
    backend = _report(out)["backend"]
    program = _host_program(out, host_objects[name], out / "example_main.c", tmp_path)
    proc = subprocess.run([str(program)], capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr[-3000:]
    got, want = _parse_example(proc.stdout), _example_expected(out)
    assert got.keys() == want.keys() and all(len(got[k]) == len(want[k]) for k in got)
    print_step = 5e-7  # six decimals
    for i, spec in enumerate(backend["outputs"]):
        g, w = np.array(got[f"output_{i}"]), np.array(want[f"output_{i}"])
        if "quantization" in spec:
            # int8 data: within the back end's steps of the output's scale (the same as --run allows)
            bound = McuBackend.quantized_tolerance_steps * spec["quantization"]["scale"] + print_step
        else:
            bound = McuBackend.tolerance.atol + McuBackend.tolerance.rtol * np.abs(w) + print_step
        assert np.all(np.abs(g - w) <= bound), (name, g, w)
    # no printf float support needed: no format string converts a floating-point argument
    code = re.sub(r"/\*.*?\*/", "", (out / "example_main.c").read_text(), flags=re.S)
    formats = re.findall(r'"((?:[^"\\]|\\.)*)"', code)
    assert formats and not [f for f in formats if re.search(r"%[-+ #0-9.]*[fFeEgGaA]", f)]


@pytest.mark.parametrize("target_name", ["cortex-m4", "cortex-m0plus"])
def test_example_main_compiles_warning_free_for_cortex_m(builds, target_name, tmp_path):
    target = _target(target_name)
    for name in ("cb", "q", "plain"):
        out = builds[name]
        proc = subprocess.run([target.toolchain.cc, *target.toolchain.cflags, "-std=c99", "-Wall", "-Wextra", "-Werror",
                               "-Os", f"-I{out}", "-c", str(out / "example_main.c"), "-o", str(tmp_path / f"{name}.o")],
                              capture_output=True, text=True)
        assert proc.returncode == 0 and not proc.stderr, f"{name}: {proc.stderr}"


def test_layout_is_named_only_where_an_image_op_shows_it():
    from edgekit.plugins.mcu.emit_c import io_macros
    from edgekit.plugins.mcu.io_layout import io_layouts

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Transpose", ["img"], ["nchw"], perm=[0, 3, 1, 2]),  # TFLite-style NHWC input
             helper.make_node("Conv", ["nchw", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Transpose", ["r"], ["features"], perm=[0, 2, 3, 1]),
             helper.make_node("Mul", ["vec", "vec"], ["sq"])]  # rank-4 data no image op sees
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 8, 6, 3]),
                                           helper.make_tensor_value_info("vec", TensorProto.FLOAT, [1, 2, 2, 2])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 8, 6, 4]),
                               helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 4, 8, 6]),
                               helper.make_tensor_value_info("sq", TensorProto.FLOAT, [1, 2, 2, 2])], [w])
    assert io_layouts(helper.make_model(graph)) == (["NHWC", ""], ["NHWC", "NCHW", ""])
    macros = "\n".join(io_macros("m", "INPUT", 0, "img", "float32", [1, 8, 6, 3], "NHWC"))
    assert "#define M_INPUT_0_LAYOUT M_LAYOUT_NHWC" in macros
    assert all(f"#define M_INPUT_0_{k} {v}" in macros for k, v in (("CHANNELS", 3), ("HEIGHT", 8), ("WIDTH", 6)))
