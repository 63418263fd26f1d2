"""The qemu runner on hand-written libraries: outputs, measurements, faults, hangs, stack and budgets."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from conftest import context_for, fake_metadata, fake_reference, make_artifact, random_inputs

import edgekit
from edgekit.plugins.harness.firmware import build_firmware
from edgekit.plugins.harness.metadata import LibraryMeta
from edgekit.plugins.harness.qemu import QemuRunner


def netduinoplus2_target() -> edgekit.Target:
    """A profile asking for realistic budgets: STM32F405 with 1 MB flash and 128 KB RAM."""
    data = context_for("cortex-m4").target.summary()
    data.pop("source")
    data.update(name="stm32f405", emulator={
        "program": "qemu-system-arm", "machine": "netduinoplus2", "cpu": "cortex-m4",
        "flash_base": 0x08000000, "flash_bytes": 1 << 20, "ram_base": 0x20000000, "ram_bytes": 128 << 10})
    return edgekit.Target.from_dict(data)


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m0plus", "cortex-m7"])
def test_outputs_match_and_measurements_are_plausible(tmp_path, target):
    artifact = make_artifact(tmp_path / "out")
    feeds = random_inputs(3, seed=2)
    results = QemuRunner().run(artifact, feeds, context_for(target))
    assert len(results) == 3
    for result, feed in zip(results, feeds):
        np.testing.assert_allclose(result.outputs["y"], fake_reference(feed["x"]), rtol=1e-6, atol=1e-6)
        assert result.outputs["y"].shape == (1, 4) and result.outputs["y"].dtype == np.float32
    m = results[0].measurements
    per_layer = m["instructions_per_layer"]
    assert len(per_layer) == 2 and all(n > 0 for n in per_layer)
    # The 4x8 matrix product costs more than the 8-element affine+ReLU layer.
    assert per_layer[1] > per_layer[0]
    # Layers sit inside the inference; the profiled image pays a few instructions per mark.
    assert sum(per_layer) < m["instructions_profiled"]
    assert 0 <= m["instructions_profiled"] - m["instructions"] <= 10 * 3
    # Image sizes: the model's part holds the 128-byte weight table; the arena is in RAM.
    assert m["flash_bytes"] > m["model_flash_bytes"] >= 128
    assert m["ram_bytes"] >= m["arena_bytes"] == 32
    assert 0 < m["stack_bytes"] < 512
    assert m["machine"] == context_for(target).target.emulator.machine


def test_metadata_comes_from_the_context_during_a_build(tmp_path):
    """During `edgekit build` report.json does not exist yet: the runner reads context.report."""
    artifact = make_artifact(tmp_path / "out")
    (artifact / "report.json").unlink()
    context = context_for("cortex-m4", profile_layers=False)
    context.report["backend"] = fake_metadata()
    feeds = random_inputs(1)
    [result] = QemuRunner().run(artifact, feeds, context)
    np.testing.assert_allclose(result.outputs["y"], fake_reference(feeds[0]["x"]), rtol=1e-6, atol=1e-6)
    with pytest.raises(edgekit.UsageError, match="report.json"):
        QemuRunner().run(artifact, feeds, context_for("cortex-m4"))


def test_hardfault_is_reported_as_a_fault(tmp_path):
    artifact = make_artifact(tmp_path / "out", "fault_model.c")
    with pytest.raises(edgekit.BuildError, match=r"crashed: HardFault at pc=0x"):
        QemuRunner().run(artifact, random_inputs(1), context_for("cortex-m4", profile_layers=False))


def test_hang_is_reported_as_a_timeout(tmp_path):
    artifact = make_artifact(tmp_path / "out", "hang_model.c")
    with pytest.raises(edgekit.BuildError, match=r"did not finish within 1.5 s"):
        QemuRunner().run(artifact, random_inputs(1), context_for("cortex-m4", run_timeout=1.5, profile_layers=False))


def test_stack_use_is_measured_and_overflow_detected(tmp_path):
    """stack_model.c keeps a 2 KiB buffer on the stack."""
    artifact = make_artifact(tmp_path / "out", "stack_model.c")
    [result] = QemuRunner().run(artifact, random_inputs(1), context_for("cortex-m4", profile_layers=False))
    assert 2048 <= result.measurements["stack_bytes"] <= 2048 + 128
    with pytest.raises(edgekit.BuildError, match=r"stack overflow: the model used more than the 1,024 B reserved "
                                                 r"stack; reserve more with --option stack_bytes=N"):
        QemuRunner().run(artifact, random_inputs(1), context_for("cortex-m4", stack_bytes=1024))


def test_netduinoplus2_runs_and_enforces_its_ram_budget(tmp_path):
    target = netduinoplus2_target()
    feeds = random_inputs(1)
    [result] = QemuRunner().run(make_artifact(tmp_path / "small"), feeds, context_for(target))
    np.testing.assert_allclose(result.outputs["y"], fake_reference(feeds[0]["x"]), rtol=1e-6, atol=1e-6)
    big = make_artifact(tmp_path / "big", arena_bytes=200_000)
    with pytest.raises(edgekit.BuildError) as caught:
        QemuRunner().run(big, feeds, context_for(target))
    message = str(caught.value)
    assert "netduinoplus2" in message and "RAM" in message and "131072" in message
    # 200,000 arena + the harness's own RAM + 20 KiB stack/heap reserve, minus 128 KiB.
    over = int(message.split("(")[2].split(" bytes over")[0])
    assert 200_000 + 20 * 1024 - 131_072 < over < 200_000 + 20 * 1024 - 131_072 + 2048


def test_build_only_target_is_refused_but_links(tmp_path):
    artifact = make_artifact(tmp_path / "out")
    with pytest.raises(edgekit.UsageError, match="build-only"):
        QemuRunner().run(artifact, random_inputs(1), context_for("cortex-m55"))
    firmware = build_firmware(LibraryMeta.from_dict(fake_metadata(), "t"), artifact,
                              context_for("cortex-m55").target, tmp_path / "fw")
    assert firmware.elf.is_file() and firmware.sizes["model_flash_bytes"] >= 128


def test_size_optimisation_and_kept_firmware(tmp_path):
    artifact = make_artifact(tmp_path / "out")
    before = sorted(p.name for p in artifact.iterdir())
    [o2] = QemuRunner().run(artifact, random_inputs(1), context_for("cortex-m4", profile_layers=False))
    assert sorted(p.name for p in artifact.iterdir()) == before  # built in a temporary directory
    [os_] = QemuRunner().run(artifact, random_inputs(1),
                             context_for("cortex-m4", optimize="-Os", keep_firmware=True, profile_layers=False))
    assert os_.measurements["optimize"] == "-Os" and o2.measurements["optimize"] == "-O2"
    # The model's own code shrinks (newlib is prebuilt; the whole image need not).
    assert os_.measurements["model_flash_bytes"] < o2.measurements["model_flash_bytes"]
    elf = artifact / "firmware" / "app.elf"
    assert elf.is_file()
    # The linker-map accounting agrees with arm-none-eabi-size (Berkeley: text includes rodata;
    # bss includes the stack and heap reservations).
    text, data, bss = (int(v) for v in subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True,
                                                       text=True, check=True).stdout.splitlines()[1].split()[:3])
    m = os_.measurements
    assert m["flash_bytes"] == text + data
    assert m["ram_bytes"] == data + bss - m["stack_reserved_bytes"] - m["heap_reserved_bytes"]
    # The model's RAM: its 32-byte arena and 32 + 16 bytes of input/output buffers.
    assert m["model_ram_bytes"] == 32 + 32 + 16
    json.loads((artifact / "report.json").read_text())  # untouched


def test_library_without_profile_marks_says_so(tmp_path):
    artifact = make_artifact(tmp_path / "out", "unmarked_model.c")
    [result] = QemuRunner().run(artifact, random_inputs(1), context_for("cortex-m4"))
    assert "instructions_per_layer" not in result.measurements
    assert "ek_profile_mark" in result.measurements["instructions_per_layer_missing"]
    assert result.measurements["instructions"] > 0


def test_int8_tensors_travel_as_int8(tmp_path):
    int8 = {"dtype": "int8"}
    meta = fake_metadata()
    artifact = make_artifact(tmp_path / "out", "int8_model.c",
                             inputs=[{**meta["inputs"][0], **int8, "bytes": 8}],
                             outputs=[{**meta["outputs"][0], **int8, "bytes": 4}])
    x = np.array([[100, 100, -100, -100, 1, 2, -3, 4]], dtype=np.int8)
    [result] = QemuRunner().run(artifact, [{"x": x}], context_for("cortex-m0plus", profile_layers=False))
    assert result.outputs["y"].dtype == np.int8
    assert result.outputs["y"].tolist() == [[127, -128, 3, 1]]
