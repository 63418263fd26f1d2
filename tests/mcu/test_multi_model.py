"""Several edgekit libraries in one firmware image (issue #22): a float CNN, an int8 keyword spotter
and a mixture-of-experts MLP, built with different ``--name``s, linked into one image by each
route a firmware project takes -- Make (``<name>.mk``), CMake (``add_subdirectory``), Zephyr's
``--whole-archive`` link, PlatformIO (``library.json``) -- and run on the emulated Cortex-M4; every
model's outputs are checked against onnxruntime on ``OUT/reference.onnx``. Kernels are renamed per
library (``kernels/ek_names.h``), so no global symbol is defined twice; TVM-kernel libraries
(``--kernels tvm``) carry their prefix too."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgekit.building import BuildRequest, build
from edgekit.plugins.harness import counting
from edgekit.plugins.harness.compile import WARNINGS, compile_objects, run_tool, sibling_tool
from edgekit.plugins.harness.firmware import (FIRMWARE_DIR, LINK_SPECS, harness_program_sources, linker_script,
                                              memory_map)
from edgekit.plugins.mcu.emit_c import c_float
from edgekit.plugins.mcu.generator import KERNEL_DIR, kernel_texts
from edgekit.plugins.mcu.kernel_symbols import external_symbols, names_header
from edgekit.registry import default_registry
from edgekit.verify import compare, quantized_outputs, run_onnxruntime
from tests.conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                                reason="needs arm-none-eabi-gcc and qemu-system-arm")

TARGET = "cortex-m4"
MLPERF = REPO / "examples" / "models" / "mlperf-tiny"
# name -> build settings. The int8 model takes ONNX's int8 arithmetic (TFLite's is judged against
# TFLite Micro, not onnxruntime); the MoE model runs one sub-library per expert.
LIBRARIES = {
    "ic": dict(model=str(MLPERF / "ic_resnet8.onnx")),
    "kws": dict(model=str(MLPERF / "kws_dscnn_int8.tflite"), options={"int8_arithmetic": "onnx"}),
    "moe": dict(model=f"{REPO / 'examples' / 'moe' / 'moe_models.py'}:make_moe_mlp", input_shapes=["1,16"]),
}
OPT = "-O2"
STACK_BYTES, HEAP_BYTES = 16 * 1024, 4 * 1024


@dataclass
class Library:
    """One built output directory."""

    name: str
    out: Path
    meta: dict          # report["backend"]

    @property
    def upper(self) -> str:
        return self.name.upper()


@functools.cache
def _registry():
    return default_registry()


def _target():
    return _registry().target(TARGET)


def _build(name: str, out: Path, model: str, options: dict | None = None, input_shapes=()) -> Library:
    report = build(BuildRequest(model=model, target=TARGET, output=out, name=name, options=dict(options or {}),
                                input_shapes=list(input_shapes)), _registry())
    assert report["backend"]["name"] == name
    return Library(name, out, report["backend"])


@pytest.fixture(scope="module")
def libraries(tmp_path_factory) -> dict[str, Library]:
    pytest.importorskip("tflite", reason="the .tflite front end is not installed (edgekit[tflite])")
    pytest.importorskip("torch", reason="the PyTorch front end is not installed (edgekit[torch])")
    root = tmp_path_factory.mktemp("multi")
    return {name: _build(name, root / name, **settings) for name, settings in LIBRARIES.items()}


# ---------------------------------------------------------------------------------------------
# The firmware: one main() running every library on fixed inputs, printing each output's bytes.


def model_inputs(libs: list[Library]) -> dict[str, dict[str, np.ndarray]]:
    """Per library, its seeded inputs by ONNX name."""
    feeds = {}
    for seed, lib in enumerate(libs):
        rng = np.random.default_rng(100 + seed)
        feeds[lib.name] = {t["name"]: (rng.standard_normal(t["shape"]).astype(np.float32) if t["dtype"] == "float32"
                                       else rng.integers(-128, 128, t["shape"]).astype(t["dtype"]))
                           for t in lib.meta["inputs"]}
    return feeds


def _c_values(array: np.ndarray) -> str:
    values = [c_float(v) for v in array.reshape(-1).tolist()] if array.dtype.kind == "f" else \
        [str(int(v)) for v in array.reshape(-1).tolist()]
    return ",\n    ".join(", ".join(values[i:i + 8]) for i in range(0, len(values), 8))


_CTYPES = {"float32": "float", "int8": "int8_t", "uint8": "uint8_t", "int32": "int32_t"}


def firmware_main(libs: list[Library], feeds: dict[str, dict[str, np.ndarray]]) -> str:
    """main.c including every library's header (their macros must coexist in one translation unit)."""
    lines = ["/* main.c: one firmware image running several edgekit libraries. */",
             "#include <stdint.h>", "#include <stdio.h>", "",
             *(f'#include "{lib.meta["header"]}"' for lib in libs), "",
             "static void emit(const char *library, unsigned output, const void *data, uint32_t bytes)", "{",
             "    const uint8_t *p = (const uint8_t *)data;", "    uint32_t i;",
             '    printf("output %s %u ", library, output);',
             "    for (i = 0; i < bytes; i++) {", '        printf("%02x", p[i]);', "    }", '    printf("\\n");', "}"]
    for lib in libs:
        n, P = lib.name, lib.upper
        for i, t in enumerate(lib.meta["inputs"]):
            lines += ["", f"static const {_CTYPES[t['dtype']]} {n}_in{i}[] __attribute__((aligned(16))) = {{",
                      f"    {_c_values(feeds[n][t['name']])}", "};",
                      # the header's count and the data agree (a compile-time check)
                      f"typedef char {n}_in{i}_whole[(sizeof {n}_in{i} / sizeof {n}_in{i}[0] == "
                      f"{P}_INPUT_{i}_COUNT) ? 1 : -1];"]
        for i, t in enumerate(lib.meta["outputs"]):
            lines.append(f"static {_CTYPES[t['dtype']]} {n}_out{i}[{P}_OUTPUT_{i}_COUNT] __attribute__((aligned(16)));")
        lines += [f"static uint8_t {n}_arena[{P}_ARENA_SIZE > 0u ? {P}_ARENA_SIZE : 1u] __attribute__((aligned(16)));",
                  "", f"static int run_{n}(void)", "{",
                  f"    const void *const inputs[{P}_NUM_INPUTS] = "
                  f"{{{', '.join(f'{n}_in{i}' for i in range(len(lib.meta['inputs'])))}}};",
                  f"    void *const outputs[{P}_NUM_OUTPUTS] = "
                  f"{{{', '.join(f'{n}_out{i}' for i in range(len(lib.meta['outputs'])))}}};",
                  f"    const int status = {lib.meta['run_function']}(inputs, outputs, {n}_arena);",
                  "    if (status != 0) {", f'        printf("failed {n} %d\\n", status);', "        return 1;",
                  "    }",
                  *(f'    emit("{n}", {i}u, {n}_out{i}, sizeof {n}_out{i});' for i in range(len(lib.meta["outputs"]))),
                  "    return 0;", "}"]
    lines += ["", "int main(void)", "{", "    int failed = 0;",
              *(f"    failed |= run_{lib.name}();" for lib in libs), "    return failed;", "}", ""]
    return "\n".join(lines)


def write_sources(work: Path, libs: list[Library]) -> dict[str, dict[str, np.ndarray]]:
    """main.c and the board's linker script in ``work``; returns the inputs main.c holds."""
    work.mkdir(parents=True, exist_ok=True)
    feeds = model_inputs(libs)
    (work / "main.c").write_text(firmware_main(libs, feeds), encoding="utf-8")
    (work / "app.ld").write_text(linker_script(memory_map(_target()), STACK_BYTES, HEAP_BYTES), encoding="utf-8")
    return feeds


def run_and_check(elf: Path, libs: list[Library], feeds: dict[str, dict[str, np.ndarray]]) -> None:
    """Run the image on the emulated board; each library's outputs match onnxruntime within the
    tolerance the harness applies to a single-library run (quantized outputs: in steps)."""
    emulator = _target().emulator
    run = counting.run_counted(elf, machine=emulator.machine, cpu=emulator.cpu, program=emulator.program, timeout=120)
    assert run.exit_code == 0, f"exit {run.exit_code}: {run.stdout[-2000:]} {run.stderr[-2000:]}"
    printed = {(m.group(1), int(m.group(2))): bytes.fromhex(m.group(3))
               for m in re.finditer(r"^output (\w+) (\d+) ([0-9a-f]*)$", run.stdout, re.MULTILINE)}
    assert set(printed) == {(lib.name, i) for lib in libs for i in range(len(lib.meta["outputs"]))}, run.stdout
    backend = _registry().get("backends", "mcu-c")
    for lib in libs:
        reference = onnx.load(str(lib.out / "reference.onnx"))
        actual = {t["name"]: np.frombuffer(printed[(lib.name, i)], dtype=t["dtype"]).reshape(t["shape"])
                  for i, t in enumerate(lib.meta["outputs"])}
        expected = run_onnxruntime(reference, [feeds[lib.name]], f"{lib.name} reference")
        result = compare(expected, [actual], backend.tolerance, quantized_outputs(reference),
                         backend.quantized_tolerance_steps)
        assert result.within() and not result.mismatch, (lib.name, result)
        assert all(np.isfinite(v).all() and np.ptp(v) > 0 for v in actual.values()), (lib.name, actual)


def _cflags() -> list[str]:
    return [*_target().toolchain.cflags, OPT, "-ffunction-sections", "-fdata-sections", *WARNINGS]


def _link_flags(work: Path) -> list[str]:
    """How the harness links an image for the board (start-up code of its own, no semihosting)."""
    target = _target()
    return [*target.toolchain.cflags, OPT, *target.toolchain.ldflags, "-nostartfiles", *LINK_SPECS,
            "-Wl,--gc-sections", "-T", str(work / "app.ld")]


def _link_command(objects: list[str], elf: Path, work: Path, libraries: list[str] = ()) -> list[str]:
    return [_target().toolchain.cc, *_link_flags(work), *objects, *libraries, "-lm", "-o", str(elf)]


def _run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _archives(work: Path, libs: list[Library], flags_of) -> dict[str, Path]:
    """``lib<name>.a`` per library, its sources compiled with ``flags_of(lib) -> (sources, flags)``."""
    target = _target()
    archives = {}
    for lib in libs:
        sources, flags = flags_of(lib)
        objects = compile_objects(target.toolchain.cc, [(lib.out / s, flags) for s in sources],
                                  work / "obj" / lib.name, f"library {lib.name}")
        archive = work / f"lib{lib.name}.a"
        run_tool([sibling_tool(target.toolchain.cc, "ar"), "rcs", str(archive), *map(str, objects)], "archiving")
        archives[lib.name] = archive
    return archives


def _harness_objects(work: Path, include_dirs: list[Path]) -> list[Path]:
    target = _target()
    flags = [*_cflags(), f"-I{FIRMWARE_DIR}", *(f"-I{d}" for d in include_dirs)]
    units = [(work / "main.c", flags)] + [(src, flags) for src in harness_program_sources(target.emulator.machine)]
    return compile_objects(target.toolchain.cc, units, work / "obj" / "app", "firmware")


def _library_flags(lib: Library) -> tuple[list[str], list[str]]:
    return lib.meta["sources"], [*_cflags(), *(f"-I{lib.out / d}" for d in lib.meta["include_dirs"])]


# ---------------------------------------------------------------------------------------------
# The link routes.


def test_make_fragments_of_two_libraries_link_into_one_image(libraries, tmp_path):
    """Two <name>.mk fragments in one Makefile: both libraries ship ek_pool.c (the float and int8
    pools), which defined ek_maxpool2d_f32 twice before the kernels were renamed per library."""
    libs = [libraries["ic"], libraries["kws"]]
    feeds = write_sources(tmp_path, libs)
    for lib in libs:  # make writes objects next to the sources: work on copies
        shutil.copytree(lib.out, tmp_path / lib.name)
    shutil.copytree(FIRMWARE_DIR, tmp_path / "harness")
    target = _target()
    harness = " ".join(f"harness/{src.name}" for src in harness_program_sources(target.emulator.machine))
    includes = "\n".join(f"include {lib.name}/{lib.name}.mk" for lib in libs)
    (tmp_path / "Makefile").write_text(
        f"CC := {target.toolchain.cc}\n{includes}\n"
        f"CFLAGS := {' '.join(_cflags())} -Iharness {' '.join(f'$({lib.upper}_CFLAGS)' for lib in libs)}\n"
        f"OBJS := main.o {' '.join(f'$({lib.upper}_SRCS:.c=.o)' for lib in libs)} $(patsubst %.c,%.o,{harness})\n"
        "app.elf: $(OBJS)\n"
        f"\t$(CC) {' '.join(_link_flags(tmp_path))} $^ "
        f"{' '.join(f'$({lib.upper}_LDLIBS)' for lib in libs)} -lm -o $@\n")
    _run(["make", "-s", "-j2", "app.elf"], tmp_path)
    run_and_check(tmp_path / "app.elf", libs, feeds)


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_cmake_add_subdirectory_of_three_libraries(libraries, tmp_path):
    libs = list(libraries.values())
    feeds = write_sources(tmp_path, libs)
    target = _target()
    flags = [*target.toolchain.cflags, OPT, "-ffunction-sections", "-fdata-sections", "-Wall", "-Wextra", "-Werror"]
    (tmp_path / "arm.cmake").write_text(
        "set(CMAKE_SYSTEM_NAME Generic)\nset(CMAKE_SYSTEM_PROCESSOR arm)\n"
        f"set(CMAKE_C_COMPILER {target.toolchain.cc})\nset(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)\n"
        f'set(CMAKE_C_FLAGS_INIT "{" ".join(flags)}")\n'
        f'set(CMAKE_EXE_LINKER_FLAGS_INIT "{" ".join(LINK_SPECS)} -nostartfiles -Wl,--gc-sections")\n')
    harness = " ".join(str(src) for src in harness_program_sources(target.emulator.machine))
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(firmware C)\n"
        + "".join(f"add_subdirectory({lib.out} {lib.name}_build)\n" for lib in libs)
        + f"add_executable(app.elf main.c {harness})\n"
        f"target_include_directories(app.elf PRIVATE {FIRMWARE_DIR})\n"
        f"target_link_libraries(app.elf PRIVATE {' '.join(lib.name for lib in libs)})\n"
        f"target_link_options(app.elf PRIVATE -T{tmp_path / 'app.ld'})\n")
    build_dir = tmp_path / "build"
    _run(["cmake", "-S", str(tmp_path), "-B", str(build_dir), f"-DCMAKE_TOOLCHAIN_FILE={tmp_path / 'arm.cmake'}"],
         tmp_path)
    _run(["cmake", "--build", str(build_dir), "-j2"], tmp_path)
    run_and_check(build_dir / "app.elf", libs, feeds)


@pytest.fixture(scope="module")
def whole_archive_image(libraries, tmp_path_factory):
    """Zephyr links every module library with --whole-archive: each object of each library is in."""
    work = tmp_path_factory.mktemp("whole_archive")
    libs = list(libraries.values())
    feeds = write_sources(work, libs)
    archives = _archives(work, libs, _library_flags)
    app = _harness_objects(work, [lib.out for lib in libs])
    elf = work / "app.elf"
    _run(_link_command([str(o) for o in app], elf, work,
                       ["-Wl,--whole-archive", *map(str, archives.values()), "-Wl,--no-whole-archive"]), work)
    return libs, feeds, archives, app, elf


def test_whole_archive_link_of_three_libraries_runs(whole_archive_image):
    libs, feeds, _, _, elf = whole_archive_image
    run_and_check(elf, libs, feeds)


def _defined_globals(nm: str, files: list[Path]) -> list[tuple[str, str, Path]]:
    """(symbol, nm type, file) of every global symbol the files define."""
    found = []
    for path in files:
        for line in run_tool([nm, "-g", "--defined-only", str(path)], "listing symbols").splitlines():
            parts = line.split()
            if len(parts) == 3:
                found.append((parts[2], parts[1], path))
    return found


def test_no_global_symbol_is_defined_twice_and_each_carries_its_prefix(whole_archive_image):
    libs, _, archives, app, _ = whole_archive_image
    nm = sibling_tool(_target().toolchain.cc, "nm")
    everything = _defined_globals(nm, [*archives.values(), *app])
    strong: dict[str, list[Path]] = {}
    for symbol, kind, path in everything:
        if kind not in "WVwv":
            strong.setdefault(symbol, []).append(path)
    assert not {s: p for s, p in strong.items() if len(p) > 1}
    for lib in libs:
        own = [symbol for symbol, _, path in everything if path == archives[lib.name]]
        assert own and not [s for s in own if not s.startswith(f"{lib.name}_")], lib.name
    # the kernel both libraries ship is there twice, once under each prefix
    assert {"ic_ek_maxpool2d_f32", "kws_ek_maxpool2d_f32"} <= set(strong)
    assert {"ic_ek_gemm_f32", "moe_ek_gemm_f32", "moe_ek_moe_f32", "moe_moe0_e0_run"} <= set(strong)


def test_platformio_library_json_sources_and_flags_build_one_image(libraries, tmp_path):
    """PlatformIO cannot run here: compile exactly what each library.json lists (its srcFilter
    sources, build flags and include directory), archive each library as PlatformIO does, link.
    PlatformIO splits build.flags as SCons does: -l/-L/-Wl, go to the link, the rest to the compiler."""
    libs = list(libraries.values())
    feeds = write_sources(tmp_path, libs)
    link_flags: list[str] = []

    def from_library_json(lib: Library) -> tuple[list[str], list[str]]:
        spec = json.loads((lib.out / "library.json").read_text())
        assert spec["name"] == lib.name
        filters = spec["build"]["srcFilter"]
        assert filters[0] == "-<*>" and all(re.fullmatch(r"\+<[^<>*]+>", f) for f in filters[1:]), filters
        sources = [f[2:-1] for f in filters[1:]]
        assert sorted(sources) == sorted(lib.meta["sources"])
        includes = {lib.out / spec["build"].get("includeDir", "include"), lib.out / spec["build"].get("srcDir", "src")}
        flags = spec["build"].get("flags", [])
        link_flags.extend(f for f in flags if f.startswith(("-l", "-L", "-Wl,")))
        compile_flags = [f for f in flags if not f.startswith(("-l", "-L", "-Wl,"))]
        return sources, [*_cflags(), *compile_flags, *(f"-I{d}" for d in sorted(includes))]

    archives = _archives(tmp_path, libs, from_library_json)
    app = _harness_objects(tmp_path, [lib.out for lib in libs])
    elf = tmp_path / "app.elf"
    _run(_link_command([str(o) for o in app], elf, tmp_path, [*map(str, archives.values()), *link_flags]), tmp_path)
    run_and_check(elf, libs, feeds)


# ---------------------------------------------------------------------------------------------
# The renaming itself.


def test_symbol_list_reads_external_functions_and_data_only():
    source = "\n".join([
        "void ek_a_f32(const ek_a_params *p,", "                float *out);", "int32_t *ek_b(void);",
        "extern const int8_t ek_table[256];", "const float ek_scale = 1.0f;", "uint32_t ek_count;",
        "static void ek_helper(void);", "static inline float ek_inline(float x) { return x; }",
        "typedef void (*ek_fn)(void);", "EK_DEFINE_BINARY(max, ek_max_nan(y, x))", "    ek_call(p);",
        " * void ek_in_comment(void);", "#define ek_macro(x) (x)"])
    assert external_symbols([source]) == ["ek_a_f32", "ek_b", "ek_count", "ek_scale", "ek_table"]
    header = names_header("wake", ["ek_a_f32", "ek_b"])
    assert "#define ek_a_f32 wake_ek_a_f32" in header and "#ifndef EK_NAMES_H" in header


@pytest.mark.parametrize("target_name", ["cortex-m0plus", "cortex-m4", "cortex-m55"])
def test_every_kernel_symbol_is_renamed(tmp_path, target_name):
    """The list ek_names.h is generated from is complete: every kernel compiled with the header
    of library 'zz' defines only zz_ global symbols (each profile compiles its own code paths)."""
    target = _registry().target(target_name)
    names = sorted(p.name for p in KERNEL_DIR.iterdir() if p.suffix in (".c", ".h"))
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    for name, text in kernel_texts("zz", names).items():
        (kernels / name).write_text(text, encoding="utf-8")
    flags = [*target.toolchain.cflags, OPT, *WARNINGS, f"-I{kernels}"]
    objects = compile_objects(target.toolchain.cc, [(kernels / n, flags) for n in names if n.endswith(".c")],
                              tmp_path / "obj", "kernels")
    defined = _defined_globals(sibling_tool(target.toolchain.cc, "nm"), objects)
    assert len(defined) >= 70 and not [s for s, _, _ in defined if not s.startswith("zz_ek_")]
    assert not any(s == "ek_profile_mark" for s, _, _ in defined)  # the harness's hook stays one shared name


def test_tvm_kernel_libraries_link_with_each_other_and_with_mcu_c(libraries, tmp_path):
    """Two --kernels tvm libraries (TVM names every kernel and run-time hook the same in each
    build: the object is renamed under the library's prefix) and an mcu-c library in one
    whole-archive image; one TVM library calls the workspace hooks (unscheduled conv)."""
    pytest.importorskip("tvm", reason="the tvm extra is not installed")
    import onnx.helper as oh

    def tiny(seed: int, channels: int) -> Path:
        rng = np.random.default_rng(seed)
        init = [onnx.numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n)
                for n, s in (("w", (channels, 3, 3, 3)), ("b", (channels,)), ("fw", (channels * 64, 5)))]
        init.append(onnx.numpy_helper.from_array(np.array([1, -1], np.int64), "shape"))
        nodes = [oh.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), oh.make_node("Relu", ["c"], ["r"]),
                 oh.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
                 oh.make_node("Reshape", ["p", "shape"], ["f"]), oh.make_node("MatMul", ["f", "fw"], ["y"])]
        graph = oh.make_graph(nodes, "tiny", [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 16, 16])],
                              [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 5])], init)
        model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
        model.ir_version = 9
        path = tmp_path / f"tiny{seed}.onnx"
        onnx.save(model, path)
        return path

    tvm_libs = [_build("net_a", tmp_path / "net_a", str(tiny(1, 4)), {"kernels": "tvm"}),
                _build("net_b", tmp_path / "net_b", str(tiny(2, 6)), {"kernels": "tvm", "default_schedule": False})]
    nm = sibling_tool(_target().toolchain.cc, "nm")
    hooks = [s for s, _, _ in _defined_globals(nm, [tmp_path / "net_b" / o for o in tvm_libs[1].meta["objects"]])]
    assert "net_b___TVMBackendAllocWorkspace" in hooks
    libs = [*tvm_libs, libraries["kws"]]
    work = tmp_path / "image"
    feeds = write_sources(work, libs)

    archives = _archives(work, libs, _library_flags)
    for lib in tvm_libs:  # TVM's kernel object goes into the library's archive
        run_tool([sibling_tool(_target().toolchain.cc, "ar"), "rs", str(archives[lib.name]),
                  *(str(lib.out / o) for o in lib.meta["objects"])], "archiving")
    app = _harness_objects(work, [lib.out for lib in libs])
    elf = work / "app.elf"
    _run(_link_command([str(o) for o in app], elf, work,
                       ["-Wl,--whole-archive", *map(str, archives.values()), "-Wl,--no-whole-archive"]), work)
    run_and_check(elf, libs, feeds)
    strong = [s for s, kind, _ in _defined_globals(nm, list(archives.values())) if kind not in "WVwv"]
    assert len(strong) == len(set(strong))
    for lib in tvm_libs:
        assert any(s.startswith(f"{lib.name}___tvm_ffi_") for s in strong)
