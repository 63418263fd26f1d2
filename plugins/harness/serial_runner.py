"""The ``serial`` runner: a board flashed with the UART harness firmware, driven over pyserial with
the framed protocol of :mod:`serial_protocol`.

With ``serial_url`` set (``/dev/ttyACM0``, ``socket://...``, any pyserial URL) it talks to that board;
without one it proves the same firmware and protocol on the emulated board (:mod:`uart_link`, as the
``qemu`` runner does), and the counting plugin measures instructions too.
:func:`export_serial_firmware` writes the ELF and raw binary to flash onto a real board."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import edgekit
from edgekit.plugins.harness.compile import run_tool
from edgekit.plugins.harness.firmware import build_firmware
from edgekit.plugins.harness.metadata import load_metadata
from edgekit.plugins.harness.options import HarnessOptions
from edgekit.plugins.harness.serial_protocol import SerialSession
from edgekit.plugins.harness.uart_link import BEGIN, END, converse, open_port, require_board, run_on_emulated_uart


def export_serial_firmware(artifact_dir: Path, target: edgekit.Target, out_dir: Path,
                           metadata: dict[str, Any] | None = None, optimize: str = "-O2") -> Path:
    """Build the UART firmware for a real board into ``out_dir`` (``app.elf`` and ``app.bin``)."""
    meta = load_metadata(Path(artifact_dir), None, metadata)
    firmware = build_firmware(meta, Path(artifact_dir), target, Path(out_dir), optimize=optimize)
    binary = firmware.elf.with_suffix(".bin")
    run_tool([target.toolchain.objcopy, "-O", "binary", str(firmware.elf), str(binary)], "objcopy")
    return binary


class SerialRunner(edgekit.Runner):
    name = "serial"
    description = "a board running the UART harness firmware (pyserial); emulated UART when no serial_url"

    def run(self, artifact_dir: Path, inputs: list[dict[str, np.ndarray]], context: edgekit.BuildContext,
            metadata: dict[str, Any] | None = None) -> list[edgekit.RunResult]:
        meta = load_metadata(Path(artifact_dir), context, metadata)
        options = HarnessOptions.from_context(context)
        options.refuse_save_firmware(self.name)
        if options.serial_url:
            where = f"{meta.name} on {options.serial_url}"
            link = open_port(options.serial_url, options.run_timeout, where)
            try:
                records = converse(SerialSession(link, options.run_timeout, where), meta, inputs)
            finally:
                link.close()
            spans = None
        else:
            require_board(context.target)
            with tempfile.TemporaryDirectory(prefix="ek-serial-build-") as scratch:
                firmware = build_firmware(meta, Path(artifact_dir), context.target, Path(scratch),
                                          optimize=options.optimize, stack_bytes=options.stack_bytes)
                records, run = run_on_emulated_uart(
                    firmware, context.target, meta, inputs, options.run_timeout,
                    where=f"{meta.name} over the emulated UART of {context.target.emulator.machine}")
            spans = run.between(BEGIN, END)
        results = []
        stack = max(trailer["stack_bytes"] for _, trailer in records)
        for index, (outputs, trailer) in enumerate(records):
            found: dict[str, Any] = {"stack_bytes": stack, "arena_bytes": meta.arena_bytes}
            if trailer["cycles"]:
                found["cycles"] = trailer["cycles"]  # DWT cycle counter of real silicon
            if spans is not None and index < len(spans):
                found["instructions"] = spans[index]
            results.append(edgekit.RunResult(outputs=outputs, measurements=found))
        return results
