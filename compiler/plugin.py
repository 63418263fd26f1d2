"""Registers the TVM back end, its runners, the ``tvm`` kernels for ``mcu-c`` and ``edgekit tune``. Imports nothing heavy: TVM loads
only when a build, run or tuning starts."""

from __future__ import annotations

import edgekit


@edgekit.hookimpl
def edgekit_register_backends():
    from edgekit.compiler.backend import TvmBackend

    return [TvmBackend()]


@edgekit.hookimpl
def edgekit_register_runners():
    from edgekit.compiler.runners import QemuUserRunner, TvmHostRunner

    return [QemuUserRunner(), TvmHostRunner()]


@edgekit.hookimpl
def edgekit_register_kernel_libraries():
    from edgekit.compiler.mcu_library import TvmMcuKernels

    return [TvmMcuKernels()]


@edgekit.hookimpl
def edgekit_register_commands(cli):
    from edgekit.compiler.tune_command import tune_command

    cli.add_command(tune_command)
