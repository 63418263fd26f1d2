"""The ``qemu`` runner: the UART harness firmware on an emulated Cortex-M board.

Outputs travel as frames over the board's UART (QEMU's stdin/stdout, see :mod:`uart_link`): the
library is generated, untrusted code, and the UART gives it no way to the host's files or commands,
which semihosting would. Inputs: on a profile with an ``[emulator]`` I/O region (``io_base``,
``io_bytes``) the image is built RAM-fed and QEMU's loader puts all input records into that region
before the start (several QEMU runs when they do not fit); otherwise they go over the UART, the
``serial`` runner's conversation. One image is built without and (for per-layer counts) one with the
library's profile macro. ``instructions`` comes from the unprofiled image (marker calls inside the
library would add a few instructions per layer); ``instructions_per_layer`` from the profiled one, as
differences of consecutive ``ek_profile_mark`` hits."""

from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

import edgekit
from edgekit.plugins.harness import counting, standalone
from edgekit.plugins.harness.firmware import Firmware, build_firmware, io_region
from edgekit.plugins.harness.metadata import LibraryMeta, load_metadata
from edgekit.plugins.harness.options import HarnessOptions
from edgekit.plugins.harness.uart_link import BEGIN, END, MARK, require_board, run_emulated


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
        save_to = standalone.destination(options.save_firmware) if options.save_firmware else None
        profile = options.profile_layers and bool(meta.layers)
        with tempfile.TemporaryDirectory(prefix="ek-qemu-") as scratch:
            work = Path(scratch)
            ram_inputs = io_region(target) is not None
            variants = [("run", False)] + ([("profile", True)] if profile else [])
            with ThreadPoolExecutor(max_workers=len(variants)) as pool:
                builds = list(pool.map(lambda v: build_firmware(
                    meta, artifact_dir, target, work / v[0], profile=v[1], optimize=options.optimize,
                    stack_bytes=options.stack_bytes, ram_inputs=ram_inputs), variants))
            where = f"{meta.name} on {target.emulator.machine}"
            jobs = [(builds[0], [BEGIN, END], where)]
            if profile:
                jobs.append((builds[1], [BEGIN, END, MARK], where + " (profiled)"))
            # Both images run at once (one QEMU process each); the plain run's errors come first.
            with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
                futures = [pool.submit(run_emulated, fw, target, meta, inputs, options.run_timeout, marks, at)
                           for fw, marks, at in jobs]
                outcomes = [f.result() for f in futures]
            records, run = outcomes[0]
            spans = run.between(BEGIN, END)
            if len(spans) != len(inputs):
                raise edgekit.BuildError(f"{where}: the counting plugin saw {len(spans)} inferences for "
                                         f"{len(inputs)} inputs (QEMU exit {run.exit_code})")
            per_layer = profiled = missing = None
            if profile:
                prun = outcomes[1][1]
                per_layer = layer_counts(prun, len(meta.layers), len(inputs))
                profiled = prun.between(BEGIN, END)
                if per_layer is None:
                    missing = (f"the library did not call ek_profile_mark once before and once after each "
                               f"of its {len(meta.layers)} layers (with -D{meta.profile_macro})")
            image = None
            if save_to or options.keep_firmware:
                image = self._standalone(meta, artifact_dir, target, options, work / "standalone", inputs,
                                         [outputs for outputs, _ in records])
            if options.keep_firmware:
                keep = artifact_dir / "firmware"
                keep.mkdir(exist_ok=True)
                for name in ("app.elf", "app.map", "app.ld"):
                    shutil.copy2(builds[0].elf.parent / name, keep / name)
                shutil.copy2(image.elf, keep / standalone.KEPT_NAME)
            if save_to:
                standalone.save(image.elf, save_to, f"save_firmware {options.save_firmware}")
        stack = max(trailer["stack_bytes"] for _, trailer in records)
        results = [edgekit.RunResult(outputs=outputs, measurements=self._measurements(
            meta, target, options, builds[0], spans[i], stack,
            per_layer[i] if per_layer else None, profiled[i] if profiled else None))
            for i, (outputs, _) in enumerate(records)]
        for result in results:
            if missing:
                result.measurements["instructions_per_layer_missing"] = missing
            if save_to:
                result.measurements["standalone_firmware"] = str(save_to)
                result.measurements["standalone_firmware_command"] = standalone.command_text(target, save_to)
        return results

    @staticmethod
    def _standalone(meta: LibraryMeta, artifact_dir: Path, target: edgekit.Target, options: HarnessOptions,
                    work: Path, inputs: list[dict[str, np.ndarray]], outputs: list[dict[str, np.ndarray]]) -> Firmware:
        """The standalone image of this run's inputs, run once as a user would: it must print exactly
        the outputs the harness image sent."""
        image = standalone.build_standalone(meta, artifact_dir, target, work, inputs, optimize=options.optimize,
                                            stack_bytes=options.stack_bytes)
        standalone.check_image(image, target, meta, outputs, options.run_timeout,
                               f"{meta.name} standalone image on {target.emulator.machine}")
        return image

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
