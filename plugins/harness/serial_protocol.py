"""edgekit's framed serial protocol, host side (the firmware side is ``firmware/ek_serial_main.c``).

Frame: sync ``EC 5A``, kind (1 byte), payload length (uint32 LE), payload, CRC-32 (IEEE, as
``zlib.crc32``) over kind + length + payload. The host sends ``H`` (hello), ``I`` (one input record)
and ``Q`` (quit); the board answers ``H`` (five uint32: protocol version, input record bytes, output
bytes, input count, output count), ``O`` (outputs + record trailer), ``Q``, ``E`` (error text) or
``F`` (fault text)."""

from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass

import edgekit

SYNC = b"\xec\x5a"
PROTOCOL_VERSION = 1
MAX_PAYLOAD = 64 * 1024 * 1024


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


class SerialSession:
    """One conversation with a board over a pyserial port (any object with read/write/close)."""

    def __init__(self, port, timeout: float, where: str):
        self.port = port
        self.timeout = timeout
        self.where = where

    def _read_exact(self, size: int, deadline: float) -> bytes:
        data = bytearray()
        while len(data) < size:
            if time.monotonic() > deadline:
                raise edgekit.BuildError(f"{self.where}: no complete reply within {self.timeout:g} s "
                                         f"(got {len(data)} of {size} bytes; is the harness firmware running?)")
            chunk = self.port.read(size - len(data))
            if chunk:
                data += chunk
        return bytes(data)

    def read_frame(self) -> tuple[bytes, bytes]:
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
        if kind == b"F":
            raise edgekit.BuildError(f"{self.where}: the firmware stopped: "
                                     f"{payload.decode(errors='replace').replace('ek-harness:', '').strip()}")
        if kind == b"E":
            raise edgekit.BuildError(f"{self.where}: the firmware rejected a frame: {payload.decode(errors='replace')}")
        return kind, payload

    def request(self, kind: bytes, payload: bytes, expect: bytes) -> bytes:
        self.port.write(encode_frame(kind, payload))
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
