"""MetaSchedule measurement under QEMU: candidates scored by the instructions they execute.

Technique: :class:`ObjectBuilder` compiles each candidate PrimFunc in-process exactly as builds
compile kernels (``tvm.compile`` under ``opt_level=3`` and ``tirx.disable_assert``) into a
relocatable object (Thumb for Cortex-M, AArch64) whose packed entry point is ``__tvm_ffi_main``.
:class:`QemuCountRunner` links that object with a generated ``main()`` (static aligned argument
buffers filled by an LCG, one packed call between ``ek_harness_begin``/``ek_harness_end``, the
runtime shims of the mcu-c driver): on Cortex-M through the harness's :func:`build_program` and
run on the target's QEMU board, on aarch64 as a static Linux program under qemu-aarch64; the
counting plugin counts the instructions between the markers. Candidates of a batch run on a
thread pool (each one is a compiler and a QEMU process).

The score handed to MetaSchedule is ``run_secs = [instructions / 1e9]``: MetaSchedule minimises
``run_secs``; the value is an instruction count, scaled, and is not a time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import edgekit

ENTRY = "__tvm_ffi_main"
MARKERS = ("ek_harness_begin", "ek_harness_end")
OBJECT_NAME = "candidate.o"
WORKSPACE_BYTES = 512 * 1024  # the bump allocator's region; a candidate that wants more returns nonzero
BUFFER_ALIGN = 64
SCALE = 1e9                   # run_secs = instructions / SCALE (a scaled count, not seconds)
RUN_TIMEOUT_S = 120.0
MAX_WORKERS = 2               # the machine has 2 cores; each candidate is a gcc and a QEMU process
_NOISE = "Set native vector bits"
_DL_CODES = {"int": 0, "uint": 1, "float": 2, "bool": 6}


def build_candidate(mod, target):
    """Compile one candidate as builds compile kernels (see ``lower.build_kernels``)."""
    import tvm
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    # As MetaSchedule's default_build: measure with the weight layout rewrite taken out of the kernel.
    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    with tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True}), _quiet_llvm():
        return tvm.compile(mod, target=target)


@contextlib.contextmanager
def _quiet_llvm():
    """TVM's C++ logs one "Set native vector bits" warning per Thumb compile straight to file
    descriptor 2: hundreds of lines over a tuning run. Capture fd 2 during the compile and pass on
    every other line."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines(keepends=True):
                if _NOISE not in line:
                    sys.stderr.write(line)


def export_object(executable, directory: str | None = None) -> str:
    """Write the candidate's kernels as a relocatable object in a fresh directory; returns its path."""
    path = os.path.join(directory or tempfile.mkdtemp(prefix="ek-ms-"), OBJECT_NAME)
    executable.mod.write_to_file(path)
    return path


def _builder_classes():
    """The MetaSchedule subclasses, defined on first use: TVM is imported lazily."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    @derived_object
    class ObjectBuilder(ms.builder.PyBuilder):
        """Builds candidates in this process, one after another: a kernel compiles in ~50 ms, while
        LocalBuilder's worker pool restarts (and re-imports TVM) for every batch. Each candidate
        gets a directory in one scratch directory (MetaSchedule's RemoveBuildArtifact deletes it
        after the measurement; :meth:`cleanup` deletes what an interruption left)."""

        def __init__(self) -> None:
            super().__init__()
            self.scratch = tempfile.mkdtemp(prefix="ek-tune-")

        def build(self, build_inputs):
            results = []
            for build_input in build_inputs:
                try:
                    directory = tempfile.mkdtemp(prefix="cand-", dir=self.scratch)
                    path = export_object(build_candidate(build_input.mod, build_input.target), directory)
                    results.append(ms.builder.BuilderResult(path, None))
                except Exception as exc:  # noqa: BLE001 - any compiler error fails this candidate only
                    results.append(ms.builder.BuilderResult(None, f"ObjectBuilder: {exc}"))
            return results

        def cleanup(self) -> None:
            shutil.rmtree(self.scratch, ignore_errors=True)

    @derived_object
    class CountFuture(ms.runner.PyRunnerFuture):
        def __init__(self, future: Future) -> None:
            super().__init__()
            self.future = future

        def done(self) -> bool:
            return self.future.done()

        def result(self):
            instructions, error = self.future.result()
            if error is not None:
                return ms.runner.RunnerResult(None, error)
            # Not a time: an instruction count scaled so MetaSchedule's minimisation applies.
            return ms.runner.RunnerResult([instructions / SCALE], None)

    @derived_object
    class QemuCountRunner(ms.runner.PyRunner):
        """Scores each candidate by the instructions one call executes under QEMU."""

        def __init__(self, target: edgekit.Target, stop: StopRequest | None = None,
                     max_workers: int = MAX_WORKERS, keep_dirs: bool = False) -> None:
            super().__init__()
            self.target = target
            self.stop = stop or StopRequest()
            self.keep_dirs = keep_dirs
            self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ek-qemu")

        def run(self, runner_inputs):
            return [CountFuture(self.pool.submit(self._measure, ri.artifact_path, _arg_specs(ri.args_info)))
                    for ri in runner_inputs]

        def _measure(self, artifact: str, specs: list[tuple[str, list[int]]]) -> tuple[int | None, str | None]:
            # A first Ctrl-C also reaches gcc and QEMU (one process group): the candidate is measured
            # again, so the batch in flight is committed whole rather than as fake failures.
            for attempt in range(3):
                seen = self.stop.count
                try:
                    return measure_object(Path(artifact), specs, self.target, keep_dir=self.keep_dirs), None
                except edgekit.EdgekitError as exc:
                    if self.stop.count != seen and attempt < 2:
                        continue
                    return None, f"QemuCountRunner: {exc}"
            raise AssertionError("unreachable")

        def shutdown(self) -> None:
            self.pool.shutdown(wait=True)

    return ObjectBuilder, QemuCountRunner


class StopRequest:
    """Ctrl-C presses seen while tuning (set by the tune command's SIGINT handler)."""

    def __init__(self) -> None:
        self.count = 0
        self.cleanups: list = []  # run before the process exits on an abandoning second Ctrl-C
        self._lock = threading.Lock()

    def press(self) -> int:
        with self._lock:
            self.count += 1
            return self.count

    @property
    def requested(self) -> bool:
        return self.count > 0


def object_builder():
    return _builder_classes()[0]()


def qemu_runner(target: edgekit.Target, stop: StopRequest | None = None, **kwargs):
    return _builder_classes()[1](target, stop, **kwargs)


def _arg_specs(args_info) -> list[tuple[str, list[int]]]:
    """(dtype, shape) per argument, from MetaSchedule's ``ArgInfo`` JSON (``["TENSOR", dtype, shape]``)."""
    specs = []
    for info in args_info:
        kind, dtype, shape = info.as_json()
        if kind != "TENSOR":
            raise edgekit.BuildError(f"candidate argument of kind {kind}: only tensors are supported")
        specs.append((str(dtype), [int(d) for d in shape]))
    return specs


def harness_source(specs: list[tuple[str, list[int]]], kernel_symbols: set[str]) -> str:
    """``main()`` for one candidate: buffers, LCG fill, one packed call between the markers."""
    from edgekit.compiler.mcu_driver import _runtime_shims

    out = ["/* Generated by edgekit: one MetaSchedule candidate, measured between the markers. */",
           "#include <stddef.h>", "#include <stdint.h>", '#include "ek_harness.h"', '#include "ek_tvm_abi.h"', "",
           f"int {ENTRY}(void *self, const ek_tvm_any *args, int32_t num_args, ek_tvm_any *result);",
           f"static uint8_t ek_workspace[{WORKSPACE_BYTES}] __attribute__((aligned({BUFFER_ALIGN})));", ""]
    out += _runtime_shims(kernel_symbols | {"__TVMBackendAllocWorkspace"})
    out += ["", "static uint32_t ek_lcg = 12345u;",
            "static uint32_t ek_next(void) { ek_lcg = ek_lcg * 1664525u + 1013904223u; return ek_lcg >> 8; }", ""]
    fills = []
    for i, (dtype, shape) in enumerate(specs):
        ctype, code, bits = _c_type(dtype)
        count = 1
        for d in shape:
            count *= d
        dims = ", ".join(str(d) for d in shape) or "1"
        out += [f"static {ctype} buf{i}[{max(count, 1)}] __attribute__((aligned({BUFFER_ALIGN})));",
                f"static int64_t shape{i}[] = {{{dims}}};",
                f"static ek_dl_tensor t{i} = {{buf{i}, {{EK_DL_CPU, 0}}, {len(shape)}, {{{code}, {bits}, 1}}, "
                f"shape{i}, NULL, 0}};"]
        # Floats in [-1, 1); integers small (0..7 signed around zero): no overflow, no denormals.
        value = ("(float)((int32_t)(ek_next() & 0xFFFFu) - 32768) / 32768.0f" if code == 2
                 else f"({ctype})((int32_t)(ek_next() & 7u) - 3)")
        fills.append(f"  for (i = 0; i < {count}; ++i) buf{i}[i] = {value};")
    out += ["", "int main(void) {", "  uint32_t i;", f"  ek_tvm_any args[{max(len(specs), 1)}];",
            "  ek_tvm_any result;", "  int status;", *fills]
    for i in range(len(specs)):
        out += [f"  args[{i}].type_index = EK_TVM_DLTENSOR_PTR;", f"  args[{i}].zero_padding = 0;",
                f"  args[{i}].v.v_ptr = &t{i};"]
    out += ["  result.type_index = EK_TVM_NONE;", "  result.zero_padding = 0;", "  result.v.v_int64 = 0;",
            f"  ek_workspace_open(ek_workspace, {WORKSPACE_BYTES}u);",
            "  ek_harness_begin();",
            f"  status = {ENTRY}(NULL, args, {len(specs)}, &result);",
            "  ek_harness_end();",
            "  ek_workspace_close();",
            "  return status == 0 ? 0 : 1;", "}", ""]
    return "\n".join(out)


def _c_type(dtype: str) -> tuple[str, int, int]:
    """C element type, DLPack type code and bits of a TVM dtype string."""
    kind = dtype.rstrip("0123456789")
    bits = int(dtype[len(kind):] or 32) if kind != "bool" else 8
    if kind not in _DL_CODES or bits not in (8, 16, 32, 64) or (kind == "float" and bits not in (32, 64)):
        raise edgekit.BuildError(f"candidate argument dtype {dtype} is not supported by the QEMU runner")
    if kind == "float":
        return ("float" if bits == 32 else "double"), 2, bits
    return f"{'u' if kind in ('uint', 'bool') else ''}int{bits}_t", _DL_CODES[kind], bits


def measure_object(obj: Path, specs: list[tuple[str, list[int]]], target: edgekit.Target,
                   keep_dir: bool = False) -> int:
    """Instructions one call of the candidate in ``obj`` executes on ``target``'s emulator.
    A build failure, a fault, a nonzero status or a missing count raises :class:`edgekit.BuildError`."""
    from edgekit.compiler.mcu_driver import ABI_HEADER, abi_header
    from edgekit.compiler.mcu_library import _use_aeabi_helpers

    if not obj.is_file():
        raise edgekit.BuildError(f"{obj}: candidate object missing")
    work = Path(tempfile.mkdtemp(prefix="run-", dir=obj.parent))
    try:
        # Soft-float Thumb-1 objects (Cortex-M0+) call GNU helper names libgcc lacks: renamed as builds do.
        symbols = _use_aeabi_helpers(target, obj.parent, obj.name)
        if ENTRY not in symbols:
            raise edgekit.BuildError(f"{obj.name}: no {ENTRY} entry point")
        (work / ABI_HEADER).write_text(abi_header(), encoding="utf-8")
        (work / "main.c").write_text(harness_source(specs, symbols), encoding="utf-8")
        if target.emulator.program == "qemu-aarch64":
            run = _run_linux_user(work, obj, target)
        else:
            run = _run_on_board(work, obj, target)
        if run.exit_code != 0:
            detail = (run.stderr or run.stdout).strip().splitlines()
            raise edgekit.BuildError(f"candidate exited with status {run.exit_code}"
                                     + (f": {detail[-1]}" if detail else ""))
        spans = run.between(*MARKERS)
        if len(spans) != 1 or spans[0] <= 0:
            raise edgekit.BuildError(f"candidate run gave no instruction count between the markers ({spans})")
        return spans[0]
    finally:
        if not keep_dir:
            shutil.rmtree(work, ignore_errors=True)


def _run_on_board(work: Path, obj: Path, target: edgekit.Target):
    """Bare-metal firmware (the harness start-up; the exit status comes back over the UART, no
    semihosting) on the QEMU board."""
    from edgekit.plugins.harness.compile import sibling_tool
    from edgekit.plugins.harness.counting import run_counted
    from edgekit.plugins.harness.firmware import build_program

    # build_program links sources only: the candidate object rides on the toolchain's link flags.
    linking = dataclasses.replace(target, toolchain=dataclasses.replace(
        target.toolchain, ldflags=(*target.toolchain.ldflags, str(obj.resolve()))))
    firmware = build_program([work / "main.c"], linking, work / "build", include_dirs=(work,))
    emu = target.emulator
    return run_counted(firmware.elf, machine=emu.machine, cpu=emu.cpu, program=emu.program, marks=list(MARKERS),
                       timeout=RUN_TIMEOUT_S, nm=sibling_tool(target.toolchain.cc, "nm"))


def _run_linux_user(work: Path, obj: Path, target: edgekit.Target):
    """A static, position-dependent Linux program (marker symbols keep their addresses) under
    qemu-aarch64."""
    from edgekit.plugins.harness.compile import WARNINGS, require_tool, run_tool, sibling_tool
    from edgekit.plugins.harness.counting import run_counted_user
    from edgekit.plugins.harness.firmware import FIRMWARE_DIR

    cc = require_tool(target.toolchain.cc, f"link candidates for {target.name}")
    program = work / "candidate"
    run_tool([cc, *target.toolchain.cflags, "-O2", *WARNINGS, f"-I{work}", f"-I{FIRMWARE_DIR}", "-static", "-no-pie",
              "main.c", str(FIRMWARE_DIR / "ek_markers.c"), str(obj.resolve()), *target.toolchain.ldflags, "-lm",
              "-o", str(program)], f"linking a candidate for {target.name}", cwd=work)
    return run_counted_user(program, marks=list(MARKERS), program=target.emulator.program, cpu=target.emulator.cpu,
                            timeout=RUN_TIMEOUT_S, nm=sibling_tool(cc, "nm"))


def measure_primfunc(func, target: edgekit.Target) -> int:
    """Instructions of one call of the PrimFunc ``func`` (as given, or as scheduled) on the board."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from edgekit.compiler.tuning import tuning_target

    func = func.with_attr("global_symbol", "main")
    obj = Path(export_object(build_candidate(tvm.IRModule({"main": func}), tuning_target(target))))
    try:
        return measure_object(obj, _arg_specs(ms.arg_info.ArgInfo.from_prim_func(func)), target)
    finally:
        shutil.rmtree(obj.parent, ignore_errors=True)


def kernel_report(fused_mod, target: edgekit.Target, database) -> list[dict]:
    """Per tuned kernel: instructions as Relax legalizes it, with edgekit's default schedule (what an
    untuned build compiles, when a rule applies) and the best record in ``database``."""
    from tvm.s_tir import meta_schedule as ms

    from edgekit.compiler.default_schedule import schedule_kernel, tiles_for
    from edgekit.compiler.tuning import tuning_target

    rows = []
    for task in ms.relax_integration.extract_tasks(fused_mod, tuning_target(target)):
        mod = task.dispatched[0]
        if not database.has_workload(mod):
            continue
        top = database.get_top_k(database.commit_workload(mod), 1)
        if not top or not top[0].run_secs:
            continue
        func = mod["main"]
        scheduled = schedule_kernel(func, tiles_for(target.tvm_target))
        default = scheduled.mod["main"] if scheduled is not None else None
        rows.append({"kernel": str(task.task_name), "calls": int(task.weight),
                     "relax_instructions": measure_primfunc(func, target),
                     "default_schedule_instructions": measure_primfunc(default, target) if default is not None else None,
                     "best_instructions": round(float(top[0].run_secs[0]) * SCALE)})
    return rows
