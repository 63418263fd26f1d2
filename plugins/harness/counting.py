"""Exact executed-instruction counts under QEMU with edgekit's TCG plugin (``qemu_plugin/insn_count.c``).

The plugin is compiled with the host C compiler on first use into a cache directory
(``$EDGEKIT_CACHE_DIR`` or ``~/.cache/edgekit``), named by a hash of its source, and published with an
atomic rename so concurrent first uses are safe. :func:`run_counted` runs an ELF with the plugin and
marker addresses (symbol names or addresses) and returns the total and every marker hit, each as the
number of instructions executed before the marker's first instruction. These are instructions, not
cycles: QEMU models no timing.

Example (a kernel benchmark)::

    from edgekit.plugins.harness import counting
    run = counting.run_counted("bench.elf", machine="mps2-an386", cpu="cortex-m4",
                               marks=["bench_begin", "bench_end"])
    per_call = run.between("bench_begin", "bench_end")   # one count per begin/end pair
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import edgekit
from edgekit.plugins.harness.cache import cache_dir, publish
from edgekit.plugins.harness.compile import require_tool, run_tool
from edgekit.plugins.harness.serial_protocol import program_end

PLUGIN_SOURCE = Path(__file__).parent / "qemu_plugin" / "insn_count.c"
HOST_CC = "gcc"
DEFAULT_TIMEOUT = 120.0
UART_FILE = "uart.bin"
# QEMU's seccomp filter: even a QEMU bug the guest could reach cannot start a process or gain rights.
SANDBOX = ("-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny")


def plugin_path() -> Path:
    """The compiled counting plugin, built on first use (cached by source hash, atomic publish)."""
    source = PLUGIN_SOURCE.read_bytes()
    flags = ["-O2", "-shared", "-fPIC", "-std=c11", "-Wall", "-Wextra", "-Werror"]
    key = hashlib.sha256(source + " ".join(flags).encode()).hexdigest()[:16]
    target = cache_dir() / "qemu-plugins" / f"insn_count-{key}.so"
    if target.is_file():
        return target
    cc = require_tool(HOST_CC, "build the QEMU instruction-counting plugin")
    with tempfile.TemporaryDirectory(prefix="ek-plugin-") as scratch:
        built = Path(scratch) / "insn_count.so"
        run_tool([cc, *flags, str(PLUGIN_SOURCE), "-o", str(built)], "building the QEMU counting plugin")
        publish(built, target)  # atomic: a concurrent builder publishes an identical file
    return target


def symbol_addresses(elf: Path, names: list[str], nm: str = "arm-none-eabi-nm") -> dict[str, int]:
    """Addresses of the given symbols in ``elf`` (the Thumb bit cleared); a missing one is an error."""
    require_tool(nm, "read marker addresses")
    found: dict[str, int] = {}
    for line in run_tool([nm, str(elf)], f"reading symbols of {elf}").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in names:
            found[parts[2]] = int(parts[0], 16) & ~1
    missing = [n for n in names if n not in found]
    if missing:
        raise edgekit.BuildError(f"{elf}: marker symbol(s) {', '.join(missing)} not found")
    return found


@dataclass
class CountedRun:
    """One QEMU run with the counting plugin."""

    exit_code: int
    total: int | None                   # None when QEMU did not exit normally
    hits: list[tuple[str, int]] = field(default_factory=list)  # (marker name, instructions before it)
    stdout: str = ""
    stderr: str = ""

    def counts(self, name: str) -> list[int]:
        return [count for marker, count in self.hits if marker == name]

    def between(self, begin: str, end: str) -> list[int]:
        """Instructions from each ``begin`` hit to the following ``end`` hit."""
        spans, opened = [], None
        for marker, count in self.hits:
            if marker == begin:
                opened = count
            elif marker == end and opened is not None:
                spans.append(count - opened)
                opened = None
        return spans


def combined(runs: list[CountedRun]) -> CountedRun:
    """Several runs of one image (input batches) as one: their marker hits in order, the last exit code."""
    totals = [run.total for run in runs]
    return CountedRun(exit_code=runs[-1].exit_code, total=None if None in totals else sum(totals),
                      hits=[hit for run in runs for hit in run.hits], stdout="".join(r.stdout for r in runs),
                      stderr="".join(r.stderr for r in runs))


def parse_counts(text: str, names: list[str], exit_code: int, stdout: str = "", stderr: str = "") -> CountedRun:
    """Reads the plugin's log: ``mark <index> <count>`` lines and a final ``total <count>``."""
    run = CountedRun(exit_code=exit_code, total=None, stdout=stdout, stderr=stderr)
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] == ["mark"] and len(parts) == 3:
            run.hits.append((names[int(parts[1])], int(parts[2])))
        elif parts[:1] == ["total"] and len(parts) == 2:
            run.total = int(parts[1])
    return run


class QemuTimeout(edgekit.BuildError):
    """QEMU did not finish in time: the program hangs or is far slower than expected."""


def qemu_system_command(program: str, machine: str, cpu: str, elf: Path, plugin_arg: str | None,
                        serial: str, loads: tuple[tuple[Path, int], ...] = ()) -> list[str]:
    """The one QEMU system-mode command line edgekit runs firmware with. The firmware holds generated,
    untrusted code, so the board gets no semihosting (host files, SYS_SYSTEM), no network backend
    (QEMU's default user network would reach the host's ports), no monitor, and QEMU itself may not
    start processes: the UART (``serial``, a chardev such as ``file:PATH`` or ``tcp:...``) is its
    only way out. ``-no-reboot`` turns the firmware's system-reset request into QEMU's exit. ``loads``
    are (host file, guest address) pairs QEMU's generic loader copies into guest memory before the
    start: data the host chose, read by QEMU, not by the guest.
    (``-nodefaults`` would drop the network too, but with it QEMU 7.2 sometimes stops delivering
    UART input: measured, 5 hangs in 10 conversations.)"""
    command = [program, "-M", machine]
    if cpu:
        command += ["-cpu", cpu]
    command += ["-nographic", "-monitor", "none", "-nic", "none", "-serial", serial, "-no-reboot",
                *SANDBOX, "-kernel", str(elf)]
    for path, address in loads:
        command += ["-device", f"loader,file={option_path(path)},addr={address:#x},force-raw=on"]
    if plugin_arg:
        command += ["-plugin", plugin_arg]
    return command


def option_path(path: Path) -> str:
    text = str(path)
    if "," in text:
        raise edgekit.UsageError(f"{path}: QEMU option values cannot contain ','; use another directory")
    return text


def plugin_argument(log: Path, addresses: list[int]) -> str:
    arg = f"{plugin_path()},out={option_path(log)}"
    if addresses:
        arg += ",marks=" + ":".join(f"{a:#x}" for a in addresses)
    return arg


def run_counted(elf: str | Path, *, machine: str, cpu: str = "", marks: list[str] = (),
                program: str = "qemu-system-arm", timeout: float = DEFAULT_TIMEOUT,
                cwd: Path | None = None, nm: str = "arm-none-eabi-nm") -> CountedRun:
    """Run ``elf`` (a :func:`~edgekit.plugins.harness.firmware.build_program` image) on an emulated
    board (system mode) with the counting plugin watching ``marks``. What the firmware writes on its
    UART is recorded and read afterwards: its exit status becomes ``exit_code`` (a fault's is 99, its
    text in ``stderr``), what it printed is ``stdout``."""
    elf = Path(elf).resolve()
    where = f"{elf.name} on {machine}"

    def command(plugin: str, scratch: Path) -> list[str]:
        return qemu_system_command(program, machine, cpu, elf, plugin, f"file:{option_path(scratch / UART_FILE)}")

    return _run_with_plugin(elf, list(marks), nm, timeout, cwd or elf.parent, where, command, program,
                            uart=True)


def run_counted_user(binary: str | Path, *, args: list[str] = (), marks: list[str] = (),
                     program: str = "qemu-aarch64", cpu: str = "", sysroot: str | None = "/usr/aarch64-linux-gnu",
                     timeout: float = DEFAULT_TIMEOUT, cwd: Path | None = None,
                     nm: str = "aarch64-linux-gnu-nm") -> CountedRun:
    """Run a Linux program under QEMU user mode (e.g. an aarch64 kernel benchmark) with the plugin.
    Marker addresses come from the symbol table, so the program must not be position-independent
    (link with ``-no-pie``, ideally ``-static``)."""
    binary = Path(binary).resolve()
    if marks and _is_pie(binary):
        raise edgekit.UsageError(f"{binary}: a position-independent executable loads at an address the "
                                 "marker symbols do not show; link it with -no-pie (or -static)")

    def command(plugin: str, _scratch: Path) -> list[str]:
        line = [program]
        if cpu:
            line += ["-cpu", cpu]
        if sysroot:
            line += ["-L", sysroot]
        return line + ["-plugin", plugin, str(binary), *args]

    return _run_with_plugin(binary, list(marks), nm, timeout, cwd or binary.parent, binary.name, command, program)


def _is_pie(binary: Path) -> bool:
    header = binary.read_bytes()[:18]
    little = header[5:6] == b"\x01"
    e_type = int.from_bytes(header[16:18], "little" if little else "big")
    return e_type == 3  # ET_DYN


def qemu_messages(stderr: str) -> str:
    """QEMU's stderr without the warning every -nic none run prints (the board's NIC has no peer)."""
    return "".join(line for line in stderr.splitlines(keepends=True) if "has no peer" not in line)


def timeout_error(where: str, timeout: float) -> QemuTimeout:
    return QemuTimeout(f"{where} did not finish within {timeout:g} s: the program hangs, or needs a longer "
                       "run_timeout")


def _run_with_plugin(binary: Path, marks: list[str], nm: str, timeout: float, cwd: Path, where: str,
                     make_command, program: str, uart: bool = False) -> CountedRun:
    require_tool(program, f"run {binary.name}")
    addresses = symbol_addresses(binary, marks, nm) if marks else {}
    ordered = list(addresses.items())
    with tempfile.TemporaryDirectory(prefix="ek-count-") as scratch:
        log = Path(scratch) / "counts.txt"
        command = make_command(plugin_argument(log, [a for _, a in ordered]), Path(scratch))
        try:
            done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise timeout_error(where, timeout) from None
        text = log.read_text() if log.is_file() else ""
        recorded = (Path(scratch) / UART_FILE).read_bytes() if uart and (Path(scratch) / UART_FILE).is_file() else None
    run = parse_counts(text, [name for name, _ in ordered], done.returncode, done.stdout, qemu_messages(done.stderr))
    if done.returncode != 0 and "plugin" in done.stderr.lower() and run.total is None and not run.hits:
        raise edgekit.BuildError(f"QEMU could not load the counting plugin: {done.stderr.strip().splitlines()[0]}")
    if uart and done.returncode == 0:
        _read_program_end(run, recorded or b"", where)
    return run


def _read_program_end(run: CountedRun, uart: bytes, where: str) -> None:
    """Exit status, printed text and failure text from the firmware's UART frames."""
    status, printed, failure = program_end(uart, where)
    run.stdout += printed
    if status is None:
        run.exit_code = 1
        run.stderr += "ek-harness: the firmware stopped without sending an exit status\n"
    else:
        run.exit_code = status
        if failure:
            run.stderr += f"ek-harness: {failure}\n"
