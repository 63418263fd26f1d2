"""``--kernels tvm`` for the ``mcu-c`` back end: TVM-generated kernels (LLVM Thumb objects, tuned
when the tuning database has records for the target) under the back end's static-arena C.

What a build writes: ``<name>_kernels.o`` (every fused kernel, packed ABI, argument checks
dropped), ``<name>.h`` / ``<name>.c`` / ``<name>_weights.c`` / ``ek_tvm_abi.h`` (see
:mod:`edgekit.compiler.mcu_driver`), and integration files that link the object. The harness runs
it like the hand-written kernels: the same API, the same comparison with onnxruntime.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

import edgekit

KERNELS_OBJECT = "{name}_kernels.o"
KERNELS_C_SOURCE = "{name}_kernels_tvm.c"   # option tvm_codegen=c: TVM's C, kept for inspection
CODEGENS = ("llvm", "c")
# TVM's C declares every argument and shape array whether a kernel reads it or not.
TVM_C_WARNINGS_OFF = ("-Wno-unused-parameter", "-Wno-unused-variable", "-Wno-unused-but-set-variable")
#: LLVM calls soft-float helpers by their GNU names; the Thumb-1 libgcc has only the run-time ABI
#: names for these, with the same arguments and results, so the object is pointed at them.
AEABI_NAMES = {"__addsf3": "__aeabi_fadd", "__subsf3": "__aeabi_fsub", "__mulsf3": "__aeabi_fmul",
               "__divsf3": "__aeabi_fdiv", "__adddf3": "__aeabi_dadd", "__subdf3": "__aeabi_dsub",
               "__muldf3": "__aeabi_dmul", "__divdf3": "__aeabi_ddiv", "__floatsisf": "__aeabi_i2f",
               "__floatunsisf": "__aeabi_ui2f", "__fixsfsi": "__aeabi_f2iz", "__fixunssfsi": "__aeabi_f2uiz",
               "__extendsfdf2": "__aeabi_f2d", "__truncdfsf2": "__aeabi_d2f", "__floatsidf": "__aeabi_i2d",
               "__fixdfsi": "__aeabi_d2iz"}


class TvmMcuKernels(edgekit.KernelLibrary):
    name = "tvm"
    backend = "mcu-c"
    description = "TVM kernels (LLVM Thumb objects; MetaSchedule-tuned when records exist) in mcu-c's static arena"

    def supported_ops(self, target: edgekit.Target) -> set[str]:
        from edgekit.compiler.importer import importer_ops

        return set(importer_ops())

    def check(self, model, context: edgekit.BuildContext) -> None:
        from edgekit.compiler.importer import first_unsupported
        from edgekit.model import op_key
        from edgekit.plugins.mcu.optable import supported_ops_list

        spec = context.target.tvm_target
        if spec.get("kind") != "llvm" or not str(spec.get("mtriple", "")).startswith("thumb"):
            raise edgekit.UsageError(f"--kernels tvm: target '{context.target.name}' has no Thumb [tvm_target] "
                                     f"(got {dict(spec) or 'none'}); it is for Cortex-M profiles")
        for option, fine in (("static_arena", (None, False)), ("io", (None, "float"))):
            if context.option(option) not in fine:
                raise edgekit.UsageError(f"--option {option}={context.option(option)}: not offered with --kernels tvm "
                                         "(the caller passes the arena, inputs and outputs are float); drop it, "
                                         "or build without --kernels tvm")
        node = first_unsupported(model, self.supported_ops(context.target))
        if node is not None:
            op = op_key(node)
            hint = ("; edgekit's own kernels run it: build without --kernels tvm" if op in supported_ops_list()
                    else "; no kernel library of mcu-c runs it")
            raise edgekit.BuildError(f"node '{node.name or '<unnamed>'}' (op {op}) is not supported by TVM's ONNX "
                                     f"importer (--kernels tvm, target '{context.target.name}'){hint}")

    def build(self, model, context: edgekit.BuildContext, out_dir: Path) -> dict[str, Any]:
        from edgekit.compiler import lower, mcu_driver
        from edgekit.compiler.importer import import_onnx
        from edgekit.compiler.mcu_arena import plan_arena
        from edgekit.compiler.default_schedule import default_schedules
        from edgekit.compiler.tuning import open_database
        from edgekit.naming import library_prefix
        from edgekit.plugins.mcu.io_layout import io_layouts

        timings: dict[str, float] = {}
        started = time.perf_counter()
        target = context.target
        codegen = str(context.option("tvm_codegen", "llvm"))
        if codegen not in CODEGENS:
            raise edgekit.UsageError(f"--option tvm_codegen={codegen}: expected one of {', '.join(CODEGENS)}")
        tvm_target = lower.tvm_target(target.tvm_target)
        relax_mod = import_onnx(model)
        database, decided = open_database(context, relax_mod, tvm_target)
        defaults = default_schedules(target.tvm_target) if context.flag("default_schedule", True) else None
        planned = lower.optimize(relax_mod, tvm_target, database, defaults)
        plan = lower.walk_main(planned)
        prefix = library_prefix(context.option("name", "model"))
        obj = KERNELS_OBJECT.format(name=prefix)
        written = [obj]
        if codegen == "c":
            kernel_target = lower.tvm_target({"kind": "c", "mcpu": target.tvm_target.get("mcpu", target.cpu)})
            source = KERNELS_C_SOURCE.format(name=prefix)
            (out_dir / source).write_text(lower.kernel_c_source(planned, kernel_target), encoding="utf-8")
            _compile_c_kernels(target, out_dir, source, obj)
            written.append(source)
        else:
            kernel_target = tvm_target
            lower.build_kernels(planned, tvm_target, out_dir / obj)
        arena = plan_arena(plan, lower.workspace_allocations(planned, kernel_target))
        timings["tvm_compile"] = time.perf_counter() - started
        symbols = _use_aeabi_helpers(target, out_dir, obj)
        _prefix_symbols(target, out_dir, obj, prefix)
        io_names = _io_names(model, plan)
        names = mcu_driver.Names(prefix, plan)
        readers: dict[int, str] = {}
        for call in plan.calls:
            for arg in call.args:
                if plan.slots[arg].kind == "const":
                    readers.setdefault(plan.slots[arg].index, call.kernel)
        files = {
            f"{prefix}.h": mcu_driver.emit_header(plan, names, arena, io_names, _build_info(context, plan),
                                                  io_layouts(model)),
            f"{prefix}.c": mcu_driver.emit_source(plan, names, arena, symbols),
            f"{prefix}_weights.c": mcu_driver.emit_weights(plan, names, readers),
            mcu_driver.ABI_HEADER: mcu_driver.abi_header(),
        }
        for rel, text in files.items():
            (out_dir / rel).write_text(text, encoding="utf-8", newline="\n")
        sources = [f"{prefix}.c", f"{prefix}_weights.c"]
        return {
            "name": prefix, "header": f"{prefix}.h", "sources": sources, "objects": [obj],
            "include_dirs": ["."], "run_function": f"{prefix}_run_io", "static_arena": False,
            "arena_bytes": arena.arena_bytes, "arena_lower_bound_bytes": arena.lower_bound_bytes,
            "arena_ratio": round(arena.ratio, 4), "arena_tensor_lower_bound_bytes": arena.tensor_lower_bound_bytes,
            "workspace_bytes": arena.workspace_bytes,
            "workspace_allocations": arena.workspace_sizes,
            "inputs": _io(plan, plan.inputs, io_names, names), "outputs": _io(plan, plan.outputs, io_names, names),
            "layers": _layers(plan),
            "kernels": "tvm", "tvm_codegen": codegen, "tvm_target": dict(target.tvm_target),
            # kernels the tuning database decides: tuned, or the default schedule measured best
            "tuned_kernels": decided["tuned"], "default_schedule_kernels": decided["default_best"],
            "kernel_object_bytes": (out_dir / obj).stat().st_size,
            "files": sorted([*files, *written]),
            "seconds": {k: round(v, 3) for k, v in timings.items()},
        }


def _compile_c_kernels(target: edgekit.Target, out_dir: Path, source: str, obj: str) -> None:
    """TVM's C kernels compiled with the target's own compiler (``-Werror`` but for the unused
    declarations TVM's C always carries), against the tvm-ffi and TVM headers."""
    from edgekit.compiler.export import include_dirs
    from edgekit.plugins.harness.compile import WARNINGS, require_tool, run_tool

    cc = require_tool(target.toolchain.cc, f"compile TVM's C kernels for {target.name}")
    run_tool([cc, *target.toolchain.cflags, "-O2", "-ffunction-sections", "-fdata-sections", *WARNINGS,
              *TVM_C_WARNINGS_OFF, *(f"-I{d}" for d in include_dirs()), "-c", source, "-o", obj],
             f"compiling TVM's C kernels for {target.name}", cwd=out_dir)


def _use_aeabi_helpers(target: edgekit.Target, out_dir: Path, obj: str) -> set[str]:
    """Rename the object's GNU soft-float helper calls to their run-time ABI names; returns the
    object's symbols (what the driver must provide)."""
    from edgekit.plugins.harness.compile import run_tool, sibling_tool

    def symbols() -> set[str]:
        return set(run_tool([sibling_tool(target.toolchain.cc, "nm"), obj], "listing the TVM kernels' symbols",
                            cwd=out_dir).split())

    found = symbols()
    renames = [f"--redefine-sym={gnu}={aeabi}" for gnu, aeabi in AEABI_NAMES.items() if gnu in found]
    if not renames:
        return found
    objcopy = target.toolchain.objcopy or sibling_tool(target.toolchain.cc, "objcopy")
    run_tool([objcopy, *renames, obj], "pointing the TVM kernels at the run-time ABI helpers", cwd=out_dir)
    return symbols()


def _prefix_symbols(target: edgekit.Target, out_dir: Path, obj: str, prefix: str) -> None:
    """Rename the object's global symbols (the kernels' entry points) and the run-time hooks it
    calls (which ``<name>.c`` defines) to ``<prefix>_<symbol>``: TVM names them the same in every
    build, so two libraries would otherwise define them twice in one image. Weak definitions (libgcc's
    half-float helpers) stay: the linker keeps one."""
    from edgekit.compiler.mcu_driver import RUNTIME_HOOKS, library_symbol
    from edgekit.plugins.harness.compile import run_tool, sibling_tool

    listing = run_tool([sibling_tool(target.toolchain.cc, "nm"), "-g", obj], "listing the TVM kernels' symbols",
                       cwd=out_dir)
    renames = []
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        kind, name = parts[-2], parts[-1]
        defined = kind.isupper() and kind not in ("U", "W", "V")  # global, and not weak
        # LLVM's objects hold the hooks as weak null pointers ("V") that <name>.c's definitions override
        if defined or name in RUNTIME_HOOKS:
            renames.append(f"--redefine-sym={name}={library_symbol(prefix, name)}")
    if renames:
        objcopy = target.toolchain.objcopy or sibling_tool(target.toolchain.cc, "objcopy")
        run_tool([objcopy, *renames, obj], "renaming the TVM kernels' symbols under the library's prefix",
                 cwd=out_dir)


def _build_info(context: edgekit.BuildContext, plan):
    """What ``<name>.h`` records of the build, as the mcu-c back end's own headers do."""
    from edgekit.plugins.mcu.build_info import BuildInfo, precision_of

    return BuildInfo.from_context(context).with_layers(
        precision_of(plan.slots[call.args[-1]].dtype for call in plan.calls), static_arena=False)


def _io_names(model, plan) -> dict[str, str]:
    """Plan slot -> ONNX graph input/output name (the importer keeps graph order)."""
    from edgekit.model import graph_inputs

    names = dict(zip(plan.inputs, [v.name for v in graph_inputs(model)]))
    names.update(zip(plan.outputs, [v.name for v in model.graph.output]))
    return names


def _io(plan, slots: list[str], io_names: dict[str, str], names) -> list[dict[str, Any]]:
    out = []
    for slot_name in slots:
        slot = plan.slots[slot_name]
        out.append({"name": io_names[slot_name], "c_name": names.tensor[slot_name], "shape": list(slot.shape),
                    "dtype": slot.dtype, "count": int(np.prod(slot.shape, dtype=np.int64)), "bytes": slot.nbytes})
    return out


def _layers(plan) -> list[dict[str, Any]]:
    """One entry per kernel call. MACs of conv and matmul kernels: output values x the weight's
    values per output channel (dim 1 of a conv output, the last dim of a matmul's)."""
    layers = []
    for step, call in enumerate(plan.calls):
        out = plan.slots[call.args[-1]]
        macs = 0
        weights = sorted((plan.slots[a] for a in call.args[:-1] if plan.slots[a].kind == "const"),
                         key=lambda w: -w.nbytes)
        channels = out.shape[1] if "conv2d" in call.kernel and len(out.shape) > 1 else (out.shape[-1] if out.shape else 1)
        if weights and ("conv2d" in call.kernel or "matmul" in call.kernel) and channels:
            weight_count = int(np.prod(weights[0].shape, dtype=np.int64))
            macs = int(np.prod(out.shape, dtype=np.int64)) * weight_count // channels
        layers.append({"index": step, "node": call.kernel, "op": "tvm", "kernel": f"__tvm_ffi_{call.kernel}",
                       "macs": macs, "dtype": out.dtype, "summary": f"{call.kernel} -> {out.shape}",
                       "output_shape": list(out.shape)})
    return layers
