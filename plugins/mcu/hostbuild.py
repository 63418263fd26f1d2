"""Compile generated C on the host (gcc) into a shared library and run it through ctypes.

Used by the tests and the conformance runner: many generated models (each with its own symbol
prefix) plus one copy of the kernel library link into a single .so, so a batch costs one link."""

from __future__ import annotations

import ctypes
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edgekit.errors import BuildError
from edgekit.plugins.mcu.generator import KERNEL_DIR

STRICT_CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror")
SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                  "-fno-omit-frame-pointer")


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"host compile failed: {' '.join(cmd[:6])}...: "
                         f"{(proc.stderr or proc.stdout).strip()[:4000]}")


def compile_objects(sources: list[Path], obj_dir: Path, include_dirs: list[Path],
                    cflags: tuple[str, ...] = STRICT_CFLAGS + ("-O1", "-fPIC"),
                    cc: str = "gcc", jobs: int | None = None) -> list[Path]:
    obj_dir.mkdir(parents=True, exist_ok=True)
    incs = [f"-I{d}" for d in include_dirs]
    objs = []
    cmds = []
    for i, src in enumerate(sources):
        obj = obj_dir / f"{i:05d}_{src.stem}.o"
        objs.append(obj)
        cmds.append([cc, *cflags, *incs, "-c", str(src), "-o", str(obj)])
    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 2) as pool:
        list(pool.map(_run, cmds))
    return objs


def link_shared(objs: list[Path], out: Path, ldflags: tuple[str, ...] = (), cc: str = "gcc") -> Path:
    _run([cc, "-shared", *ldflags, "-o", str(out), *map(str, objs), "-lm"])
    return out


def kernel_sources() -> list[Path]:
    return sorted(KERNEL_DIR.glob("*.c"))


class HostModel:
    """ctypes binding of ``<prefix>_run_io`` in a shared library."""

    def __init__(self, lib: ctypes.CDLL, prefix: str, input_shapes: list[tuple[int, ...]],
                 output_shapes: list[tuple[int, ...]], arena_bytes: int,
                 input_dtypes: list | None = None, output_dtypes: list | None = None):
        self.fn = getattr(lib, f"{prefix}_run_io")
        self.input_dtypes = input_dtypes or [np.float32] * len(input_shapes)
        self.output_dtypes = output_dtypes or [np.float32] * len(output_shapes)
        self.fn.restype = ctypes.c_int
        self.fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        self.input_shapes, self.output_shapes = input_shapes, output_shapes
        self.arena_bytes = arena_bytes

    def run(self, inputs: list[np.ndarray], arena_fill: int = 0xA5) -> list[np.ndarray]:
        ins = [np.ascontiguousarray(np.asarray(x, dtype=t).reshape(s))
               for x, s, t in zip(inputs, self.input_shapes, self.input_dtypes)]
        outs = [np.full(s, np.nan if np.dtype(t).kind == "f" else 0x55, dtype=t)
                for s, t in zip(self.output_shapes, self.output_dtypes)]
        # The arena starts filled with garbage: a kernel reading memory it never wrote shows up.
        arena = np.full(max(self.arena_bytes, 16) + 16, arena_fill, dtype=np.uint8)
        base = arena.ctypes.data
        aligned = (base + 15) & ~15
        in_ptrs = (ctypes.c_void_p * max(len(ins), 1))(*[x.ctypes.data for x in ins])
        out_ptrs = (ctypes.c_void_p * max(len(outs), 1))(*[y.ctypes.data for y in outs])
        status = self.fn(in_ptrs, out_ptrs, ctypes.c_void_p(aligned))
        if status != 0:
            raise RuntimeError(f"run_io returned {status}")
        return outs


def driver_source(prefix: str, num_inputs: int, num_outputs: int, arena_bytes: int) -> str:
    """A host test driver: reads each input from a raw float32 file, runs the model once in an
    arena pre-filled with garbage, writes each output to a raw float32 file.
    Usage: driver in0.bin [in1.bin...] out0.bin [out1.bin...]"""
    P = prefix.upper()
    lines = ["#include <stdint.h>", "#include <stdio.h>", "#include <stdlib.h>", "#include <string.h>",
             f'#include "{prefix}.h"', "",
             f"static uint8_t arena[{max(arena_bytes, 16)}] __attribute__((aligned(16)));", ""]
    for i in range(num_inputs):
        lines.append(f"static float in{i}[{P}_INPUT_{i}_COUNT];")
    for i in range(num_outputs):
        lines.append(f"static float out{i}[{P}_OUTPUT_{i}_COUNT];")
    lines += ["", "static int io(const char *path, void *buf, size_t bytes, int write)", "{",
              "    FILE *f = fopen(path, write ? \"wb\" : \"rb\");",
              "    size_t n;",
              "    if (f == NULL) return 1;",
              "    n = write ? fwrite(buf, 1, bytes, f) : fread(buf, 1, bytes, f);",
              "    fclose(f);",
              "    return n != bytes;",
              "}", "", "int main(int argc, char **argv)", "{",
              f"    const void *inputs[{max(num_inputs, 1)}];",
              f"    void *outputs[{max(num_outputs, 1)}];",
              "    int status;",
              f"    if (argc != {1 + num_inputs + num_outputs}) return 2;",
              "    memset(arena, 0xA5, sizeof arena);"]
    for i in range(num_inputs):
        lines += [f"    if (io(argv[{1 + i}], in{i}, sizeof in{i}, 0)) return 3;",
                  f"    inputs[{i}] = in{i};"]
    for i in range(num_outputs):
        lines.append(f"    outputs[{i}] = out{i};")
    lines += [f"    status = {prefix}_run_io(inputs, outputs, arena);", "    if (status != 0) return 4;"]
    for i in range(num_outputs):
        lines.append(f"    if (io(argv[{1 + num_inputs + i}], out{i}, sizeof out{i}, 1)) return 5;")
    lines += ["    return 0;", "}", ""]
    return "\n".join(lines)


def build_driver(out_dir: Path, prefix: str, sources: list[str], num_inputs: int, num_outputs: int,
                 arena_bytes: int, cflags: tuple[str, ...] = STRICT_CFLAGS + SANITIZE_FLAGS + ("-O1", "-g"),
                 cc: str = "gcc") -> Path:
    """Compile the generated library with the test driver into an executable."""
    out_dir = Path(out_dir)
    drv = out_dir / "host_driver.c"
    drv.write_text(driver_source(prefix, num_inputs, num_outputs, arena_bytes), encoding="utf-8")
    exe = out_dir / "host_driver"
    objs = compile_objects([out_dir / s for s in sources] + [drv], out_dir / "obj_driver",
                           [out_dir, out_dir / "kernels"], cflags, cc)
    _run([cc, *[f for f in cflags if f.startswith("-fsanitize") or f.startswith("-fno-sanitize")],
          "-o", str(exe), *map(str, objs), "-lm"])
    return exe


def run_driver(exe: Path, inputs: list[np.ndarray], output_shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    work = exe.parent
    in_files, out_files = [], []
    for i, x in enumerate(inputs):
        path = work / f"driver_in{i}.bin"
        np.ascontiguousarray(x, dtype=np.float32).tofile(path)
        in_files.append(str(path))
    for i in range(len(output_shapes)):
        out_files.append(str(work / f"driver_out{i}.bin"))
    proc = subprocess.run([str(exe), *in_files, *out_files], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"driver exited {proc.returncode}: {proc.stderr[-3000:]}")
    return [np.fromfile(f, dtype=np.float32).reshape(s) for f, s in zip(out_files, output_shapes)]
