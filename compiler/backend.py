"""The ``tvm`` back end: ONNX → Relax → fused TIR kernels compiled by TVM, driven by generated C.

CPU targets (``kind = "llvm"``): an x86-64 or aarch64 shared library plus C and Python loaders (see
:mod:`edgekit.compiler.driver_c`); GPU targets (``kind = "opencl"``): see :mod:`edgekit.compiler.gpu`.
TVM is imported inside the methods only: plugins load at every CLI start.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import edgekit

HOST_RUNNER = "tvm-host"
EMULATED_RUNNER = "qemu-user"
WEIGHTS_FILE = "weights.bin"
PLAN_FILE = "plan.json"


def target_kind(target: edgekit.Target) -> str:
    """The ``[tvm_target]`` kind; refuses profiles this back end cannot build a library for."""
    kind = target.tvm_target.get("kind", "")
    if not kind:
        raise edgekit.UsageError(f"target '{target.name}' has no [tvm_target] table; the tvm back end "
                                 "needs one (e.g. kind = \"llvm\", mtriple = \"aarch64-linux-gnu\")")
    triple = target.tvm_target.get("mtriple", "linux")  # no triple: the host
    if kind == "llvm" and "linux" not in triple:
        raise edgekit.UsageError(f"target '{target.name}' is bare-metal ({triple}): the tvm back end builds "
                                 "Linux libraries; use the mcu-c back end with --kernels tvm for TVM kernels there")
    return kind


class TvmBackend(edgekit.Backend):
    name = "tvm"
    description = "Apache TVM kernels (fused, optionally MetaSchedule-tuned) with a runtime-free C driver"

    def supported_ops(self, target: edgekit.Target) -> set[str]:
        from edgekit.compiler.importer import importer_ops

        return set(importer_ops())

    def check(self, model, context: edgekit.BuildContext) -> None:
        from edgekit.compiler.importer import first_unsupported, unsupported_error

        target_kind(context.target)
        node = first_unsupported(model, self.supported_ops(context.target))
        if node is not None:
            raise unsupported_error(node, context, self.name)

    def runner_for(self, target: edgekit.Target) -> str | None:
        kind = target.tvm_target.get("kind")
        if kind != "llvm":
            return None  # GPU profiles: build-only here (the profile has no runner)
        return EMULATED_RUNNER if target.emulator.program else HOST_RUNNER

    def build(self, model, context: edgekit.BuildContext, out_dir: Path) -> edgekit.Artifact:
        from edgekit.compiler import lower
        from edgekit.compiler.importer import import_onnx
        from edgekit.compiler.tuning import open_database

        timings: dict[str, float] = {}
        started = time.perf_counter()
        target = context.target
        tvm_target = lower.tvm_target(target.tvm_target)
        relax_mod = import_onnx(model)
        timings["import"] = time.perf_counter() - started
        database, decided = open_database(context, relax_mod, tvm_target)
        if target_kind(target) != "llvm":
            from edgekit.compiler.gpu import build_gpu

            return build_gpu(relax_mod, tvm_target, context, out_dir, database, decided["tuned"], timings)
        mark = time.perf_counter()
        from edgekit.compiler.default_schedule import default_schedules

        defaults = default_schedules(target.tvm_target) if context.flag("default_schedule", True) else None
        planned = lower.optimize(relax_mod, tvm_target, database, defaults)
        plan = lower.walk_main(planned)
        lower.build_kernels(planned, tvm_target, out_dir / "kernels.o")
        timings["tvm_compile"] = time.perf_counter() - mark
        mark = time.perf_counter()
        files = write_cpu_sources(plan, context, out_dir)
        from edgekit.compiler.export import compile_library

        name = files["name"]
        library, program = compile_library(target, out_dir, name, [f"{name}_driver.c", f"{name}_weights.S"],
                                           ["kernels.o"])
        timings["c_compile"] = time.perf_counter() - mark
        written = [library, program, "kernels.o", *files["sources"]]
        metadata = {
            "kind": "llvm",
            "tvm_target": dict(target.tvm_target),
            "library": library, "program": program, "python_loader": "model.py", "c_name": name,
            "inputs": _specs(plan, plan.inputs), "outputs": _specs(plan, plan.outputs),
            "kernels": plan.kernels(), "memory_plan": plan.memory(),
            "tuned_kernels": decided["tuned"], "default_schedule_kernels": decided["default_best"],
            "library_bytes": (out_dir / library).stat().st_size,
            "seconds": {k: round(v, 3) for k, v in timings.items()},
        }
        return edgekit.Artifact(backend=self.name, files=written, metadata=metadata)


def write_cpu_sources(plan, context: edgekit.BuildContext, out_dir: Path) -> dict:
    """Write header, driver, weight blob + assembly unit, loader program and Python loader."""
    from edgekit.compiler import driver_c

    name = driver_c.c_name(context.option("name", "model"))
    blob, offsets = driver_c.weight_blob(plan)
    (out_dir / WEIGHTS_FILE).write_bytes(blob)
    sources = {
        f"{name}.h": driver_c.emit_header(plan, name),
        f"{name}_driver.c": driver_c.emit_driver(plan, name, offsets),
        f"{name}_weights.S": driver_c.emit_weights_asm(name, WEIGHTS_FILE),
        "run_model.c": driver_c.emit_loader_program(plan, name),
        "model.py": driver_c.emit_python_loader(plan, name, f"lib{name}.so"),
    }
    for file, text in sources.items():
        (out_dir / file).write_text(text, encoding="utf-8")
    plan_record = {"storages": plan.storages, "calls": [{"kernel": c.kernel, "args": c.args} for c in plan.calls],
                   "slots": {k: vars(v) for k, v in plan.slots.items()}}
    (out_dir / PLAN_FILE).write_text(json.dumps(plan_record, indent=1), encoding="utf-8")
    return {"name": name, "sources": [*sources, WEIGHTS_FILE, PLAN_FILE]}


def _specs(plan, names: list[str]) -> list[dict]:
    return [{"name": n, "shape": plan.slots[n].shape, "dtype": plan.slots[n].dtype} for n in names]
