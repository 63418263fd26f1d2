"""Registers the TVM back end, its runners and ``edgekit tune``. Imports nothing heavy: TVM loads
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
def edgekit_register_commands(cli):
    from edgekit.compiler.tune_command import tune_command

    cli.add_command(tune_command)
