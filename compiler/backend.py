"""The ``tvm`` back end: ONNX → Relax → fused TIR kernels compiled by TVM, driven by generated C.

CPU targets (``kind = "llvm"``): an x86-64 or aarch64 shared library plus C and Python loaders (see
:mod:`edgekit.compiler.driver_c`); GPU targets (``kind = "opencl"``): see :mod:`edgekit.compiler.gpu`.
On CPU targets a model with partitioned mixture-of-experts layers (``experts-partition``) runs only
the k routed experts per token (:mod:`edgekit.compiler.moe_split`, :mod:`edgekit.compiler.driver_moe`);
option ``moe_conditional=false`` computes every expert, as the graph says and onnxruntime does.
TVM is imported inside the methods only: plugins load at every CLI start.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import edgekit
from edgekit.naming import library_prefix

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
        kind = target_kind(target)
        split = _moe_split(model, context) if kind == "llvm" else None
        if split is not None:
            from edgekit.compiler.moe_split import import_split

            relax_mod = import_split(split)
        else:
            relax_mod = import_onnx(model)
        timings["import"] = time.perf_counter() - started
        database, decided = open_database(context, relax_mod, tvm_target)
        if kind != "llvm":
            from edgekit.compiler.gpu import build_gpu

            return build_gpu(relax_mod, tvm_target, context, out_dir, database, decided["tuned"], timings)
        mark = time.perf_counter()
        from edgekit.compiler.default_schedule import default_schedules

        defaults = default_schedules(target.tvm_target) if context.flag("default_schedule", True) else None
        planned = lower.optimize(relax_mod, tvm_target, database, defaults)
        if split is not None:
            plans = {part.name: lower.walk_main(planned, part.name) for part in split.parts}
            for part in split.parts:
                walked = plans[part.name]
                if (len(walked.inputs), len(walked.outputs)) != (len(part.inputs), len(part.outputs)):
                    raise edgekit.BuildError(f"TVM lowering: {part.name} has other inputs or outputs than its ONNX "
                                             "sub-model; build with --option moe_conditional=false")
        else:
            plan = lower.walk_main(planned)
        lower.build_kernels(planned, tvm_target, out_dir / "kernels.o")
        timings["tvm_compile"] = time.perf_counter() - mark
        mark = time.perf_counter()
        if split is not None:
            files = write_moe_sources(split, plans, context, out_dir)
        else:
            files = write_cpu_sources(plan, context, out_dir)
        from edgekit.compiler.export import compile_library

        name = files["name"]
        library, program = compile_library(target, out_dir, name,
                                           [f"{name}_driver.c", f"{name}_weights.S", *files["c_sources"]],
                                           ["kernels.o"])
        timings["c_compile"] = time.perf_counter() - mark
        written = [library, program, "kernels.o", *files["sources"]]
        interface = files["interface"]
        if split is None:
            from edgekit.compiler.driver_moe import dense_placement

            files["moe"] = dense_placement(model)  # MoE layers computed densely: said in the report
        metadata = {
            "kind": "llvm",
            "tvm_target": dict(target.tvm_target),
            "library": library, "program": program, "python_loader": "model.py", "c_name": name,
            "inputs": _specs(interface, interface.inputs), "outputs": _specs(interface, interface.outputs),
            "kernels": files["kernels"], "memory_plan": files["memory"],
            "tuned_kernels": decided["tuned"], "default_schedule_kernels": decided["default_best"],
            "library_bytes": (out_dir / library).stat().st_size,
            **({"moe": files["moe"]} if files.get("moe") else {}),
            "seconds": {k: round(v, 3) for k, v in timings.items()},
        }
        return edgekit.Artifact(backend=self.name, files=written, metadata=metadata)


def _moe_split(model, context: edgekit.BuildContext):
    """The model split for conditional mixture-of-experts execution (see
    :mod:`edgekit.compiler.moe_split`), or None: no MoE metadata, or option
    ``moe_conditional=false`` (as for mcu-c: every expert computed, here by the dense graph)."""
    from edgekit.moe import moe_layers

    if not moe_layers(model):
        return None
    from edgekit.plugins.mcu.ops_moe import MoeOptions

    if not MoeOptions.from_options(context.options).conditional:
        return None
    from edgekit.compiler.moe_split import split_model

    return split_model(model, context.target.name)


def write_cpu_sources(plan, context: edgekit.BuildContext, out_dir: Path) -> dict:
    """Write header, driver, weight blob + assembly unit, loader program and Python loader."""
    from edgekit.compiler import driver_c

    name = library_prefix(context.option("name", "model"))
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
    (out_dir / PLAN_FILE).write_text(json.dumps(_plan_record(plan), indent=1), encoding="utf-8")
    return {"name": name, "sources": [*sources, WEIGHTS_FILE, PLAN_FILE], "c_sources": [], "interface": plan,
            "kernels": plan.kernels(), "memory": plan.memory()}


def write_moe_sources(split, plans: dict, context: edgekit.BuildContext, out_dir: Path) -> dict:
    """Like :func:`write_cpu_sources`, for a conditional mixture-of-experts build: one driver over
    every part's plan, the shared weight blob, and mcu-c's ``ek_moe`` kernel files."""
    from edgekit.compiler import driver_c, driver_moe

    name = library_prefix(context.option("name", "model"))
    blob, offsets = driver_c.shared_weight_blob(list(plans.values()))
    (out_dir / WEIGHTS_FILE).write_bytes(blob)
    interface = driver_moe.interface_plan(split)
    sources = {
        f"{name}.h": driver_c.emit_header(interface, name),
        f"{name}_driver.c": driver_moe.emit_moe_driver(split, plans, name, dict(zip(plans, offsets))),
        f"{name}_weights.S": driver_c.emit_weights_asm(name, WEIGHTS_FILE),
        "run_model.c": driver_c.emit_loader_program(interface, name),
        "model.py": driver_c.emit_python_loader(interface, name, f"lib{name}.so"),
        **driver_moe.kernel_files(),
    }
    for file, text in sources.items():
        (out_dir / file).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / file).write_text(text, encoding="utf-8")
    from edgekit.compiler.moe_split import LayerStep

    steps = [{"moe_layer": s.layer.name, "experts": [p.name for p in s.experts]} if isinstance(s, LayerStep)
             else {"segment": s.name} for s in split.steps]
    record = {"steps": steps, "parts": {part: _plan_record(plan) for part, plan in plans.items()}}
    (out_dir / PLAN_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")
    return {"name": name, "sources": [*sources, WEIGHTS_FILE, PLAN_FILE],
            "c_sources": [f for f in sources if f.startswith(f"{driver_moe.KERNEL_DIR}/") and f.endswith(".c")],
            "interface": interface, "kernels": sorted({k for p in plans.values() for k in p.kernels()}),
            "memory": driver_moe.memory(split, plans, len(blob)), "moe": driver_moe.placement(split, plans)}


def _plan_record(plan) -> dict:
    return {"storages": plan.storages, "calls": [{"kernel": c.kernel, "args": c.args} for c in plan.calls],
            "slots": {k: vars(v) for k, v in plan.slots.items()}}


def _specs(plan, names: list[str]) -> list[dict]:
    return [{"name": n, "shape": plan.slots[n].shape, "dtype": plan.slots[n].dtype} for n in names]
