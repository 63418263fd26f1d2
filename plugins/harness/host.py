"""The ``host`` runner: the same library and file-protocol harness built natively with host gcc under
AddressSanitizer and UndefinedBehaviorSanitizer; any sanitizer report fails the run with its first line."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import edgekit
from edgekit.plugins.harness.compile import WARNINGS, compile_objects, require_tool, run_tool
from edgekit.plugins.harness.firmware import FIRMWARE_DIR
from edgekit.plugins.harness.metadata import LibraryMeta, check_statuses, load_metadata, pack_inputs, unpack_outputs
from edgekit.plugins.harness.model_table import TABLE_FILE, model_table_source
from edgekit.plugins.harness.options import HarnessOptions

HOST_CC = "gcc"
INPUT_FILE = "ek_inputs.bin"     # the names ek_file_main.c opens, relative to the working directory
OUTPUT_FILE = "ek_outputs.bin"
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g")
# Leak checking needs ptrace, which containers often forbid; the harness frees nothing it keeps anyway.
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
                 "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}


def build_host_program(meta: LibraryMeta, artifact_dir: Path, work_dir: Path, optimize: str = "-O1") -> Path:
    """Compile the library and the host harness into ``work_dir/app`` with sanitizers."""
    cc = require_tool(HOST_CC, "build the host harness")
    if meta.objects:
        raise edgekit.UsageError(f"the library links prebuilt target objects ({', '.join(meta.objects)}), "
                                 "which the host cannot run; use --runner qemu on an emulated Cortex-M board")
    artifact_dir = Path(artifact_dir).resolve()
    includes = [f"-I{artifact_dir}"] + [f"-I{artifact_dir / d}" for d in meta.include_dirs]
    flags = [*WARNINGS, optimize, *SANITIZE, *includes]
    (work_dir / TABLE_FILE).write_text(model_table_source(meta), encoding="utf-8")
    units = [(artifact_dir / src, flags) for src in meta.sources]
    units += [(FIRMWARE_DIR / name, flags + [f"-I{FIRMWARE_DIR}"])
              for name in ("ek_markers.c", "ek_host_platform.c", "ek_file_main.c")]
    units.append((work_dir / TABLE_FILE, flags + [f"-I{FIRMWARE_DIR}"]))
    objects = compile_objects(cc, units, work_dir / "obj", "host harness")
    program = work_dir / "app"
    run_tool([cc, *SANITIZE, *map(str, objects), "-lm", "-o", str(program)], "linking the host harness")
    return program


def sanitizer_report(text: str) -> str | None:
    """The first line of an ASan/UBSan report in ``text``, or None."""
    for line in text.splitlines():
        if "ERROR: AddressSanitizer" in line or "runtime error:" in line or "ERROR: LeakSanitizer" in line:
            return line.strip().lstrip("=0123456789").lstrip("= ")
    return None


class HostRunner(edgekit.Runner):
    name = "host"
    description = "the generated C library on this host with AddressSanitizer and UBSan"

    def run(self, artifact_dir: Path, inputs: list[dict[str, np.ndarray]], context: edgekit.BuildContext,
            metadata: dict[str, Any] | None = None) -> list[edgekit.RunResult]:
        meta = load_metadata(Path(artifact_dir), context, metadata)
        options = HarnessOptions.from_context(context)
        options.refuse_save_firmware(self.name)
        blob = pack_inputs(meta, inputs)
        where = f"{meta.name} on the host"
        with tempfile.TemporaryDirectory(prefix="ek-host-") as scratch:
            work = Path(scratch)
            program = build_host_program(meta, Path(artifact_dir), work)
            (work / INPUT_FILE).write_bytes(blob)
            try:
                done = subprocess.run([str(program)], cwd=work, capture_output=True, text=True,
                                      timeout=options.run_timeout, env={**os.environ, **SANITIZER_ENV})
            except subprocess.TimeoutExpired:
                raise edgekit.BuildError(f"{where}: did not finish within {options.run_timeout:g} s (hang?)") from None
            report = sanitizer_report(done.stderr)
            if report:
                raise edgekit.BuildError(f"{where}: sanitizer: {report}")
            if done.returncode != 0:
                said = done.stderr.strip().splitlines()
                raise edgekit.BuildError(f"{where}: exited with status {done.returncode}"
                                         + (f": {said[0]}" if said else ""))
            data = (work / OUTPUT_FILE).read_bytes() if (work / OUTPUT_FILE).is_file() else b""
        records = unpack_outputs(meta, data, len(inputs), where)
        check_statuses(records, meta, where)
        return [edgekit.RunResult(outputs=outputs, measurements={"sanitizers": "address,undefined"})
                for outputs, _ in records]
