"""Generated code runs in emulation as untrusted code: a library (or benchmark) that asks QEMU for
semihosting -- SYS_SYSTEM to run a host command, SYS_OPEN to write a host file -- gets a HardFault,
one line of error, and the host file is never created."""

from __future__ import annotations

import uuid

import pytest
from conftest import context_for, make_artifact, random_inputs

import edgekit
from edgekit.plugins.harness import counting
from edgekit.plugins.harness.firmware import build_program
from edgekit.plugins.harness.qemu import QemuRunner

SYS_OPEN, SYS_SYSTEM = 0x01, 0x12
OPEN_MODE_W = 4  # "w"

# Semihosting call from C: r0 = operation, r1 = parameter block, then BKPT 0xAB (Thumb).
SEMIHOST_CALL = """
static int ek_evil_semihost(int op, const void *block)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
"""


def attack(op: int, path: str) -> str:
    """C statements that try to create ``path`` on the host through semihosting ``op``."""
    if op == SYS_SYSTEM:
        text = f"touch {path}"
        return (f'    static const char command[] = "{text}";\n'
                f"    static const uint32_t block[2] = {{(uint32_t)command, {len(text)}u}};\n"
                f"    ek_evil_semihost({SYS_SYSTEM}, block);\n")
    return (f'    static const char name[] = "{path}";\n'
            f"    static const uint32_t block[3] = {{(uint32_t)name, {OPEN_MODE_W}u, {len(path)}u}};\n"
            f"    ek_evil_semihost({SYS_OPEN}, block);\n")


def evil_library(op: int, path: str) -> str:
    return ('#include "model.h"\n' + SEMIHOST_CALL +
            "int fake_run_io(const void *const inputs[], void *const outputs[], uint8_t *arena)\n{\n"
            "    (void)inputs;\n    (void)outputs;\n    (void)arena;\n" + attack(op, path) + "    return 0;\n}\n")


@pytest.mark.parametrize("op", [SYS_SYSTEM, SYS_OPEN], ids=["SYS_SYSTEM", "SYS_OPEN"])
def test_library_cannot_reach_host_through_semihosting(tmp_path, op):
    victim = tmp_path / f"pwned-{uuid.uuid4().hex}"
    artifact = make_artifact(tmp_path / "out")
    (artifact / "model.c").write_text(evil_library(op, str(victim)), encoding="utf-8")
    with pytest.raises(edgekit.BuildError) as caught:
        QemuRunner().run(artifact, random_inputs(1), context_for("cortex-m4", run_timeout=10))
    message = str(caught.value)
    assert "the firmware crashed: HardFault at pc=0x" in message and "\n" not in message
    assert not victim.exists()


def test_benchmark_program_cannot_reach_host_through_semihosting(tmp_path):
    """build_program + run_counted (kernel benchmarks, TVM tuning): the same channel and the same refusal."""
    victim = tmp_path / f"pwned-{uuid.uuid4().hex}"
    source = tmp_path / "evil_main.c"
    source.write_text("#include <stdint.h>\n" + SEMIHOST_CALL + "int main(void)\n{\n" + attack(SYS_SYSTEM, str(victim))
                      + "    return 0;\n}\n", encoding="utf-8")
    firmware = build_program([source], context_for("cortex-m4").target, tmp_path / "fw")
    run = counting.run_counted(firmware.elf, machine="mps2-an386", cpu="cortex-m4", timeout=10)
    assert run.exit_code == 99 and "ek-harness: HardFault at pc=0x" in run.stderr
    assert not victim.exists()


def test_no_command_line_offers_semihosting_or_a_network(tmp_path):
    line = counting.qemu_system_command("qemu-system-arm", "mps2-an386", "cortex-m4", tmp_path / "app.elf",
                                        None, "stdio")
    assert not [arg for arg in line if "semihost" in arg]
    assert line[line.index("-nic") + 1] == "none" and "-no-reboot" in line
