"""edgekit's framed serial protocol, host side (the firmware side is ``firmware/ek_frame.c`` and
``firmware/ek_serial_main.c``).

Frame: sync ``EC 5A``, kind (1 byte), payload length (uint32 LE), payload, CRC-32 (IEEE, as
``zlib.crc32``) over kind + length + payload. The host sends ``H`` (hello), ``I`` (one input record)
and ``Q`` (quit); the board answers ``H`` (five uint32: protocol version, input record bytes, output
bytes, input count, output count), ``O`` (outputs + record trailer), ``Q`` or ``E`` (error text).
On its own the board sends ``R`` (ready, at start), ``T`` (stdout/stderr text), ``X`` (exit status,
uint32) and ``F`` (failure: uint32 exit code, then text); after ``X`` or ``F`` it resets.

An emulated board with an I/O region gets its input records without the UART: :func:`input_blob`
(header of four uint32: magic ``EKIO``, version, record count, record bytes; then the records) is
loaded into its RAM by QEMU before the start, and the board sends 'O' per record, then 'Q'.

The UART is the firmware's only way out: generated code runs in emulation with no semihosting, so it
cannot reach host files or commands; what it sends is data this module parses, never acts on."""

from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass

import edgekit

SYNC = b"\xec\x5a"
PROTOCOL_VERSION = 2
MAX_PAYLOAD = 64 * 1024 * 1024
EXIT_STACK_OVERFLOW = 98   # ek_harness.h
EXIT_FAULT = 99
IO_MAGIC = b"EKIO"         # the loaded input blob (firmware/ek_serial_main.c, RAM-fed)
IO_VERSION = 1
IO_HEADER_BYTES = 16


def input_blob(records: bytes, count: int, record_bytes: int) -> bytes:
    """``count`` input records as the RAM-fed firmware reads them from its I/O region."""
    return IO_MAGIC + struct.pack("<3I", IO_VERSION, count, record_bytes) + records


def encode_frame(kind: bytes, payload: bytes = b"") -> bytes:
    body = kind + struct.pack("<I", len(payload)) + payload
    return SYNC + body + struct.pack("<I", zlib.crc32(body))


@dataclass(frozen=True)
class BoardInfo:
    version: int
    input_record_bytes: int
    output_bytes: int
    n_inputs: int
    n_outputs: int


class ReplyTimeout(edgekit.BuildError):
    """No complete frame arrived in time."""


class FirmwareStopped(edgekit.BuildError):
    """The board sent ``F`` (a fault, a stack overflow) or ``X`` (its program ended): one line saying which."""

    def __init__(self, where: str, status: int, text: str = "", stack_reserved: int | None = None):
        self.status, self.text = status, text
        if status == EXIT_STACK_OVERFLOW:
            reserved = f"the {stack_reserved:,} B " if stack_reserved else "the "
            message = (f"stack overflow: the model used more than {reserved}reserved stack; "
                       "reserve more with --option stack_bytes=N")
        elif status == EXIT_FAULT:
            message = f"the firmware crashed: {text or 'HardFault'}"
        else:
            message = f"the firmware exited with status {status}" + (f": {text}" if text else "")
        super().__init__(f"{where}: {message}")


class _Recorded:
    """A finished byte stream (what an emulator's UART wrote) as a port that reports its end."""

    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def read(self, size: int) -> bytes:
        if self.at >= len(self.data):
            raise EOFError
        chunk = self.data[self.at:self.at + size]
        self.at += len(chunk)
        return chunk


class SerialSession:
    """One conversation with a board over a pyserial port (any object with read/write/close).
    ``console`` collects what the firmware printed ('T' frames); ``stack_reserved`` words a stack
    overflow report."""

    def __init__(self, port, timeout: float, where: str, stack_reserved: int | None = None):
        self.port = port
        self.timeout = timeout
        self.where = where
        self.stack_reserved = stack_reserved
        self.console = ""

    def _read_exact(self, size: int, deadline: float) -> bytes:
        data = bytearray()
        while len(data) < size:
            if time.monotonic() > deadline:
                raise ReplyTimeout(f"{self.where}: no complete reply within {self.timeout:g} s "
                                   f"(got {len(data)} of {size} bytes; is the harness firmware running?)")
            chunk = self.port.read(size - len(data))
            if chunk:
                data += chunk
        return bytes(data)

    def read_frame(self, ready: bool = False) -> tuple[bytes, bytes]:
        """The next reply frame; printed text is collected and the start-up 'R' skipped (returned
        when ``ready``). 'F', 'X' and 'E' raise."""
        while True:
            kind, payload = self._next_frame()
            if kind == b"T":
                self.console += payload.decode(errors="replace")
            elif kind in (b"F", b"X"):
                (status,) = struct.unpack("<I", payload[:4].ljust(4, b"\0"))
                text = payload[4:].decode(errors="replace").replace("ek-harness:", "").strip()
                raise FirmwareStopped(self.where, status, text, self.stack_reserved)
            elif kind == b"E":
                raise edgekit.BuildError(f"{self.where}: the firmware rejected a frame: "
                                         f"{payload.decode(errors='replace')}")
            elif kind != b"R" or ready:
                return kind, payload

    def _next_frame(self) -> tuple[bytes, bytes]:
        deadline = time.monotonic() + self.timeout
        window = b""
        while window != SYNC:  # hunt for the sync bytes, skipping noise
            window = (window + self._read_exact(1, deadline))[-2:]
        header = self._read_exact(5, deadline)
        kind, (length,) = header[:1], struct.unpack("<I", header[1:])
        if length > MAX_PAYLOAD:
            raise edgekit.BuildError(f"{self.where}: reply announces {length} bytes; the link is garbled")
        payload = self._read_exact(length, deadline)
        (crc,) = struct.unpack("<I", self._read_exact(4, deadline))
        if crc != zlib.crc32(header + payload):
            raise edgekit.BuildError(f"{self.where}: reply '{kind.decode(errors='replace')}' failed its CRC check")
        return kind, payload

    def wait_ready(self) -> None:
        """Until the board's start-up 'R' frame: it listens from then on."""
        while self.read_frame(ready=True)[0] != b"R":
            pass

    def request(self, kind: bytes, payload: bytes, expect: bytes) -> bytes:
        self.port.write(encode_frame(kind, payload))
        return self.expect(expect)

    def expect(self, expect: bytes) -> bytes:
        """The payload of the next reply frame, which must be of kind ``expect``."""
        got, reply = self.read_frame()
        if got != expect:
            raise edgekit.BuildError(f"{self.where}: expected a '{expect.decode()}' frame, got '{got.decode(errors='replace')}'")
        return reply

    def hello(self) -> BoardInfo:
        reply = self.request(b"H", b"", b"H")
        if len(reply) != 20:
            raise edgekit.BuildError(f"{self.where}: hello reply of {len(reply)} bytes, expected 20")
        info = BoardInfo(*struct.unpack("<5I", reply))
        if info.version != PROTOCOL_VERSION:
            raise edgekit.BuildError(f"{self.where}: firmware speaks protocol {info.version}, "
                                     f"this edgekit speaks {PROTOCOL_VERSION}; reflash the board")
        return info

    def infer(self, record: bytes) -> bytes:
        return self.request(b"I", record, b"O")

    def quit(self) -> None:
        self.request(b"Q", b"", b"Q")


def program_end(uart: bytes, where: str) -> tuple[int | None, str, str]:
    """What a finished program wrote on its UART: (exit status or None when it never said,
    printed text, failure text)."""
    session = SerialSession(_Recorded(uart), float("inf"), where)
    try:
        while True:
            session.read_frame()
    except FirmwareStopped as stop:
        return stop.status, session.console, stop.text
    except EOFError:
        return None, session.console, ""
