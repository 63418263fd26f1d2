"""Harness settings a user or the lead can pass through ``context.options`` (all optional):

- ``optimize``: ``"-O2"`` (default), ``"-Os"``, ``"-O3"`` — the flag the library and harness build with.
- ``stack_bytes``: the stack reserved in the firmware (default 16 KiB); overflowing it is an error.
- ``run_timeout``: seconds one QEMU or host run may take (default 120) before it counts as a hang.
- ``profile_layers``: also build with the library's profile macro for per-layer counts (default True).
- ``keep_firmware``: copy the ELF and linker map to ``<artifact_dir>/firmware/`` (default False: the
  firmware is built in a temporary directory so output directories stay reproducible), and the
  standalone image (:mod:`standalone`) as ``firmware/standalone.elf`` (``qemu`` runner).
- ``save_firmware``: write the standalone image, the run's inputs linked in, to this path (``qemu``
  runner; ``edgekit run OUT --save-firmware PATH`` sets it).
- ``serial_url``: the pyserial URL of a real board for the ``serial`` runner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import edgekit
from edgekit.plugins.harness.firmware import DEFAULT_STACK_BYTES

OPTIMIZE_FLAGS = ("-O0", "-O1", "-O2", "-O3", "-Os", "-Oz")
DEFAULT_RUN_TIMEOUT = 120.0
#: the ranges a user may set: a stack of a few words (less overflows at once, which the run reports
#: as such) up to what a 32-bit word holds (the firmware reports its stack use in one); a run of at
#: most a day
STACK_BYTES_RANGE = (64, 2**32 - 1)
RUN_TIMEOUT_RANGE = (0.0, 86400.0)


@dataclass(frozen=True)
class HarnessOptions:
    optimize: str = "-O2"
    stack_bytes: int = DEFAULT_STACK_BYTES
    run_timeout: float = DEFAULT_RUN_TIMEOUT
    profile_layers: bool = True
    keep_firmware: bool = False
    save_firmware: str = ""
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
                   stack_bytes=int(_number(opts, "stack_bytes", DEFAULT_STACK_BYTES, STACK_BYTES_RANGE,
                                           integer=True)),
                   run_timeout=_number(opts, "run_timeout", DEFAULT_RUN_TIMEOUT, RUN_TIMEOUT_RANGE,
                                       integer=False),
                   profile_layers=bool(opts.get("profile_layers", True)),
                   keep_firmware=bool(opts.get("keep_firmware", False)),
                   save_firmware=str(opts.get("save_firmware") or ""),
                   serial_url=str(opts.get("serial_url") or ""))

    def refuse_save_firmware(self, runner: str) -> None:
        """``save_firmware`` in a runner that builds no standalone image: say where it is built."""
        if self.save_firmware:
            raise edgekit.UsageError(f"save_firmware {self.save_firmware}: the '{runner}' runner saves no "
                                     "firmware image; the 'qemu' runner of an emulated Cortex-M target does")


def _number(opts: dict[str, Any], key: str, default: float, bounds: tuple[float, float], integer: bool) -> float:
    """Option ``key`` as a number within ``bounds`` (an integer one when ``integer``; above the lower
    bound for a float, at least it for an integer), ``default`` when unset; else a UsageError
    naming the option and the range."""
    value = opts.get(key)
    if value is None or value == "":
        return default
    low, high = bounds
    if integer:
        fits = (isinstance(value, int) or (isinstance(value, float) and value.is_integer())) \
            and not isinstance(value, bool) and low <= value <= high
        wanted = f"an integer from {low:,} to {high:,}"
    else:
        fits = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and low < value <= high
        wanted = f"a number of seconds above {low:g} and at most {high:g}"
    if not fits:
        raise edgekit.UsageError(f"--option {key}={value}: expected {wanted}")
    return value
