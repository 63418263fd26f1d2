"""The ``serial`` runner: a board flashed with the UART harness firmware, driven over pyserial with
the framed protocol of :mod:`serial_protocol`.

With ``serial_url`` set (``/dev/ttyACM0``, ``socket://...``, any pyserial URL) it talks to that board;
without one it proves the same firmware and protocol on the emulated board: QEMU connects the MPS2
board's UART0 to a TCP socket on 127.0.0.1, and the counting plugin measures instructions too.
:func:`export_serial_firmware` writes the ELF and raw binary to flash onto a real board."""

from __future__ import annotations

import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import edgekit
from edgekit.plugins.harness import counting
from edgekit.plugins.harness.compile import run_tool, sibling_tool
from edgekit.plugins.harness.firmware import Firmware, build_firmware
from edgekit.plugins.harness.metadata import LibraryMeta, check_statuses, load_metadata, pack_inputs, unpack_outputs
from edgekit.plugins.harness.options import HarnessOptions
from edgekit.plugins.harness.qemu import BEGIN, END, require_board
from edgekit.plugins.harness.serial_protocol import SerialSession

BAUD_RATE = 115200
LOOPBACK = "127.0.0.1"
CMSDK_UART_MACHINES = ("mps2-an385", "mps2-an386", "mps2-an500", "mps2-an505", "mps2-an511")


def converse(session: SerialSession, meta: LibraryMeta, inputs: list[dict[str, np.ndarray]]
             ) -> list[tuple[dict[str, np.ndarray], dict[str, int]]]:
    """Hello, then one 'I' frame per input set; returns (outputs, trailer) per set."""
    info = session.hello()
    output_bytes = sum(t.bytes for t in meta.outputs)
    if (info.input_record_bytes, info.output_bytes) != (meta.input_record_bytes, output_bytes):
        raise edgekit.BuildError(
            f"{session.where}: the board's firmware takes {info.input_record_bytes} input bytes and gives "
            f"{info.output_bytes}; this library takes {meta.input_record_bytes} and gives {output_bytes}: "
            "flash the firmware built from this output directory")
    records = []
    for feed in inputs:
        reply = session.infer(pack_inputs(meta, [feed]))
        records += unpack_outputs(meta, reply, 1, session.where)
    session.quit()
    check_statuses(records, meta, session.where)
    return records


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def open_port(url: str, timeout: float, where: str, emulator: subprocess.Popen | None = None):
    """Open a pyserial URL; a socket URL is retried while the emulator starts its server."""
    import serial

    deadline = time.monotonic() + timeout
    while True:
        try:
            return serial.serial_for_url(url, baudrate=BAUD_RATE, timeout=0.2)
        except (serial.SerialException, OSError) as exc:
            if emulator is not None and emulator.poll() is not None:
                said = emulator.stderr.read().decode(errors="replace").strip().splitlines() if emulator.stderr else []
                raise edgekit.BuildError(f"{where}: QEMU exited ({emulator.returncode}) before its UART socket "
                                         f"opened: {said[0] if said else 'no message'}") from None
            if time.monotonic() > deadline or not url.startswith("socket://"):
                raise edgekit.BuildError(f"{where}: cannot open {url}: {exc}") from None
            time.sleep(0.05)  # QEMU is still starting its socket server


def run_on_emulated_uart(firmware: Firmware, target: edgekit.Target, meta: LibraryMeta,
                         inputs: list[dict[str, np.ndarray]], timeout: float
                         ) -> tuple[list[tuple[dict[str, np.ndarray], dict[str, int]]], counting.CountedRun]:
    """Run the UART firmware on the emulated board, its UART0 on a loopback TCP port."""
    emu = target.emulator
    if emu.machine not in CMSDK_UART_MACHINES:
        raise edgekit.UsageError(f"the serial harness drives a CMSDK UART; board '{emu.machine}' of target "
                                 f"'{target.name}' has none (emulated serial runs need an MPS2 board)")
    where = f"{meta.name} over the emulated UART of {emu.machine}"
    port = free_loopback_port()
    with tempfile.TemporaryDirectory(prefix="ek-serial-") as scratch:
        log = Path(scratch) / "counts.txt"
        names = [BEGIN, END]
        addresses = counting.symbol_addresses(firmware.elf, names, sibling_tool(target.toolchain.cc, "nm"))
        command = counting.qemu_system_command(
            emu.program, emu.machine, emu.cpu, firmware.elf,
            counting.plugin_argument(log, [addresses[n] for n in names]),
            serial=f"tcp:{LOOPBACK}:{port},server=on,wait=off")
        qemu = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=scratch)
        try:
            link = open_port(f"socket://{LOOPBACK}:{port}", 10.0, where, qemu)
            try:
                records = converse(SerialSession(link, timeout, where), meta, inputs)
            finally:
                link.close()
        finally:
            qemu.send_signal(signal.SIGTERM)  # a clean QEMU exit runs the plugin's exit callback
            try:
                out, err = qemu.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                qemu.kill()
                out, err = qemu.communicate()
        run = counting.parse_counts(log.read_text() if log.is_file() else "", names, qemu.returncode,
                                    out.decode(errors="replace"), err.decode(errors="replace"))
    return records, run


def export_serial_firmware(artifact_dir: Path, target: edgekit.Target, out_dir: Path,
                           metadata: dict[str, Any] | None = None, optimize: str = "-O2") -> Path:
    """Build the UART firmware for a real board into ``out_dir`` (``app.elf`` and ``app.bin``)."""
    meta = load_metadata(Path(artifact_dir), None, metadata)
    firmware = build_firmware(meta, Path(artifact_dir), target, Path(out_dir), transport="serial",
                              optimize=optimize)
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
                                          transport="serial", optimize=options.optimize,
                                          stack_bytes=options.stack_bytes)
                records, run = run_on_emulated_uart(firmware, context.target, meta, inputs, options.run_timeout)
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
