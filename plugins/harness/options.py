"""Harness settings a user or the lead can pass through ``context.options`` (all optional):

- ``optimize``: ``"-O2"`` (default), ``"-Os"``, ``"-O3"`` — the flag the library and harness build with.
- ``stack_bytes``: the stack reserved in the firmware (default 16 KiB); overflowing it is an error.
- ``run_timeout``: seconds one QEMU or host run may take (default 120) before it counts as a hang.
- ``profile_layers``: also build with the library's profile macro for per-layer counts (default True).
- ``keep_firmware``: copy the ELF and linker map to ``<artifact_dir>/firmware/`` (default False: the
  firmware is built in a temporary directory so output directories stay reproducible).
- ``serial_url``: the pyserial URL of a real board for the ``serial`` runner.
"""

from __future__ import annotations

from dataclasses import dataclass

import edgekit
from edgekit.plugins.harness.firmware import DEFAULT_STACK_BYTES

OPTIMIZE_FLAGS = ("-O0", "-O1", "-O2", "-O3", "-Os", "-Oz")


@dataclass(frozen=True)
class HarnessOptions:
    optimize: str = "-O2"
    stack_bytes: int = DEFAULT_STACK_BYTES
    run_timeout: float = 120.0
    profile_layers: bool = True
    keep_firmware: bool = False
    serial_url: str = ""

    @classmethod
    def from_context(cls, context: edgekit.BuildContext | None) -> HarnessOptions:
        opts = dict(context.options) if context is not None else {}
        optimize = str(opts.get("optimize") or "-O2")
        if not optimize.startswith("-"):
            optimize = "-" + optimize
        if optimize not in OPTIMIZE_FLAGS:
            raise edgekit.UsageError(f"optimize '{optimize}' is not one of {', '.join(OPTIMIZE_FLAGS)}")
        return cls(optimize=optimize,
                   stack_bytes=int(opts.get("stack_bytes") or DEFAULT_STACK_BYTES),
                   run_timeout=float(opts.get("run_timeout") or 120.0),
                   profile_layers=bool(opts.get("profile_layers", True)),
                   keep_firmware=bool(opts.get("keep_firmware", False)),
                   serial_url=str(opts.get("serial_url") or ""))
