"""Model -> firmware-ready C: prepare, lower, plan, emit. Used by the back end and by the tests
and conformance runner (which need the files without the target-specific size checks)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import onnx

from edgekit.plugins.mcu import emit_c, emit_integration, emit_moe, io_layout, kernel_symbols, plan_svg
from edgekit.plugins.mcu.build_info import BuildInfo
from edgekit.naming import library_prefix
from edgekit.plugins.mcu.graph import GraphView, prepare
from edgekit.plugins.mcu.planner import MemoryPlan, plan
from edgekit.plugins.mcu.schedule import Schedule, dims_str, lower

KERNEL_DIR = Path(__file__).parent / "kernels"
MEMORY_PLAN_FILE = "memory_plan.svg"


@dataclass
class Generated:
    prefix: str
    schedule: Schedule
    plan: MemoryPlan
    files: list[str]          # every file written, relative to the output directory
    sources: list[str]        # .c files of the library (example_main.c excluded)
    model_sources: list[str]  # the model's own .c files (no kernels)
    kernel_sources: list[str]
    header: str
    info: BuildInfo | None = None  # what the header records (and the integration files say)


def lower_model(model: onnx.ModelProto, target_name: str = "", int8_io: bool | str = False,
                soft_float: bool = False, moe_options: dict | None = None,
                int8_arithmetic: str | None = None) -> Schedule:
    """Prepared, lowered schedule (raises BuildError for anything the back end cannot run)."""
    return lower(GraphView.of(prepare(model, "model")), target_name, int8_io, soft_float, moe_options,
                 int8_arithmetic)


_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"/]+)"', re.MULTILINE)


def kernel_files(families: set[str]) -> list[str]:
    """Kernel files (relative to kernels/) the given families need, with the headers they include
    (ek_common.h always)."""
    names = ["ek_common.h"]
    for fam in sorted(families):
        for ext in (".h", ".c"):
            if (KERNEL_DIR / f"{fam}{ext}").exists():
                names.append(f"{fam}{ext}")
    pending = list(names)
    while pending:
        for included in _INCLUDE.findall((KERNEL_DIR / pending.pop()).read_text(encoding="utf-8")):
            if included not in names and (KERNEL_DIR / included).exists():
                names.append(included)
                pending.append(included)
    return names


def kernel_texts(prefix: str, names: list[str]) -> dict[str, str]:
    """The kernel files a library ships (``names``, from :func:`kernel_files`), by name: the sources
    as they are, and ``ek_names.h`` renaming their external symbols under ``prefix``."""
    texts = {name: (KERNEL_DIR / name).read_text(encoding="utf-8") for name in names}
    if kernel_symbols.NAMES_HEADER in texts:
        symbols = kernel_symbols.external_symbols(texts.values())
        texts[kernel_symbols.NAMES_HEADER] = kernel_symbols.names_header(prefix, symbols)
    return texts


def _expert_libraries(prefix: str, sched: Schedule, moe_options: dict) -> dict[str, str]:
    """The files of every MoE layer's expert sub-libraries, and the linker fragment placing them."""
    if not sched.moe:
        return {}
    files = {}
    for moe in sched.moe:
        for part in moe.experts:
            p = emit_moe.expert_prefix(prefix, moe, part)
            names = emit_c.assign_names(p, part.schedule, weights_pointer="W")
            what = (f"MoE layer '{moe.layer.name}', expert {part.index} of {moe.layer.count}: one token's row "
                    f"{dims_str(part.schedule.tensors[part.schedule.inputs[0]].shape)} -> "
                    f"{dims_str(part.schedule.tensors[part.schedule.outputs[0]].shape)}")
            files[f"{p}.h"] = emit_moe.expert_header(names, part.schedule, part.plan.arena_bytes, what)
            files[f"{p}.c"] = emit_c.emit_source(names, part.schedule, part.plan, False,
                                                 weights_type=f"{p}_weights_t")
            files[f"{p}_weights.c"] = emit_moe.expert_weights(names, part.schedule)
    region = sched.moe[0].options.expert_region
    files[f"{prefix}_experts.ld"] = emit_moe.linker_fragment(prefix, sched, region)
    return files


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def generate(model: onnx.ModelProto, out_dir: Path, name: str = "model", static_arena: bool = False,
             target_name: str = "", with_kernels: bool = True,
             with_integration: bool = True, int8_io: bool = False, soft_float: bool = False,
             output_workspace: bool = True, moe_options: dict | None = None,
             int8_arithmetic: str | None = None, build_info: BuildInfo | None = None) -> Generated:
    """``output_workspace``: tensors may use float32 output buffers before they are written.
    ``moe_options``: how mixture-of-experts layers run (see :mod:`.ops_moe`).
    ``int8_arithmetic``: onnx or tflite (None: the model's metadata, see :mod:`.qmath`).
    ``build_info``: what the build knows of itself (version, model sha256, front end, target...);
    the precision and arena are filled in here. ``with_integration=False`` leaves the integration
    files to :func:`write_integration` (the back end writes them once it measured libm's use)."""
    out_dir = Path(out_dir)
    prefix = library_prefix(name)
    sched = lower_model(model, target_name, int8_io, soft_float, moe_options, int8_arithmetic)
    mem = plan(sched, borrow_outputs=output_workspace)
    names = emit_c.assign_names(prefix, sched)
    info = (build_info or BuildInfo()).with_schedule(sched, static_arena)
    files: dict[str, str] = {
        f"{prefix}.h": emit_c.emit_header(names, sched, mem, static_arena, info, io_layout.io_layouts(model)),
        f"{prefix}.c": emit_c.emit_source(names, sched, mem, static_arena),
        f"{prefix}_weights.c": emit_c.emit_weights(names, sched),
    }
    model_sources = [f"{prefix}.c", f"{prefix}_weights.c"]
    expert_files = _expert_libraries(prefix, sched, moe_options or {})
    files.update(expert_files)
    model_sources += sorted(f for f in expert_files if f.endswith(".c"))
    kernels = [f"kernels/{k}" for k in kernel_files(sched.families)] if with_kernels else []
    kernel_sources = [k for k in kernels if k.endswith(".c")]
    sources = model_sources + kernel_sources
    for rel, text in files.items():
        _write(out_dir / rel, text)
    for rel, text in kernel_texts(prefix, [k.split("/", 1)[1] for k in kernels]).items():
        _write(out_dir / "kernels" / rel, text)
    gen = Generated(prefix, sched, mem, sorted(list(files) + kernels), sources, model_sources,
                    kernel_sources, f"{prefix}.h", info)
    if with_integration:
        gen.files = sorted(gen.files + write_integration(gen, out_dir, info))
    return gen


def write_integration(gen: Generated, out_dir: Path, info: BuildInfo) -> list[str]:
    """The memory-plan picture and the integration files of ``gen`` (see :mod:`.emit_integration`),
    written into ``out_dir``; returns their paths."""
    sched = gen.schedule
    files = {MEMORY_PLAN_FILE: plan_svg.render(gen.plan, sched, gen.prefix)}
    files.update(emit_integration.integration_files(
        gen.prefix, gen.sources, info=info,
        inputs=[emit_integration.IoSpec(sched.tensors[n].dtype, n in sched.io_quant) for n in sched.inputs],
        outputs=[emit_integration.IoSpec(sched.tensors[n].dtype, n in sched.io_quant) for n in sched.outputs]))
    for rel, text in files.items():
        _write(Path(out_dir) / rel, text)
    return sorted(files)
