"""Model -> firmware-ready C: prepare, lower, plan, emit. Used by the back end and by the tests
and conformance runner (which need the files without the target-specific size checks)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import onnx

from edgekit.plugins.mcu import emit_c, emit_integration, plan_svg
from edgekit.plugins.mcu.cnames import model_prefix
from edgekit.plugins.mcu.graph import GraphView, prepare
from edgekit.plugins.mcu.planner import MemoryPlan, plan
from edgekit.plugins.mcu.schedule import Schedule, lower

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


def lower_model(model: onnx.ModelProto, target_name: str = "", int8_io: bool = False,
                soft_float: bool = False) -> Schedule:
    """Prepared, lowered schedule (raises BuildError for anything the back end cannot run)."""
    return lower(GraphView.of(prepare(model, "model")), target_name, int8_io, soft_float)


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


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def generate(model: onnx.ModelProto, out_dir: Path, name: str = "model", static_arena: bool = False,
             target_name: str = "", with_kernels: bool = True,
             with_integration: bool = True, int8_io: bool = False, soft_float: bool = False,
             output_workspace: bool = True) -> Generated:
    """``output_workspace``: tensors may use float32 output buffers before they are written."""
    out_dir = Path(out_dir)
    prefix = model_prefix(name)
    sched = lower_model(model, target_name, int8_io, soft_float)
    mem = plan(sched, borrow_outputs=output_workspace)
    names = emit_c.assign_names(prefix, sched)
    files: dict[str, str] = {
        f"{prefix}.h": emit_c.emit_header(names, sched, mem, static_arena),
        f"{prefix}.c": emit_c.emit_source(names, sched, mem, static_arena),
        f"{prefix}_weights.c": emit_c.emit_weights(names, sched),
    }
    model_sources = [f"{prefix}.c", f"{prefix}_weights.c"]
    kernels = [f"kernels/{k}" for k in kernel_files(sched.families)] if with_kernels else []
    kernel_sources = [k for k in kernels if k.endswith(".c")]
    sources = model_sources + kernel_sources
    if with_integration:
        files[MEMORY_PLAN_FILE] = plan_svg.render(mem, sched, prefix)
        files.update(emit_integration.integration_files(
            prefix, sources, input_types=[sched.tensors[n].ctype for n in sched.inputs],
            output_types=[sched.tensors[n].ctype for n in sched.outputs], static_arena=static_arena))
    for rel, text in files.items():
        _write(out_dir / rel, text)
    for rel in kernels:
        _write(out_dir / rel, (KERNEL_DIR / rel.split("/", 1)[1]).read_text(encoding="utf-8"))
    return Generated(prefix, sched, mem, sorted(list(files) + kernels), sources, model_sources,
                     kernel_sources, f"{prefix}.h")
