"""The host side of the UART harness firmware: opening a link, the conversation, and a whole run on
an emulated board whose UART0 is QEMU's stdin/stdout.

The ``qemu`` and ``serial`` runners both run their firmware here: the board's UART is the only way
out of the emulator (no semihosting: the firmware holds generated, untrusted code; see
:func:`~edgekit.plugins.harness.counting.qemu_system_command`). Inputs go in over the same UART
(:func:`run_on_emulated_uart`), or, for a RAM-fed image on a profile with an I/O region, as a blob
QEMU's generic loader puts into the board's memory before the start (:func:`run_emulated`): then the
host sends nothing at all, and only the fast direction of QEMU's UART model is used."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import tempfile
from pathlib import Path

import numpy as np

import edgekit
from edgekit.plugins.harness import counting
from edgekit.plugins.harness.compile import sibling_tool
from edgekit.plugins.harness.firmware import UART_DRIVERS, Firmware
from edgekit.plugins.harness.metadata import LibraryMeta, check_statuses, pack_inputs, unpack_outputs
from edgekit.plugins.harness.serial_protocol import IO_HEADER_BYTES, ReplyTimeout, SerialSession, input_blob

BEGIN, END, MARK = "ek_harness_begin", "ek_harness_end", "ek_profile_mark"
BAUD_RATE = 115200
INPUT_BLOB = "inputs.bin"
Records = list[tuple[dict[str, np.ndarray], dict[str, int]]]   # (outputs by name, trailer) per input set
EXIT_GRACE_S = 10.0   # after 'Q' the firmware exits by itself; QEMU gets this long to finish


def require_board(target: edgekit.Target) -> None:
    if not (target.emulator.program and target.emulator.machine):
        raise edgekit.UsageError(f"target '{target.name}' is build-only: no QEMU board emulates it here; "
                                 "build without --run, or pick an emulated target (cortex-m0plus, cortex-m4, cortex-m7)")
    if target.emulator.machine not in UART_DRIVERS:
        raise edgekit.UsageError(f"the harness has no UART driver for board '{target.emulator.machine}' of target "
                                 f"'{target.name}'; emulated runs support {', '.join(sorted(UART_DRIVERS))}")


def converse(session: SerialSession, meta: LibraryMeta, inputs: list[dict[str, np.ndarray]]) -> Records:
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


def open_port(url: str, timeout: float, where: str):
    """Open a real board's pyserial URL."""
    import serial

    try:
        return serial.serial_for_url(url, baudrate=BAUD_RATE, timeout=min(timeout, 0.2))
    except (serial.SerialException, OSError) as exc:
        raise edgekit.BuildError(f"{where}: cannot open {url}: {exc}") from None


class PipePort:
    """QEMU's ``-serial stdio`` as the port a :class:`SerialSession` reads: no TCP port that another
    local user could connect to, nothing to wait for. ``read`` returns b"" after 0.2 s of silence."""

    def __init__(self, emulator: subprocess.Popen):
        self.emulator = emulator
        self.fd = emulator.stdout.fileno()
        os.set_blocking(self.fd, False)

    def read(self, size: int) -> bytes:
        if not select.select([self.fd], [], [], 0.2)[0]:
            return b""
        data = os.read(self.fd, size)
        if not data:
            raise ConnectionError("the emulator closed its UART")
        return data

    def write(self, data: bytes) -> None:
        self.emulator.stdin.write(data)
        self.emulator.stdin.flush()


def run_emulated(firmware: Firmware, target: edgekit.Target, meta: LibraryMeta, inputs: list[dict[str, np.ndarray]],
                 timeout: float, marks: list[str] = (BEGIN, END), where: str | None = None
                 ) -> tuple[Records, counting.CountedRun]:
    """Run ``firmware`` over all ``inputs`` on the emulated board. A RAM-fed image
    (``firmware.io_region``) gets them loaded into its I/O region, as many QEMU runs as the region
    needs (the runs' marker hits in order); any other the UART conversation of
    :func:`run_on_emulated_uart`. ``timeout`` bounds each reply."""
    if firmware.io_region is None:
        return run_on_emulated_uart(firmware, target, meta, inputs, timeout, marks, where)
    where = where or f"{meta.name} on {target.emulator.machine}"
    base, size = firmware.io_region
    record_bytes = meta.input_record_bytes
    per_run = (size - IO_HEADER_BYTES) // record_bytes
    if per_run < 1:
        raise edgekit.UsageError(f"{where}: an input record of {record_bytes} bytes does not fit the target's "
                                 f"[emulator] io_bytes ({size}, {IO_HEADER_BYTES} of them header); raise io_bytes")
    records: Records = []
    runs = []
    for start in range(0, max(len(inputs), 1), per_run):
        batch = inputs[start:start + per_run]
        blob = input_blob(pack_inputs(meta, batch), len(batch), record_bytes)
        got, run = _emulate(firmware, target, marks, timeout, where,
                            lambda session, n=len(batch): receive(session, meta, n), load=(blob, base))
        records += got
        runs.append(run)
    check_statuses(records, meta, where)
    return records, counting.combined(runs)


def receive(session: SerialSession, meta: LibraryMeta, count: int) -> Records:
    """What a RAM-fed board sends: one 'O' frame per loaded input record, then 'Q'."""
    records = []
    for _ in range(count):
        records += unpack_outputs(meta, session.expect(b"O"), 1, session.where)
    session.expect(b"Q")
    return records


def run_on_emulated_uart(firmware: Firmware, target: edgekit.Target, meta: LibraryMeta,
                         inputs: list[dict[str, np.ndarray]], timeout: float, marks: list[str] = (BEGIN, END),
                         where: str | None = None) -> tuple[Records, counting.CountedRun]:
    """Run the UART firmware on the emulated board, its UART0 on QEMU's stdin/stdout, with the
    counting plugin watching ``marks``; ``timeout`` bounds each reply."""
    where = where or f"{meta.name} on {target.emulator.machine}"

    def talk(session: SerialSession) -> Records:
        session.wait_ready()
        return converse(session, meta, inputs)

    return _emulate(firmware, target, marks, timeout, where, talk)


def _emulate(firmware: Firmware, target: edgekit.Target, marks: list[str], timeout: float, where: str,
             talk, load: tuple[bytes, int] | None = None) -> tuple[Records, counting.CountedRun]:
    """One QEMU run of ``firmware`` with the counting plugin, ``talk(session)`` reading (and, without
    ``load``, writing) the board's UART; ``load`` is (bytes, guest address) for QEMU's loader, and then
    QEMU's stdin is closed from the start."""
    require_board(target)
    emu = target.emulator
    names = list(marks)
    with tempfile.TemporaryDirectory(prefix="ek-uart-") as scratch:
        log = Path(scratch) / "counts.txt"
        loads = ()
        if load is not None:
            blob = Path(scratch) / INPUT_BLOB
            blob.write_bytes(load[0])
            loads = ((blob, load[1]),)
        addresses = counting.symbol_addresses(firmware.elf, names, sibling_tool(target.toolchain.cc, "nm"))
        command = counting.qemu_system_command(
            emu.program, emu.machine, emu.cpu, firmware.elf,
            counting.plugin_argument(log, [addresses[n] for n in names]), serial="stdio", loads=loads)
        qemu = subprocess.Popen(command, stdin=subprocess.DEVNULL if load is not None else subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=scratch)
        session = SerialSession(PipePort(qemu), timeout, where, firmware.sizes.get("stack_reserved_bytes"))
        try:
            records = talk(session)
            err = _wait_for_exit(qemu)
        except ReplyTimeout:
            raise counting.timeout_error(where, timeout) from None
        except OSError as exc:  # QEMU went away mid-conversation
            raise edgekit.BuildError(f"{where}: QEMU stopped ({exc}): {_first_line(_stop(qemu))}") from None
        finally:
            _stop(qemu)
        run = counting.parse_counts(log.read_text() if log.is_file() else "", names, qemu.returncode,
                                    session.console, counting.qemu_messages(err.decode(errors="replace")))
    return records, run


def _first_line(emulator: subprocess.Popen) -> str:
    said = counting.qemu_messages(emulator.stderr.read().decode(errors="replace")).splitlines() if emulator.stderr else []
    return said[0] if said else "no message"


def _wait_for_exit(qemu: subprocess.Popen) -> bytes:
    """After 'Q' the firmware exits through a system reset (QEMU runs with -no-reboot); its stderr."""
    if qemu.stdin:
        qemu.stdin.close()
    try:
        qemu.wait(timeout=EXIT_GRACE_S)
    except subprocess.TimeoutExpired:
        _stop(qemu)
    return qemu.stderr.read()


def _stop(qemu: subprocess.Popen) -> subprocess.Popen:
    """SIGTERM (a clean QEMU exit still runs the plugin's exit callback), then SIGKILL."""
    if qemu.poll() is None:
        qemu.send_signal(signal.SIGTERM)
        try:
            qemu.wait(timeout=EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            qemu.kill()
            qemu.wait()
    return qemu
