"""MetaSchedule tuning: records in a JSON database per target under the edgekit cache directory.

Layout: ``$EDGEKIT_CACHE_DIR/tvm-tuning/<target-key>/database_{workload,tuning_record}.json`` where
``<target-key>`` hashes the ``[tvm_target]`` dict; inside, MetaSchedule keys every record by the
kernel's workload (the TIR's structural hash), so one directory serves every model on that target.
The JSON database appends each measured record as it arrives: an interrupted run (Ctrl-C) keeps
what was measured, and a second run resumes from those records (the cost model is retrained on them).
Builds open the same directory and apply it in the "zero" pipeline automatically.

Concurrent use (several ``edgekit tune`` runs for one target, builds reading meanwhile): the JSON
database refers to a workload by its line in ``database_workload.json`` and keeps that index in
memory from when it was opened, so two processes appending new workloads to one directory both
call theirs line N, and the other's records point at the wrong kernel (loading then fails, or,
where the trace happens to replay, one kernel's measured schedule is silently taken for another's);
a reader can also see a record whose workload line it read too early. So a tuning run
writes into a private copy of the database (:class:`PrivateCopy`) and after each batch appends
what it committed to the shared files, re-indexing the workloads, under an exclusive ``flock`` of
``database.lock``; readers load under the shared lock (:func:`load_database`). The shared files
keep TVM's format and still grow batch by batch, so an interrupted run keeps what was merged.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import edgekit

TUNING_DIR_OPTION = "tuning_dir"  # context option: another database directory
NO_TUNING_OPTION = "no_tuning"    # context option: ignore tuning records
RECORDS_FILE = "database_tuning_record.json"
WORKLOADS_FILE = "database_workload.json"
LOCK_FILE = "database.lock"
# A record line as TVM writes it: "[<workload line index>,[trace, run_secs, target, args]]".
RECORD_WORKLOAD_INDEX = re.compile(rb"^\[(\d+),")
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
        return sum(1 for line in f if line.endswith("\n") and line.strip())


@contextlib.contextmanager
def locked(directory: Path, exclusive: bool):
    """Hold ``flock`` on the database's lock file: exclusive to append, shared to load.

    A directory that does not exist or where the lock file cannot be created (a read-only copy of
    a database) is read unlocked: no edgekit process can be writing there."""
    handle = _open_lock(directory / LOCK_FILE, exclusive)
    if handle is None:
        yield
        return
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield  # closing the file releases the lock


def _open_lock(path: Path, exclusive: bool):
    try:
        return path.open("a+b")  # created on first use
    except OSError:
        if exclusive:
            raise
    try:
        return path.open("rb")
    except OSError:
        return None


def load_database(directory: Path):
    """The JSON database of ``directory``, read under the shared lock (no half-merged batch)."""
    from tvm.s_tir import meta_schedule as ms

    with locked(directory, exclusive=False):
        return ms.database.JSONDatabase(work_dir=str(directory), allow_missing=False)


def _whole_lines(path: Path) -> list[bytes]:
    """The newline-terminated lines of ``path`` (none if missing); a partial last line is left out."""
    if not path.is_file():
        return []
    return path.read_bytes().split(b"\n")[:-1]


def _append(path: Path, lines: list[bytes]) -> None:
    """Append whole lines, first dropping a partial last line (a writer killed mid-write)."""
    with path.open("a+b", buffering=0) as f:
        size = f.seek(0, 2)
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                f.seek(0)
                f.truncate(f.read().rfind(b"\n") + 1)
        data = b"".join(line + b"\n" for line in lines)
        while data:
            data = data[f.write(data):]


class PrivateCopy:
    """A tuning run's own JSON database, copied from the shared one, merged back batch by batch.

    MetaSchedule reads the copy (seeds are skipped and the cost model is trained on every record
    the shared database had, as a resumed run expects) and appends to it alone; :meth:`merge`
    moves what it appended since the last merge into the shared files under the exclusive lock,
    each record pointing at its workload's line there (the shared line of an identical workload,
    or a new one). Use as a context manager: the copy is a temporary directory."""

    def __init__(self, shared: Path):
        self.shared = Path(shared)
        self.shared.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="ek-tune-"))
        with locked(self.shared, exclusive=False):
            for name in (WORKLOADS_FILE, RECORDS_FILE):
                (self.work / name).write_bytes(b"".join(l + b"\n" for l in _whole_lines(self.shared / name)))
        self.merged = len(_whole_lines(self.work / RECORDS_FILE))  # lines of the copy already shared
        self.new_records = 0
        self._database = None

    def database(self):
        """The MetaSchedule database of the copy (one object: seeding and the search share it)."""
        from tvm.s_tir import meta_schedule as ms

        if self._database is None:
            self._database = ms.database.JSONDatabase(work_dir=str(self.work))
        return self._database

    def merge(self) -> int:
        """Append the records committed to the copy since the last merge to the shared database;
        returns how many."""
        records = _whole_lines(self.work / RECORDS_FILE)[self.merged:]
        if not records:
            return 0
        private = _whole_lines(self.work / WORKLOADS_FILE)
        with locked(self.shared, exclusive=True):
            shared = _whole_lines(self.shared / WORKLOADS_FILE)
            index = {line: i for i, line in reversed(list(enumerate(shared)))}  # first occurrence
            added: list[bytes] = []

            def shared_index(match: re.Match) -> bytes:
                workload = private[int(match[1])]
                if workload not in index:
                    index[workload] = len(shared) + len(added)
                    added.append(workload)
                return b"[%d," % index[workload]

            lines = [RECORD_WORKLOAD_INDEX.sub(shared_index, line, count=1) for line in records]
            _append(self.shared / WORKLOADS_FILE, added)  # workloads first: no record before its workload
            _append(self.shared / RECORDS_FILE, lines)
        self.merged += len(records)
        self.new_records += len(records)
        return len(records)

    def __enter__(self) -> PrivateCopy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove the copy (whatever was not merged by now is dropped)."""
        shutil.rmtree(self.work, ignore_errors=True)


def merge_callback(copy: PrivateCopy):
    """A MetaSchedule measure callback merging each committed batch into the shared database."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    @derived_object
    class MergeCallback(ms.measure_callback.PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            copy.merge()

    return MergeCallback()


def open_database(context: edgekit.BuildContext, relax_mod, tvm_target):
    """The tuning database for this target, or None (no records, or tuning turned off); and which
    kernels it decides (:func:`tuned_kernels`), for the report."""
    if context.option(NO_TUNING_OPTION):
        return None, {"tuned": [], "default_best": []}
    directory = database_dir(context.target.tvm_target, context.option(TUNING_DIR_OPTION))
    if record_count(directory) == 0:
        return None, {"tuned": [], "default_best": []}
    database = load_database(directory)
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
         trials_per_batch: int | None = None, copy: PrivateCopy | None = None) -> dict[str, Any]:
    """Run MetaSchedule on every fused kernel of ``model`` for ``target``; records go to ``directory``
    through a :class:`PrivateCopy` of it (``copy``, which the caller then owns, or one of its own),
    merged after every batch.

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
    import_tensor_intrinsics()
    with contextlib.ExitStack() as owned:
        if copy is None:
            copy = owned.enter_context(PrivateCopy(directory))
        # Right after AddToDatabase (first of the defaults) the batch is in the copy: merged at
        # once, then reported as committed; a stop takes effect before the cost model retrains.
        callbacks = list(ms.measure_callback.MeasureCallback.create("default"))
        callbacks[1:1] = [merge_callback(copy)] + ([progress] if progress is not None else [])
        try:
            # The default schedules first, measured like any candidate: the best record is then
            # never worse than what an untuned build runs, and the search starts from them.
            seeded, seed_errors = seed_default_schedules(fused, tgt, spec, copy.database(), builder, runner)
            copy.merge()
            with _unnamed_log_handlers_set_aside():  # logs stay in the shared directory's logs/
                ms.relax_integration.tune_relax(
                    mod=fused, params={}, target=tgt, work_dir=str(directory), max_trials_global=trials,
                    max_trials_per_task=trials_per_task, num_trials_per_iter=min(trials, trials_per_batch),
                    builder=builder, runner=runner, database=copy.database(), measure_callbacks=callbacks,
                    seed=0)
        finally:
            copy.merge()  # a batch committed just before an interruption
            if hasattr(runner, "shutdown"):
                runner.shutdown()
            if hasattr(builder, "cleanup"):
                builder.cleanup()
        return {"directory": str(directory), "new_records": copy.new_records,
                "records_after": record_count(directory),
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
