"""The ``mcu-c`` back end: ONNX -> firmware-ready C99 (one kernel call per layer, const weights,
static memory plan) for Cortex-M targets, with flash/RAM figures measured by the target's
toolchain and checked against its budgets.

Options read from ``context.options``: ``name`` (C symbol prefix, default "model"),
``static_arena`` (the library defines its arena; pass NULL to ``<name>_run_io``),
``output_workspace`` (default true: tensors that die before a float32 output is written live in
that output's buffer instead of the arena),
``kernels`` ("edgekit", the default, or a registered kernel library for mcu-c such as "tvm"),
``ignore_budget`` (report a flash/RAM overrun in ``budget_exceeded`` instead of failing, e.g. to
run a float model on an emulated board whose memory is larger than the profile's budget);
mixture-of-experts layers: ``moe_conditional``, ``expert_memory``, ``expert_region`` (see ops_moe)."""

from __future__ import annotations

from pathlib import Path

import onnx

import edgekit
from edgekit.errors import BuildError
from edgekit.plugins.mcu import emit_moe, sizes
from edgekit.plugins.mcu.build_info import BuildInfo, precision_of
from edgekit.plugins.mcu.generator import MEMORY_PLAN_FILE, generate, lower_model, write_integration
from edgekit.plugins.mcu.optable import supported_ops_list


class McuBackend(edgekit.Backend):
    name = "mcu-c"
    description = ("C99 for microcontrollers (float32, and int8 from QDQ models): one kernel call per "
                   "layer, static arena")

    def supported_ops(self, target) -> set[str]:
        return set(supported_ops_list())

    def runner_for(self, target: edgekit.Target) -> str | None:
        """A profile of this very machine (no emulator, the host's architecture, e.g. ``x86-64
        --backend mcu-c``) runs the library natively under AddressSanitizer and UBSan."""
        import platform

        if not target.emulator.program and target.architecture == platform.machine():
            return "host"
        return None

    def check(self, model: onnx.ModelProto, context: edgekit.BuildContext) -> None:
        library = _kernel_library(context)
        if library is not None:
            library.check(model, context)
            return
        # Lowering is cheap and is the one place that knows every attribute limit.
        lower_model(model, context.target.name, _int8_io(context), _soft_float(context.target), context.options,
                    _int8_arithmetic(context))

    def build(self, model: onnx.ModelProto, context: edgekit.BuildContext,
              out_dir: Path) -> edgekit.Artifact:
        out_dir = Path(out_dir)
        library = _kernel_library(context)
        if library is not None:
            return self._build_with(library, model, context, out_dir)
        target = context.target
        static_arena = bool(context.option("static_arena", False))
        gen = generate(model, out_dir, name=str(context.option("name", "model") or "model"),
                       static_arena=static_arena, target_name=target.name,
                       int8_io=_int8_io(context), soft_float=_soft_float(target),
                       output_workspace=context.flag("output_workspace", True), moe_options=context.options,
                       int8_arithmetic=_int8_arithmetic(context), build_info=BuildInfo.from_context(context),
                       with_integration=False)
        sched, plan = gen.schedule, gen.plan
        io_bytes = sum(sched.tensors[n].nbytes for n in sched.inputs + sched.outputs)
        measured, budget_notes = _measure_within_budget(context, out_dir, gen.prefix, gen.sources, [],
                                                        plan.arena_bytes, io_bytes,
                                                        sum(c.array.nbytes for c in sched.consts.values()))
        # the integration files say what the C library must provide: known once the image is linked
        files = sorted(gen.files + write_integration(gen, out_dir, gen.info.with_math(measured)))

        def io(names):
            return [{"name": sched.io_names.get(n, n), "c_name": sched.tensors[n].c_name,
                     "shape": list(sched.tensors[n].shape), "dtype": sched.tensors[n].dtype,
                     "count": sched.tensors[n].count, "bytes": sched.tensors[n].nbytes,
                     **({"quantization": {"scale": sched.io_quant[n][0],
                                          "zero_point": sched.io_quant[n][1]}}
                        if n in sched.io_quant else {})}
                    for n in names]

        metadata = {
            "name": gen.prefix,
            "header": gen.header,
            "sources": gen.sources,
            "include_dirs": [".", "kernels"],
            "run_function": f"{gen.prefix}_run_io",
            "static_arena": static_arena,
            "arena_bytes": plan.arena_bytes,
            "arena_lower_bound_bytes": plan.lower_bound_bytes,
            "arena_ratio": round(plan.ratio, 4),
            "arena_tensor_lower_bound_bytes": plan.tensor_lower_bound_bytes,
            # tensors kept in float32 output buffers before the outputs are written
            "output_workspace_bytes": plan.borrowed_bytes,
            "inputs": io(sched.inputs),
            "outputs": io(sched.outputs),
            "layers": [{"index": layer.index, "node": layer.node, "op": layer.op,
                        "kernel": layer.function, "macs": layer.macs,
                        "dtype": sched.tensors[layer.outputs[0]].dtype, "summary": layer.summary,
                        "output_shape": list(sched.tensors[layer.outputs[0]].shape)}
                       for layer in sched.layers],
            "profile_macro": "EK_PROFILE",
            "code_bytes": measured["code_bytes"],
            "weights_bytes": measured["weights_bytes"],
            # of which the integer-only float <-> int8 tables of cores without an FPU
            "boundary_table_bytes": _boundary_table_bytes(sched),
            "memory_plan": MEMORY_PLAN_FILE,
            "stack_estimate_bytes": sizes.STACK_ESTIMATE_BYTES,
            "kernel_families": sorted(sched.families),
            # the C math functions one inference reaches (linked image), and those any object of the
            # library references (a link without --gc-sections): what needs a libm
            "math_functions": measured["math_functions"],
            "math_references": measured["math_references"],
            # QDQ models: the nodes that run as int8 kernels (the rest of the compute runs in float)
            "int8_nodes": list(sched.int8_nodes),
            # how they round: onnx or tflite (option int8_arithmetic, else the model's metadata)
            **({"int8_arithmetic": sched.int8_arithmetic} if sched.int8_nodes else {}),
            "budget_exceeded": budget_notes,
            # mixture-of-experts layers: each expert's section, region and bytes (see ops_moe)
            **({"moe": emit_moe.placement(gen.prefix, sched)} if sched.moe else {}),
        }
        return edgekit.Artifact(backend=self.name, files=files, metadata=metadata)


    def _build_with(self, library: edgekit.KernelLibrary, model: onnx.ModelProto,
                    context: edgekit.BuildContext, out_dir: Path) -> edgekit.Artifact:
        """A build whose kernels come from ``library``: its metadata, measured and budgeted here."""
        from edgekit.plugins.mcu import emit_integration

        lib = library.build(model, context, out_dir)
        prefix, sources, objects = lib["name"], list(lib["sources"]), list(lib.get("objects", []))
        io_bytes = sum(t["bytes"] for t in lib["inputs"] + lib["outputs"])
        measured, budget_notes = _measure_within_budget(context, out_dir, prefix, sources, objects,
                                                        int(lib["arena_bytes"]), io_bytes)
        files = list(lib.pop("files"))
        info = BuildInfo.from_context(context).with_layers(
            precision_of(layer["dtype"] for layer in lib["layers"]), bool(lib.get("static_arena", False)))
        integration = emit_integration.integration_files(
            prefix, sources, objects, info.with_math(measured),
            [emit_integration.IoSpec(t["dtype"], "quantization" in t) for t in lib["inputs"]],
            [emit_integration.IoSpec(t["dtype"], "quantization" in t) for t in lib["outputs"]])
        for rel, text in integration.items():
            path = out_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
            files.append(rel)
        metadata = {**lib, "profile_macro": "EK_PROFILE", "code_bytes": measured["code_bytes"],
                    "weights_bytes": measured["weights_bytes"], "stack_estimate_bytes": sizes.STACK_ESTIMATE_BYTES,
                    "kernel_library": library.name, "budget_exceeded": budget_notes,
                    "math_functions": measured["math_functions"],
                    "math_references": measured["math_references"]}
        return edgekit.Artifact(backend=self.name, files=sorted(files), metadata=metadata)


def _kernel_library(context: edgekit.BuildContext) -> edgekit.KernelLibrary | None:
    """None for edgekit's own kernels (the default), else the registered library ``--kernels`` names."""
    kernels = context.option("kernels")
    if kernels in (None, "", "edgekit"):
        return None
    libraries = {n: lib for n, lib in context.registry.kernel_libraries.items() if lib.backend == McuBackend.name}
    if kernels not in libraries:
        known = ", ".join(["edgekit", *sorted(libraries)])
        raise edgekit.UsageError(f"--kernels '{kernels}': back end 'mcu-c' has no such kernel library; "
                                 f"known: {known}")
    return libraries[kernels]


def _measure_within_budget(context: edgekit.BuildContext, out_dir: Path, prefix: str, sources: list[str],
                           objects: list[str], arena_bytes: int, io_bytes: int,
                           const_bytes: int = 0) -> tuple[dict, list[str]]:
    """Code and weight bytes measured with the target's toolchain, checked against its budgets
    (``--option ignore_budget=true`` records an overrun instead of failing). ``const_bytes``, the
    constant arrays' size, is a lower bound of the weights known before compiling."""
    target = context.target
    budget_notes: list[str] = []
    ignore_budget = bool(context.option("ignore_budget", False))

    def budget(check, *args):
        try:
            check(target, *args)
        except BuildError as exc:
            if not ignore_budget:
                raise
            budget_notes.append(str(exc))
            context.note(f"ignored (option ignore_budget): {exc}")

    budget(sizes.check_ram_budget, arena_bytes, io_bytes)  # known before compiling
    if not ignore_budget:
        sizes.check_weights_fit(target, const_bytes)
    measured = sizes.measure(out_dir, prefix, sources, target, objects)
    # The -Os figure: a build that does not fit at -Os cannot be made to fit by flags.
    budget(sizes.check_flash_budget, measured["code_bytes"]["Os"], measured["weights_bytes"])
    return measured, budget_notes


def _int8_io(context: edgekit.BuildContext) -> bool:
    """Option io: float (default: the library quantizes inputs and dequantizes outputs) or int8
    (the caller passes int8 data; the header gives each tensor's scale and zero point)."""
    value = str(context.option("io", "float") or "float").lower()
    if value not in ("float", "int8"):
        raise edgekit.UsageError(f"--option io={value}: expected io=float or io=int8")
    return value == "int8"


def _int8_arithmetic(context: edgekit.BuildContext) -> str | None:
    """Option int8_arithmetic: onnx (single rounding, closest to onnxruntime) or tflite (TFLite
    Micro's reference kernels bit for bit); unset: what the model's metadata says (the TFLite
    importer asks for tflite), else onnx. See qmath.ARITHMETICS."""
    from edgekit.plugins.mcu.qmath import ARITHMETICS

    value = context.option("int8_arithmetic")
    if value in (None, ""):
        return None
    value = str(value).lower()
    if value not in ARITHMETICS:
        raise edgekit.UsageError(f"--option int8_arithmetic={value}: expected int8_arithmetic="
                                 f"{' or int8_arithmetic='.join(ARITHMETICS)}")
    return value


def _boundary_table_bytes(sched) -> int:
    from edgekit.plugins.mcu.qops_layout import BOUNDARY_TABLE_FUNCTIONS

    return sum(sched.consts[a[1]].array.nbytes for layer in sched.layers
               if layer.function in BOUNDARY_TABLE_FUNCTIONS for a in layer.args if a[0] == "const")


def _soft_float(target) -> bool:
    """No FPU: the int8 boundary kernels avoid float arithmetic (it would run in software)."""
    return str(target.fpu or "none").lower() == "none"


@edgekit.hookimpl
def edgekit_register_backends():
    return [McuBackend()]


__all__ = ["McuBackend"]
