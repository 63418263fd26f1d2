"""MetaSchedule tuning: records in a JSON database per target under the edgekit cache directory.

Layout: ``$EDGEKIT_CACHE_DIR/tvm-tuning/<target-key>/database_{workload,tuning_record}.json`` where
``<target-key>`` hashes the ``[tvm_target]`` dict; inside, MetaSchedule keys every record by the
kernel's workload (the TIR's structural hash), so one directory serves every model on that target.
The JSON database appends each measured record as it arrives: an interrupted run (Ctrl-C) keeps
what was measured, and a second run resumes from those records (the cost model is retrained on them).
Builds open the same directory and apply it in the "zero" pipeline automatically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import edgekit

TUNING_DIR_OPTION = "tuning_dir"  # context option: another database directory
NO_TUNING_OPTION = "no_tuning"    # context option: ignore tuning records
RECORDS_FILE = "database_tuning_record.json"
WORKLOADS_FILE = "database_workload.json"
BUILD_TIMEOUT_S = 180
META_SCHEDULE_LOGGER = "tvm.s_tir.meta_schedule"
# Candidates per measured batch: small batches let a modest --trials reach every kernel.
TRIALS_PER_BATCH = 8
# On the emulated board a candidate costs ~0.3 s to link and count: 4 per batch reached all five
# autoencoder kernels in 32 trials (33 s; 8 per batch reached four in 24 s), and a Ctrl-C waits
# for at most 4 candidates.
EMULATED_TRIALS_PER_BATCH = 4


def target_key(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def database_dir(spec: dict[str, Any], override: str | None = None) -> Path:
    from edgekit.plugins.harness.cache import cache_dir

    if override:
        return Path(override)
    return cache_dir() / "tvm-tuning" / target_key(spec)


def record_count(directory: Path) -> int:
    path = directory / RECORDS_FILE
    if not path.is_file():
        return 0
    with path.open(encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def open_database(context: edgekit.BuildContext, relax_mod, tvm_target):
    """The tuning database for this target, or None (no records, or tuning turned off); and which
    kernels it decides (:func:`tuned_kernels`), for the report."""
    if context.option(NO_TUNING_OPTION):
        return None, {"tuned": [], "default_best": []}
    directory = database_dir(context.target.tvm_target, context.option(TUNING_DIR_OPTION))
    if record_count(directory) == 0:
        return None, {"tuned": [], "default_best": []}
    from tvm.s_tir import meta_schedule as ms

    database = ms.database.JSONDatabase(work_dir=str(directory), allow_missing=False)
    return database, tuned_kernels(relax_mod, tvm_target, database, context.target.tvm_target)


def fuse(relax_mod, tvm_target, database=None):
    from tvm import relax

    with tvm_target:
        if database is None:
            return relax.get_pipeline("zero")(relax_mod)
        with database:
            return relax.get_pipeline("zero")(relax_mod)


def tuned_kernels(relax_mod, tvm_target, database, spec: dict[str, Any]) -> dict[str, list[str]]:
    """Which kernels the database decides: ``tuned`` (a tuned schedule beat edgekit's default, or
    no default applies) and ``default_best`` (the best record is the default schedule itself,
    measured as a seed, see ``tuning_seed``). Compared structurally with what an untuned build
    compiles."""
    import tvm
    from tvm.s_tir import meta_schedule as ms
    from tvm_ffi import structural_equal  # TVM 0.27: moved out of tvm.ir

    from edgekit.compiler.default_schedule import apply_default_schedules, tiles_for

    relax_only = fuse(relax_mod, tvm_target)
    recorded = {str(task.task_name) for task in ms.relax_integration.extract_tasks(relax_only, tvm_target)
                if database.has_workload(task.dispatched[0])}
    untuned = (apply_default_schedules(fuse(relax_mod, tvm_target), tiles_for(spec))
               if spec.get("kind") == "llvm" else relax_only)  # GPU builds use dlight, not these
    applied = fuse(relax_mod, tvm_target, database)
    names = {g.name_hint for g in untuned.get_global_vars()}
    decided: dict[str, list[str]] = {"tuned": [], "default_best": []}
    for gv, func in applied.functions.items():
        if not isinstance(func, tvm.tirx.PrimFunc) or gv.name_hint not in names:
            continue
        if not structural_equal(func, untuned[gv.name_hint]):
            decided["tuned"].append(gv.name_hint)
        elif gv.name_hint in recorded:
            decided["default_best"].append(gv.name_hint)
    return {k: sorted(v) for k, v in decided.items()}


def tune(model, target: edgekit.Target, trials: int, directory: Path, rpc: dict[str, Any] | None = None,
         trials_per_task: int | None = None, *, progress=None, stop=None,
         trials_per_batch: int | None = None) -> dict[str, Any]:
    """Run MetaSchedule on every fused kernel of ``model`` for ``target``; records go to ``directory``.

    Host targets measure by time with the local runner; ``rpc`` (tracker host, port, key) measures
    on a device registered with a TVM RPC tracker instead; a Cortex-M target emulated by
    qemu-system-arm, or an aarch64 one run by qemu-aarch64, measures executed instructions
    (:mod:`edgekit.compiler.tune_qemu`).
    ``progress`` is a MetaSchedule measure callback run after the database commit of each batch;
    ``stop`` (a :class:`~edgekit.compiler.tune_qemu.StopRequest`) lets the emulated runner finish a
    batch a Ctrl-C interrupted.
    """
    from tvm.s_tir import meta_schedule as ms

    from edgekit.compiler.importer import import_onnx
    from edgekit.compiler.lower import tvm_target
    from edgekit.compiler.tuning_seed import seed_default_schedules

    spec = target.tvm_target
    if spec.get("kind") != "llvm":
        raise edgekit.UsageError(f"target '{target.name}': tuning supports CPU (llvm) targets here, "
                                 f"not kind '{spec.get('kind')}'")
    builder, runner, tgt = _measurement(target, rpc, stop)
    if trials_per_batch is None:
        trials_per_batch = EMULATED_TRIALS_PER_BATCH if measured_by_emulator(target, rpc) else TRIALS_PER_BATCH
    fused = fuse(import_onnx(model), tvm_target(spec))
    directory.mkdir(parents=True, exist_ok=True)
    before = record_count(directory)
    import_tensor_intrinsics()
    callbacks = list(ms.measure_callback.MeasureCallback.create("default"))
    if progress is not None:
        # Right after AddToDatabase (first of the defaults): what it reports is committed, and a
        # stop takes effect before the cost model retrains (a second or more per batch).
        callbacks.insert(1, progress)
    try:
        # The default schedules first, measured like any candidate: the best record is then never
        # worse than what an untuned build runs, and the search starts from them.
        seeded, seed_errors = seed_default_schedules(
            fused, tgt, spec, ms.database.JSONDatabase(work_dir=str(directory)), builder, runner)
        with _unnamed_log_handlers_set_aside():
            ms.relax_integration.tune_relax(
                mod=fused, params={}, target=tgt, work_dir=str(directory), max_trials_global=trials,
                max_trials_per_task=trials_per_task, num_trials_per_iter=min(trials, trials_per_batch),
                builder=builder, runner=runner, measure_callbacks=callbacks, seed=0)
    finally:
        if hasattr(runner, "shutdown"):
            runner.shutdown()
        if hasattr(builder, "cleanup"):
            builder.cleanup()
    return {"directory": str(directory), "records_before": before, "records_after": record_count(directory),
            "default_schedules_measured": seeded, "default_schedule_errors": seed_errors}


@contextlib.contextmanager
def _unnamed_log_handlers_set_aside():
    """MetaSchedule's ``create_loggers`` names every handler already on its logger in a logging
    dictConfig; an unnamed one (pytest's log capture attaches some) makes it fail with
    "'NoneType' object has no attribute 'format'". They are set aside while tuning runs."""
    logger = logging.getLogger(META_SCHEDULE_LOGGER)
    unnamed = [h for h in logger.handlers if not h.get_name()]
    for handler in unnamed:
        logger.removeHandler(handler)
    try:
        yield
    finally:
        for handler in unnamed:
            logger.addHandler(handler)


def tuning_target(target: edgekit.Target, rpc: dict[str, Any] | None = None):
    """The Target MetaSchedule tunes for: the ``[tvm_target]`` builds use, plus the ``num-cores``
    MetaSchedule requires (parallel loop extents): 1 when QEMU measures (the drivers run parallel
    loops serially, on one core), the measuring machine's cores on a host, 4 on an RPC device
    unless the profile says."""
    import os

    from edgekit.compiler.lower import tvm_target

    spec = target.tvm_target
    if measured_by_emulator(target, rpc):
        cores = 1
    else:
        cores = int(spec.get("num-cores", 4 if rpc else os.cpu_count() or 1))
    return tvm_target({**spec, "num-cores": cores})


def is_emulated_mcu(target: edgekit.Target) -> bool:
    """A Cortex-M profile with an emulated board (qemu-system-arm)."""
    return (str(target.tvm_target.get("mtriple", "")).startswith("thumb")
            and target.emulator.program == "qemu-system-arm" and bool(target.emulator.machine))


def is_emulated_aarch64(target: edgekit.Target) -> bool:
    """An aarch64 Linux profile run under qemu-aarch64 (user mode)."""
    return (str(target.tvm_target.get("mtriple", "")).startswith("aarch64")
            and target.emulator.program == "qemu-aarch64")


def measured_by_emulator(target: edgekit.Target, rpc: dict[str, Any] | None = None) -> bool:
    """Whether candidates are scored by instructions counted in QEMU (no RPC device given)."""
    return not rpc and (is_emulated_mcu(target) or is_emulated_aarch64(target))


def _measurement(target: edgekit.Target, rpc: dict[str, Any] | None, stop):
    """(builder, runner, tuning target) for where the candidates are measured."""
    from tvm.s_tir import meta_schedule as ms

    spec = target.tvm_target
    tgt = tuning_target(target, rpc)
    if rpc:
        runner = ms.runner.RPCRunner(rpc_config=ms.runner.RPCConfig(
            tracker_host=rpc["host"], tracker_port=int(rpc["port"]), tracker_key=rpc["key"],
            session_timeout_sec=120))
        builder: Any = ms.builder.LocalBuilder(timeout_sec=BUILD_TIMEOUT_S)
        if spec.get("mtriple", "").startswith("aarch64"):
            builder = ms.builder.LocalBuilder(f_export=_cross_export(target.toolchain.cc),
                                              timeout_sec=BUILD_TIMEOUT_S)
        return builder, runner, tgt
    if measured_by_emulator(target):
        from edgekit.compiler import tune_qemu

        builder = tune_qemu.object_builder()
        if stop is not None:
            stop.cleanups.append(builder.cleanup)
        return builder, tune_qemu.qemu_runner(target, stop), tgt
    if target.emulator.program:
        raise edgekit.UsageError(f"target '{target.name}' runs under {target.emulator.program}: tune it "
                                 "through a device with --rpc-tracker HOST:PORT --rpc-key KEY")
    # Worker processes import TVM first (seconds each on a small machine): MetaSchedule's default
    # 30 s build timeout killed every candidate of a one-kernel model here, so allow more.
    return (ms.builder.LocalBuilder(timeout_sec=BUILD_TIMEOUT_S),
            ms.runner.LocalRunner(timeout_sec=BUILD_TIMEOUT_S), tgt)


def import_tensor_intrinsics() -> None:
    """Import ``tvm.s_tir.tensor_intrin`` (MetaSchedule's TuneContext does on first use) quickly.

    Its ~250 TVMScript functions each call ``inspect.stack()``; for every import-machinery frame
    (``<frozen importlib._bootstrap>``, no file on disk) ``inspect.getmodule`` scans all of
    ``sys.modules``, which took 22 s here. Seeding inspect's file-to-module cache for those two
    frozen modules makes it 5 s; the lookups find no source either way."""
    import inspect
    import os
    import sys

    if "tvm.s_tir.tensor_intrin" in sys.modules:
        return
    for name in ("importlib._bootstrap", "importlib._bootstrap_external"):
        frozen = f"<frozen {name}>"
        inspect.modulesbyfile.setdefault(frozen, name)
        inspect.modulesbyfile.setdefault(os.path.normcase(os.path.abspath(frozen)), name)
    import tvm.s_tir.tensor_intrin  # noqa: F401


def _cross_export(cc: str):
    """A MetaSchedule export function cross-compiling candidate kernels with ``cc``."""
    import os
    import tempfile

    import tvm

    def export(mod) -> str:
        path = os.path.join(tempfile.mkdtemp(prefix="ek-ms-"), "tvm_tmp_mod.so")
        mod.export_library(path, fcompile=tvm.support.cc.cross_compiler(cc))
        return path

    return export
