"""Target profiles: one hardware profile each, kept as TOML data in ``targets/`` or given by plugins."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import UsageError, read_toml

# Keys a profile may have. An unknown key is an error that names it: a typo must not go unnoticed.
_FIELDS = {
    "name", "description", "architecture", "cpu", "fpu", "features", "flash_bytes", "ram_bytes",
    "clock_hz", "toolchain", "backend", "tvm_target", "emulator", "runner", "passes", "dtype",
}
_TOOLCHAIN_FIELDS = {"cc", "cflags", "ldflags", "size", "objcopy"}
_EMULATOR_FIELDS = {"program", "machine", "cpu", "flash_base", "flash_bytes", "ram_base", "ram_bytes", "io_base",
                    "io_bytes"}


@dataclass(frozen=True)
class Toolchain:
    """The C compiler a target builds with and its flags (``cflags`` select CPU, FPU and ABI)."""

    cc: str = "cc"
    cflags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()
    size: str = "size"
    objcopy: str = "objcopy"


@dataclass(frozen=True)
class Emulator:
    """How to run this target's code here: a QEMU program and machine, with the board's memory map."""

    program: str = ""  # e.g. qemu-system-arm, qemu-aarch64; empty: runs natively on the host
    machine: str = ""  # e.g. mps2-an386
    cpu: str = ""
    flash_base: int = 0
    flash_bytes: int = 0
    ram_base: int = 0
    ram_bytes: int = 0
    # RAM outside the firmware's own (e.g. the MPS2 boards' PSRAM) that QEMU's generic loader fills with
    # the input records before the run; io_bytes 0: inputs travel over the UART
    io_base: int = 0
    io_bytes: int = 0


@dataclass(frozen=True)
class Target:
    """One hardware profile.

    ``features`` lists ISA extensions the code may use (``dsp``, ``fpu``, ``neon``, ``mve``, ``opencl``...).
    ``flash_bytes``/``ram_bytes`` are the budgets a build is checked against (0: unlimited).
    ``passes`` is the default pass list; ``backend`` and ``runner`` name registered plugins.
    """

    name: str
    description: str = ""
    architecture: str = ""
    cpu: str = ""
    fpu: str = "none"
    features: tuple[str, ...] = ()
    flash_bytes: int = 0
    ram_bytes: int = 0
    clock_hz: int = 0
    toolchain: Toolchain = field(default_factory=Toolchain)
    backend: str = "onnxruntime"
    runner: str = ""
    tvm_target: dict[str, Any] = field(default_factory=dict)
    emulator: Emulator = field(default_factory=Emulator)
    passes: tuple[str, ...] = ()
    dtype: str = "float32"
    source: str = ""  # where the profile came from: a file path or a plugin name

    def has(self, feature: str) -> bool:
        return feature in self.features

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> Target:
        where = source or data.get("name", "<profile>")
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            raise UsageError(f"{where}: unknown target field(s) {', '.join(unknown)}; "
                             f"known fields: {', '.join(sorted(_FIELDS))}")
        if "name" not in data:
            raise UsageError(f"{where}: a target profile needs a 'name'")
        values = dict(data)
        values["toolchain"] = _sub(Toolchain, data.get("toolchain", {}), _TOOLCHAIN_FIELDS,
                                   f"{where} [toolchain]")
        values["emulator"] = _sub(Emulator, data.get("emulator", {}), _EMULATOR_FIELDS,
                                  f"{where} [emulator]")
        for key in ("features", "passes"):
            values[key] = tuple(data.get(key, ()))
        return cls(source=source, **values)

    @classmethod
    def from_toml(cls, path: str | Path) -> Target:
        path = Path(path)
        return cls.from_dict(read_toml(path, "target profile"), source=str(path))

    def summary(self) -> dict[str, Any]:
        """The profile as plain data, for the report."""
        from dataclasses import asdict

        return asdict(self)


def _sub(kind: type, data: dict[str, Any], known: set[str], where: str):
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return kind(**values)


def unknown_name_error(kind: str, name: str, known: list[str], hint: str = "") -> UsageError:
    """A one-line error for an unknown target/pass/back end name, suggesting the closest names."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    suggestion = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    listing = f" (known: {', '.join(sorted(known))})" if not close else ""
    return UsageError(f"unknown {kind} '{name}'{suggestion}{listing}{hint}")
