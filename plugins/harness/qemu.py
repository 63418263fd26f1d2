"""The ``qemu`` runner: firmware on an emulated Cortex-M board, fed through semihosting files.

One image is built without and (for per-layer counts) one with the library's profile macro; each is
run once over all input records. ``instructions`` comes from the unprofiled image (marker calls
inside the library would add a few instructions per layer); ``instructions_per_layer`` from the
profiled one, as differences of consecutive ``ek_profile_mark`` hits."""

from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

import edgekit
from edgekit.plugins.harness import counting
from edgekit.plugins.harness.compile import sibling_tool
from edgekit.plugins.harness.firmware import Firmware, build_firmware
from edgekit.plugins.harness.metadata import (LibraryMeta, check_statuses, load_metadata, pack_inputs,
                                               unpack_outputs)
from edgekit.plugins.harness.options import HarnessOptions

INPUT_FILE = "ek_inputs.bin"     # the names ek_file_main.c opens, relative to QEMU's working directory
OUTPUT_FILE = "ek_outputs.bin"
BEGIN, END, MARK = "ek_harness_begin", "ek_harness_end", "ek_profile_mark"
EXIT_MEANINGS = {
    3: "the firmware could not open its input/output files through semihosting",
    4: "the input file ended inside a record",
}
STACK_OVERFLOW = 98


def require_board(target: edgekit.Target) -> None:
    if not (target.emulator.program and target.emulator.machine):
        raise edgekit.UsageError(f"target '{target.name}' is build-only: no QEMU board emulates it here; "
                                 "build without --run, or pick an emulated target (cortex-m0plus, cortex-m4, cortex-m7)")


def run_firmware(firmware: Firmware, target: edgekit.Target, inputs_blob: bytes, work_dir: Path,
                 marks: list[str], timeout: float, where: str) -> tuple[counting.CountedRun, bytes]:
    """Write the input records, run the image under QEMU with the counting plugin, read the outputs."""
    (work_dir / INPUT_FILE).write_bytes(inputs_blob)
    emu = target.emulator
    run = counting.run_counted(firmware.elf, machine=emu.machine, cpu=emu.cpu, marks=marks,
                               program=emu.program, timeout=timeout, cwd=work_dir,
                               nm=sibling_tool(target.toolchain.cc, "nm"))
    check_exit(run, where, firmware.sizes.get("stack_reserved_bytes"))
    output = work_dir / OUTPUT_FILE
    return run, output.read_bytes() if output.is_file() else b""


def check_exit(run: counting.CountedRun, where: str, stack_reserved: int | None = None) -> None:
    if run.exit_code == 0:
        return
    if run.exit_code == STACK_OVERFLOW:
        reserved = f"the {stack_reserved:,} B " if stack_reserved else "the "
        raise edgekit.BuildError(f"{where}: stack overflow: the model used more than {reserved}reserved stack; "
                                 "reserve more with --option stack_bytes=N")
    said = [line for line in (run.stdout + run.stderr).splitlines() if "ek-harness:" in line]
    message = said[0].split("ek-harness:", 1)[1].strip() if said else ""
    if run.exit_code == 99:
        raise edgekit.BuildError(f"{where}: the firmware crashed: {message or 'HardFault'}")
    meaning = EXIT_MEANINGS.get(run.exit_code, message or "the model or harness failed")
    raise edgekit.BuildError(f"{where}: exited with status {run.exit_code}: {meaning}")


def layer_counts(run: counting.CountedRun, n_layers: int, n_records: int) -> list[list[int]] | None:
    """Per record, instructions of each layer: differences of consecutive profile marks inside each
    begin/end span. None when the library did not mark once before and once after every layer."""
    per_record: list[list[int]] = []
    current: list[int] | None = None
    for marker, count in run.hits:
        if marker == BEGIN:
            current = []
        elif marker == MARK and current is not None:
            current.append(count)
        elif marker == END and current is not None:
            if len(current) != n_layers + 1:
                return None
            per_record.append([b - a for a, b in zip(current, current[1:])])
            current = None
    return per_record if len(per_record) == n_records else None


class QemuRunner(edgekit.Runner):
    name = "qemu"
    description = "firmware on an emulated Cortex-M board (QEMU), exact instruction counts"

    def run(self, artifact_dir: Path, inputs: list[dict[str, np.ndarray]], context: edgekit.BuildContext,
            metadata: dict[str, Any] | None = None) -> list[edgekit.RunResult]:
        artifact_dir = Path(artifact_dir)
        meta = load_metadata(artifact_dir, context, metadata)
        target = context.target
        require_board(target)
        options = HarnessOptions.from_context(context)
        blob = pack_inputs(meta, inputs)
        profile = options.profile_layers and bool(meta.layers)
        with tempfile.TemporaryDirectory(prefix="ek-qemu-") as scratch:
            work = Path(scratch)
            variants = [("run", False)] + ([("profile", True)] if profile else [])
            with ThreadPoolExecutor(max_workers=len(variants)) as pool:
                builds = list(pool.map(lambda v: build_firmware(
                    meta, artifact_dir, target, work / v[0], profile=v[1], optimize=options.optimize,
                    stack_bytes=options.stack_bytes), variants))
            where = f"{meta.name} on {target.emulator.machine}"
            jobs = [(builds[0], "run", [BEGIN, END], where)]
            if profile:
                jobs.append((builds[1], "profile", [BEGIN, END, MARK], where + " (profiled)"))
            # Both images run at once (one QEMU process each); the plain run's errors come first.
            with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
                futures = [pool.submit(run_firmware, fw, target, blob, work / sub, marks, options.run_timeout, at)
                           for fw, sub, marks, at in jobs]
                outcomes = [f.result() for f in futures]
            run, data = outcomes[0]
            records = unpack_outputs(meta, data, len(inputs), where)
            check_statuses(records, meta, where)
            spans = run.between(BEGIN, END)
            per_layer = profiled = missing = None
            if profile:
                prun = outcomes[1][0]
                per_layer = layer_counts(prun, len(meta.layers), len(inputs))
                profiled = prun.between(BEGIN, END)
                if per_layer is None:
                    missing = (f"the library did not call ek_profile_mark once before and once after each "
                               f"of its {len(meta.layers)} layers (with -D{meta.profile_macro})")
            if options.keep_firmware:
                keep = artifact_dir / "firmware"
                keep.mkdir(exist_ok=True)
                for name in ("app.elf", "app.map", "app.ld"):
                    shutil.copy2(builds[0].elf.parent / name, keep / name)
        stack = max(trailer["stack_bytes"] for _, trailer in records)
        results = [edgekit.RunResult(outputs=outputs, measurements=self._measurements(
            meta, target, options, builds[0], spans[i], stack,
            per_layer[i] if per_layer else None, profiled[i] if profiled else None))
            for i, (outputs, _) in enumerate(records)]
        if missing:
            for result in results:
                result.measurements["instructions_per_layer_missing"] = missing
        return results

    @staticmethod
    def _measurements(meta: LibraryMeta, target: edgekit.Target, options: HarnessOptions, firmware: Firmware,
                      instructions: int, stack_bytes: int, per_layer: list[int] | None,
                      profiled: int | None) -> dict[str, Any]:
        """Instructions are this input's; ``stack_bytes`` is the most any input used."""
        found = {
            "instructions": instructions,
            "machine": target.emulator.machine,
            "cpu": target.emulator.cpu,
            "optimize": options.optimize,
            **firmware.sizes,
            "stack_bytes": stack_bytes,
            "arena_bytes": meta.arena_bytes,
        }
        if per_layer is not None:
            found["instructions_per_layer"] = per_layer
            found["instructions_profiled"] = profiled
        return found
