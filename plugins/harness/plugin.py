"""Registers the harness runners: ``qemu`` (emulated Cortex-M board), ``host`` (native, sanitizers)
and ``serial`` (a real board over a UART)."""

from __future__ import annotations

import edgekit


@edgekit.hookimpl
def edgekit_register_runners():
    from edgekit.plugins.harness.host import HostRunner
    from edgekit.plugins.harness.qemu import QemuRunner
    from edgekit.plugins.harness.serial_runner import SerialRunner

    return [QemuRunner(), HostRunner(), SerialRunner()]
