"""OpenCL builds for phone GPUs (Mali, Adreno): kernels scheduled with dlight's default GPU rules,
compiled by TVM into OpenCL C plus an aarch64-android host module driven by TVM's Relax VM.

Nothing here can run an OpenCL device, so what a build verifies is: TVM compiles every kernel to
OpenCL C (source saved as ``kernels.cl``), the host library links with the aarch64 cross
compiler (``lib<name>.so``, needs TVM's runtime with OpenCL on the phone), the kernel count, and the
static memory plan of the activations. The report says exactly that under ``verified``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import edgekit

SOURCE_FILE = "kernels.cl"


def schedule_for_gpu(fused_mod, tvm_target):
    """dlight's default GPU schedules (Adreno-specific rules first on Adreno)."""
    from tvm.s_tir import dlight as dl

    rules = [dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(), dl.gpu.Fallback()]
    if "adreno" in str(tvm_target.attrs.get("device", "")):
        rules = [dl.adreno.Conv2d(), *rules] if hasattr(dl.adreno, "Conv2d") else rules
    with tvm_target:
        return dl.ApplyDefaultSchedule(*rules)(fused_mod)


def build_gpu(relax_mod, tvm_target, context: edgekit.BuildContext, out_dir: Path, database, tuned,
              timings: dict[str, float]) -> edgekit.Artifact:
    import tvm

    from edgekit.compiler import lower
    from edgekit.naming import library_prefix
    from edgekit.plugins.harness.compile import require_tool

    mark = time.perf_counter()
    plan = lower.walk_main(lower.optimize(relax_mod, tvm_target, database))
    from edgekit.compiler.tuning import fuse

    scheduled = schedule_for_gpu(fuse(relax_mod, tvm_target, database), tvm_target)
    try:
        executable = tvm.compile(scheduled, target=tvm_target)
    except Exception as exc:
        from edgekit.errors import one_line

        raise edgekit.BuildError(f"TVM could not compile for {context.target.name} (OpenCL): {one_line(exc)}") from exc
    timings["tvm_compile"] = time.perf_counter() - mark
    device_modules = [m for m in _all_modules(executable.mod) if m.kind == "opencl"]
    source = "\n".join(m.inspect_source() for m in device_modules)
    (out_dir / SOURCE_FILE).write_text(source, encoding="utf-8")
    # The source repeats every prototype before each function: count distinct kernel names.
    kernel_names = sorted(set(re.findall(r"__kernel\s+void\s+(?:__attribute__\(\([^)]*\)\)\s*)?(\w+)", source)))
    mark = time.perf_counter()
    name = library_prefix(context.option("name", "model"))
    library = f"lib{name}.so"
    cc = require_tool(context.target.toolchain.cc, f"link the host library for {context.target.name}")
    executable.export_library(str(out_dir / library), fcompile=tvm.support.cc.cross_compiler(cc))
    timings["host_link"] = time.perf_counter() - mark
    metadata = {
        "kind": "opencl",
        "tvm_target": dict(context.target.tvm_target),
        "library": library, "kernel_source": SOURCE_FILE,
        "opencl_kernels": len(kernel_names), "opencl_kernel_names": kernel_names,
        "kernels": plan.kernels(), "memory_plan": plan.memory(), "tuned_kernels": tuned,
        "library_bytes": (out_dir / library).stat().st_size,
        "verified": ["TVM compiled every kernel to OpenCL C (kernels.cl)",
                     f"host library linked for aarch64 with {context.target.toolchain.cc}",
                     "kernel count and static activation memory plan"],
        "not_verified": "no OpenCL device here: the kernels were neither compiled by a device driver nor run; "
                        f"the library needs TVM's runtime with OpenCL on the device",
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }
    return edgekit.Artifact(backend="tvm", files=[library, SOURCE_FILE], metadata=metadata)


def _all_modules(module):
    yield module
    for child in module.imports:
        yield from _all_modules(child)
