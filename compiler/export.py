"""Compile the generated driver, the weight blob and TVM's kernel object into the shipped library
(``lib<name>.so``) and the loader program, with the target's C compiler (cross for aarch64)."""

from __future__ import annotations

from pathlib import Path

import edgekit
from edgekit.plugins.harness.compile import require_tool, run_tool

WARNINGS = ["-Wall", "-Wextra", "-Werror"]


def include_dirs() -> list[str]:
    """Headers the driver needs: ``tvm/ffi/c_api.h`` (+ dlpack) from tvm_ffi, ``c_backend_api.h`` from tvm."""
    import tvm
    import tvm_ffi.libinfo

    tvm_include = Path(tvm.__file__).parent / "include"
    return [tvm_ffi.libinfo.find_include_path(), tvm_ffi.libinfo.find_dlpack_include_path(), str(tvm_include)]


def compile_library(target: edgekit.Target, out_dir: Path, name: str, sources: list[str],
                    objects: list[str]) -> tuple[str, str]:
    """Build ``lib<name>.so`` from ``sources`` (C/assembly in ``out_dir``) and ``objects``, then the
    loader program ``run_model`` (position-dependent, so marker symbols keep their addresses).
    Returns (library, program) file names."""
    cc = require_tool(target.toolchain.cc, f"compile the TVM driver for {target.name}")
    cflags = [*target.toolchain.cflags, "-O2", "-fPIC", "-std=c99", *WARNINGS,
              *(f"-I{d}" for d in include_dirs())]
    built = []
    for source in sources:
        obj = Path(source).with_suffix(".o").name
        run_tool([cc, *cflags, "-c", source, "-o", obj], f"compiling {source} for {target.name}", cwd=out_dir)
        built.append(obj)
    library = f"lib{name}.so"
    run_tool([cc, "-shared", *target.toolchain.ldflags, "-o", library, *built, *objects, "-lm"],
             f"linking {library} for {target.name}", cwd=out_dir)
    program = "run_model"
    run_tool([cc, *target.toolchain.cflags, "-O2", "-std=c99", *WARNINGS, "-no-pie", "run_model.c",
              "-o", program, "-L.", f"-l{name}", "-Wl,-rpath,$ORIGIN", *target.toolchain.ldflags],
             f"linking the loader program for {target.name}", cwd=out_dir)
    for obj in built:
        (out_dir / obj).unlink()
    return library, program
