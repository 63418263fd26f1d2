"""Inputs loaded into the emulated board's I/O region (``[emulator] io_base``/``io_bytes``) by QEMU's
generic loader instead of sent over its UART: the same outputs and per-record instruction counts as
the UART conversation, in as many QEMU runs as the region needs, and nothing sent to the board."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import context_for, fake_metadata, fake_reference, make_artifact, random_inputs

import edgekit
from edgekit.plugins.harness import counting
from edgekit.plugins.harness.firmware import build_firmware, io_region
from edgekit.plugins.harness.metadata import LibraryMeta
from edgekit.plugins.harness.qemu import QemuRunner
from edgekit.plugins.harness.serial_protocol import IO_HEADER_BYTES
from edgekit.plugins.harness.uart_link import run_emulated

RECORD = 32  # the fake model's input: 8 float32


def with_io(target: edgekit.Target, io_bytes: int) -> edgekit.Target:
    return dataclasses.replace(target, emulator=dataclasses.replace(target.emulator, io_bytes=io_bytes))


def measured(results: list[edgekit.RunResult]) -> list[tuple]:
    return [(r.measurements["instructions"], r.measurements["instructions_profiled"],
             tuple(r.measurements["instructions_per_layer"])) for r in results]


def test_profiles_name_their_io_region():
    assert io_region(context_for("cortex-m4").target) == (0x21000000, 16 << 20)
    assert io_region(context_for("cortex-m0plus").target) == (0x21000000, 16 << 20)
    assert io_region(context_for("cortex-m7").target) == (0x60000000, 16 << 20)


def test_loaded_batched_and_uart_inputs_agree(tmp_path):
    """One loaded run, three batches of two records, and the UART conversation: same outputs, same
    counts per record."""
    artifact = make_artifact(tmp_path / "out")
    feeds = random_inputs(5, seed=4)
    base = context_for("cortex-m4").target
    loaded = QemuRunner().run(artifact, feeds, context_for(base))
    batched = QemuRunner().run(artifact, feeds, context_for(with_io(base, IO_HEADER_BYTES + 2 * RECORD + 31)))
    uart = QemuRunner().run(artifact, feeds, context_for(with_io(base, 0)))
    for results in (loaded, batched, uart):
        assert len(results) == 5
        for result, feed in zip(results, feeds):
            np.testing.assert_allclose(result.outputs["y"], fake_reference(feed["x"]), rtol=1e-6, atol=1e-6)
    assert measured(loaded) == measured(batched) == measured(uart)
    assert [r.measurements["stack_bytes"] for r in loaded] == [r.measurements["stack_bytes"] for r in uart]


def test_loaded_image_never_reads_the_uart(tmp_path):
    """The RAM-fed image links no UART receive code at all; QEMU gets the records from its loader."""
    meta, artifact = LibraryMeta.from_dict(fake_metadata(), "test"), make_artifact(tmp_path / "out")
    target = context_for("cortex-m4").target
    loaded = build_firmware(meta, artifact, target, tmp_path / "loaded", ram_inputs=True)
    uart = build_firmware(meta, artifact, target, tmp_path / "uart")
    assert loaded.io_region == (0x21000000, 16 << 20) and uart.io_region is None
    assert counting.symbol_addresses(uart.elf, ["ek_uart_getc"])
    with pytest.raises(edgekit.BuildError, match="ek_uart_getc"):
        counting.symbol_addresses(loaded.elf, ["ek_uart_getc"])
    line = counting.qemu_system_command("qemu-system-arm", "mps2-an386", "cortex-m4", loaded.elf, None, "stdio",
                                        loads=((tmp_path / "in.bin", 0x21000000),))
    assert line[line.index("-device") + 1] == f"loader,file={tmp_path / 'in.bin'},addr=0x21000000,force-raw=on"
    assert not [arg for arg in line if "semihost" in arg]


def test_record_larger_than_the_region_is_refused(tmp_path):
    target = with_io(context_for("cortex-m4").target, IO_HEADER_BYTES + RECORD - 1)
    with pytest.raises(edgekit.UsageError) as caught:
        QemuRunner().run(make_artifact(tmp_path / "out"), random_inputs(1), context_for(target, profile_layers=False))
    message = str(caught.value)
    assert "input record of 32 bytes does not fit" in message and "io_bytes (47" in message and "\n" not in message


def test_region_overlapping_the_firmware_ram_is_refused():
    target = context_for("cortex-m4").target
    target = dataclasses.replace(target, emulator=dataclasses.replace(target.emulator, io_base=0x20100000))
    with pytest.raises(edgekit.UsageError, match=r"io_base 0x20100000 .* overlaps the board's RAM"):
        io_region(target)


def test_firmware_refuses_records_of_another_size(tmp_path):
    """The board checks the loaded header against its own input size: a one-line failure, status 3."""
    target = context_for("cortex-m4").target
    firmware = build_firmware(LibraryMeta.from_dict(fake_metadata(), "test"), make_artifact(tmp_path / "out"),
                              target, tmp_path / "fw", ram_inputs=True)
    other = fake_metadata()
    other["inputs"] = [{**other["inputs"][0], "shape": [1, 4], "count": 4, "bytes": 16}]
    feeds = [{"x": np.zeros((1, 4), np.float32)}]
    with pytest.raises(edgekit.BuildError) as caught:
        run_emulated(firmware, target, LibraryMeta.from_dict(other, "test"), feeds, 10.0)
    message = str(caught.value)
    assert "exited with status 3: the input records at io_base have the wrong size" in message
    assert "\n" not in message
