"""Flash figures of a generated library, measured with the target's own toolchain.

Technique: compile every source with the target's cflags (+ ``-ffunction-sections
-fdata-sections``) at -Os and at -O2, link them without start files with ``--gc-sections`` and
``<name>_run_io`` as the entry point, so the ELF holds exactly the code one inference reaches
(kernels, libm's expf...). ``size`` gives text; the weights are the sizes of the const arrays
defined in ``<name>_weights.c`` and its sub-libraries' ``<name>_*_weights.c`` (``nm -S``); code
bytes = text - weights. When the toolchain
cannot link a bare-metal image (e.g. a host compiler), the object files' text is summed instead.

The same builds say which libm functions the library needs, two ways. ``math_functions``: those
the linked image defines; after ``--gc-sections`` that is what one inference reaches, and what a
firmware link that collects garbage sections (Zephyr always does) asks of its C library; a kernel
file's unused function that calls ``expf`` does not count (without a linked image, every reference
counts). ``math_references``: every libm function the objects reference, what a link without
``--gc-sections`` needs.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from edgekit.errors import BuildError
from edgekit.plugins.mcu.build_info import LIBM_FUNCTIONS
from edgekit.target import Target

OPT_LEVELS = ("Os", "O2")
#: RAM a call needs besides the arena: kernels use a few hundred bytes of stack at most
#: (no recursion, no VLAs; the largest frame is the odometer arrays of the shape-generic kernels).
STACK_ESTIMATE_BYTES = 1024


def _tool(target: Target, attr: str, default: str) -> str:
    name = getattr(target.toolchain, attr, "") or default
    cc = target.toolchain.cc
    if attr != "cc" and cc.endswith("gcc") and name in ("size", "nm"):
        name = cc[: -len("gcc")] + name  # arm-none-eabi-gcc -> arm-none-eabi-size
    return name


def _check(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"'{cmd[0]}' failed compiling the generated library for the size "
                         f"measurement: {(proc.stderr or proc.stdout).strip().splitlines()[:3]}")
    return proc


def _text_bytes(size_tool: str, files: list[Path], cwd: Path) -> int:
    proc = _check([size_tool, *map(str, files)], cwd)
    total = 0
    for line in proc.stdout.splitlines()[1:]:
        parts = line.split()
        if parts and parts[0].isdigit():
            total += int(parts[0])
    return total


def _defined_symbol_bytes(nm_tool: str, obj: Path, cwd: Path) -> int:
    proc = _check([nm_tool, "-S", "--defined-only", str(obj)], cwd)
    total = 0
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "rRdDbB":
            total += int(parts[1], 16)
    return total


def _math_functions(nm_tool: str, files: list[Path], cwd: Path, linked: bool) -> set[str]:
    """libm functions a linked image defines, or (not linked) that the objects reference."""
    proc = _check([nm_tool, "--defined-only" if linked else "--undefined-only", *map(str, files)], cwd)
    return {line.split()[-1] for line in proc.stdout.splitlines() if line.strip()} & LIBM_FUNCTIONS


def measure(out_dir: Path, prefix: str, sources: list[str], target: Target, objects: list[str] = ()) -> dict:
    """{"code_bytes": {"Os": int, "O2": int}, "weights_bytes": int, "linked": bool,
    "math_functions": [...], "math_references": [...]} (libm functions, at either level).
    ``objects`` (prebuilt, e.g. TVM's kernels) are linked as they are at both levels."""
    cc = _tool(target, "cc", "cc")
    size_tool, nm_tool = _tool(target, "size", "size"), _tool(target, "nm", "nm")
    if shutil.which(cc) is None or shutil.which(size_tool) is None:
        raise BuildError(f"target '{target.name}': compiler '{cc}' or '{size_tool}' not found; "
                         f"install the target's toolchain to measure code size")
    result: dict = {"code_bytes": {}, "weights_bytes": 0, "linked": True}
    math: set[str] = set()
    references: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="edgekit-size-") as tmp:
        tmpdir = Path(tmp)
        base = [cc, *target.toolchain.cflags, "-std=c99", "-ffunction-sections", "-fdata-sections",
                f"-I{out_dir}", f"-I{out_dir / 'kernels'}"]
        # Weights are data: their object does not depend on the optimisation level.
        # the model's weights, and those of its sub-libraries (mixture-of-experts experts)
        weights_srcs = [f"{prefix}_weights.c", *(s for s in sources if s.startswith(f"{prefix}_") and
                                                 s.endswith("_weights.c") and s != f"{prefix}_weights.c")]
        weights_objs = [tmpdir / f"weights_{i}.o" for i in range(len(weights_srcs))]
        weights = 0
        for src, obj in zip(weights_srcs, weights_objs):
            _check([*base, "-Os", "-c", str(out_dir / src), "-o", str(obj)], tmpdir)
            weights += _defined_symbol_bytes(nm_tool, obj, tmpdir)
        for opt in OPT_LEVELS:
            objs = [*weights_objs, *(out_dir / o for o in objects)]
            for i, src in enumerate(sources):
                if src in weights_srcs:
                    continue
                obj = tmpdir / f"{opt}_{i}_{Path(src).stem}.o"
                _check([*base, f"-{opt}", "-c", str(out_dir / src), "-o", str(obj)], tmpdir)
                objs.append(obj)
            references |= _math_functions(nm_tool, objs, tmpdir, linked=False)
            elf = tmpdir / f"{opt}.elf"
            link = subprocess.run([cc, *target.toolchain.cflags, "-nostartfiles", "--specs=nano.specs",
                                   "-Wl,--gc-sections", f"-Wl,-e,{prefix}_run_io", "-o", str(elf),
                                   *map(str, objs), "-lm"], cwd=tmpdir, capture_output=True, text=True)
            if link.returncode == 0:
                text = _text_bytes(size_tool, [elf], tmpdir)
                math |= _math_functions(nm_tool, [elf], tmpdir, linked=True)
            else:
                result["linked"] = False
                text = _text_bytes(size_tool, objs, tmpdir)
                math |= _math_functions(nm_tool, objs, tmpdir, linked=False)
            result["code_bytes"][opt] = text - weights
            result["weights_bytes"] = weights
    result["math_functions"] = sorted(math)
    result["math_references"] = sorted(references | math)
    return result


def check_ram_budget(target: Target, arena_bytes: int, io_bytes: int) -> None:
    """BuildError when arena + inputs/outputs + stack exceed the target's RAM (0 = unlimited)."""
    ram = arena_bytes + io_bytes + STACK_ESTIMATE_BYTES
    if target.ram_bytes and ram > target.ram_bytes:
        raise BuildError(
            f"model does not fit target '{target.name}': RAM needs {ram} B (arena {arena_bytes} B + "
            f"inputs/outputs {io_bytes} B + stack ~{STACK_ESTIMATE_BYTES} B) > {target.ram_bytes} B;"
            f" quantize with --quantize int8, or choose a larger target")


def check_weights_fit(target: Target, weights_bytes: int) -> None:
    """BuildError when the constant arrays alone exceed the target's flash: checked before compiling,
    since compiling megabytes of weights to measure them takes minutes and gigabytes."""
    if target.flash_bytes and weights_bytes > target.flash_bytes:
        raise BuildError(
            f"model does not fit target '{target.name}': its weights alone are {weights_bytes} B > "
            f"{target.flash_bytes} B of flash; quantize with --quantize int8, or choose a larger target")


def check_flash_budget(target: Target, code_bytes: int, weights_bytes: int) -> None:
    """BuildError when code + weights exceed the target's flash (0 = unlimited)."""
    flash = code_bytes + weights_bytes
    if target.flash_bytes and flash > target.flash_bytes:
        raise BuildError(
            f"model does not fit target '{target.name}': flash needs {flash} B (weights "
            f"{weights_bytes} B + code {code_bytes} B) > {target.flash_bytes} B; quantize with "
            f"--quantize int8, or choose a larger target")
