"""The serial transport: frame encoding, and a round trip against the emulated board's UART."""

from __future__ import annotations

import struct

import pytest
import serial
from conftest import context_for, make_artifact, random_inputs

import edgekit
from edgekit.plugins.harness.qemu import QemuRunner
from edgekit.plugins.harness.serial_protocol import SerialSession, encode_frame
from edgekit.plugins.harness.serial_runner import SerialRunner, export_serial_firmware


def test_frames_round_trip_and_bad_crc_is_refused():
    port = serial.serial_for_url("loop://", timeout=0.05)
    session = SerialSession(port, timeout=1.0, where="loop")
    port.write(b"\x00noise" + encode_frame(b"O", b"\x01\x02\x03"))
    assert session.read_frame() == (b"O", b"\x01\x02\x03")
    broken = bytearray(encode_frame(b"O", b"abc"))
    broken[8] ^= 0xFF
    port.write(bytes(broken))
    with pytest.raises(edgekit.BuildError, match="CRC"):
        session.read_frame()
    port.write(encode_frame(b"T", b"printed\n") + encode_frame(b"F", struct.pack("<I", 99) + b"ek-harness: HardFault at pc=0x1"))
    with pytest.raises(edgekit.BuildError, match="crashed: HardFault at pc=0x1"):
        session.read_frame()
    assert session.console == "printed\n"
    with pytest.raises(edgekit.BuildError, match="no complete reply"):
        SerialSession(port, timeout=0.2, where="loop").read_frame()


def test_serial_and_qemu_runners_agree(tmp_path):
    artifact = make_artifact(tmp_path / "out")
    feeds = random_inputs(3, seed=5)
    over_uart = SerialRunner().run(artifact, feeds, context_for("cortex-m4"))
    on_qemu = QemuRunner().run(artifact, feeds, context_for("cortex-m4", profile_layers=False))
    for a, b in zip(over_uart, on_qemu):
        assert a.outputs["y"].tobytes() == b.outputs["y"].tobytes()
        # Same library objects, same markers: the same instructions per inference.
        assert a.measurements["instructions"] == b.measurements["instructions"]
        assert a.measurements["stack_bytes"] == b.measurements["stack_bytes"] > 0
        assert "cycles" not in a.measurements  # QEMU's DWT counter reads 0: no cycles claimed


def test_fault_over_the_uart_is_reported(tmp_path):
    artifact = make_artifact(tmp_path / "out", "fault_model.c")
    with pytest.raises(edgekit.BuildError, match="HardFault"):
        SerialRunner().run(artifact, random_inputs(1), context_for("cortex-m4", run_timeout=10))


def test_explicit_url_is_used(tmp_path):
    """With serial_url set the runner talks to that port and nothing else (here: nobody answers)."""
    artifact = make_artifact(tmp_path / "out")
    context = context_for("cortex-m4", serial_url="loop://", run_timeout=0.5)
    with pytest.raises(edgekit.BuildError, match="loop://"):
        SerialRunner().run(artifact, random_inputs(1), context)


def test_firmware_for_a_real_board_is_exported(tmp_path):
    artifact = make_artifact(tmp_path / "out")
    binary = export_serial_firmware(artifact, context_for("cortex-m4").target, tmp_path / "board")
    assert binary.name == "app.bin" and (tmp_path / "board" / "app.elf").is_file()
    # The raw image starts with the vector table: initial stack pointer in RAM, then Reset_Handler (Thumb).
    initial_sp, reset = int.from_bytes(binary.read_bytes()[0:4], "little"), int.from_bytes(binary.read_bytes()[4:8], "little")
    assert 0x20000000 < initial_sp <= 0x20000000 + (4 << 20) and reset & 1 == 1
