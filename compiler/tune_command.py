"""``edgekit tune MODEL --target T --trials N``: MetaSchedule records for later builds.

The model goes through the same front end and pass pipeline as ``edgekit build``, so the tuned
workloads are exactly the kernels a build compiles. When QEMU measures, Ctrl-C stops tuning once
the batch in flight is measured and committed (a second Ctrl-C abandons that batch); elsewhere it
stops at once. Either way the exit status is 130, every committed record is kept (each batch is
merged into the shared database as it is committed, see :class:`~edgekit.compiler.tuning.PrivateCopy`)
and running again resumes from them. Several runs may tune into one database at once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys

import click

from edgekit.cli import _registry, handle_errors


def _rpc(tracker: str | None, key: str | None) -> dict | None:
    import edgekit

    if not tracker and not key:
        return None
    if not (tracker and key) or ":" not in tracker:
        raise edgekit.UsageError("--rpc-tracker HOST:PORT and --rpc-key KEY go together "
                                 f"(got --rpc-tracker {tracker!r}, --rpc-key {key!r})")
    host, port = tracker.rsplit(":", 1)
    if not port.isdigit():
        raise edgekit.UsageError(f"--rpc-tracker {tracker}: the port must be a number")
    return {"host": host, "port": int(port), "key": key}


def prepare_model(model: str, target_name: str, input_shapes: list[str]):
    """The model after the target's passes, as a build would hand it to the back end."""
    from edgekit.context import BuildContext
    from edgekit.frontends import ModelSource, export_to_onnx
    from edgekit.model import fix_input_shapes, validate
    from edgekit.pipeline import run_pipeline

    registry = _registry()
    target = registry.target(target_name)
    context = BuildContext(target=target, registry=registry,
                           options={"name": "model", "input_shapes": list(input_shapes), "seed": 0})
    source = ModelSource.parse(model)
    _, onnx_model = export_to_onnx(source, context)
    onnx_model = fix_input_shapes(onnx_model, list(input_shapes), source.text)
    validate(onnx_model, source.text)
    onnx_model = run_pipeline(onnx_model, registry.resolve_passes(target.passes), context, None)
    return onnx_model, target, context


def check_model(onnx_model, target, context) -> None:
    """The check of the back end that will build the tuned kernels: mcu-c's ``--kernels tvm`` for a
    Cortex-M profile, the tvm back end otherwise."""
    from edgekit.compiler import tuning

    if tuning.is_emulated_mcu(target):
        from edgekit.compiler.mcu_library import TvmMcuKernels

        TvmMcuKernels().check(onnx_model, context)
    else:
        from edgekit.compiler.backend import TvmBackend

        TvmBackend().check(onnx_model, context)


@contextlib.contextmanager
def first_interrupt_stops(stop, echo, abandon):
    """SIGINT while tuning: the first asks for a stop after the batch in flight is measured and
    committed; a second one calls ``abandon`` (which exits the process).

    A KeyboardInterrupt raised inside a Python callback that TVM's C++ scheduler is running can
    end in std::terminate (a segfault, seen here), so the handler never raises: the stop is raised
    by the measure callback between batches, and abandoning exits at once. That is safe for the
    database: Python handlers run between bytecodes of the main thread, never inside MetaSchedule's
    C++ append of a record, so every line on disk is whole."""
    def handler(signum, frame):
        if stop.press() == 1:
            echo("stopping after the batch in flight is committed (Ctrl-C again to abandon it)")
        else:
            abandon()

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (an embedding application): leave SIGINT alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@click.command("tune")
@click.argument("model")
@click.option("--target", "-t", "target_name", required=True, help="target profile (its [tvm_target] is tuned)")
@click.option("--trials", type=click.IntRange(1), default=64, show_default=True,
              help="measured candidates in total over all kernels")
@click.option("--trials-per-task", type=click.IntRange(1), default=None, help="cap per kernel")
@click.option("--batch", "trials_per_batch", type=click.IntRange(1), default=None,
              help="candidates measured per batch (default 4 on an emulated board, else 8)")
@click.option("--tuning-dir", type=click.Path(file_okay=False), default=None,
              help="database directory (default: the edgekit cache, keyed by target)")
@click.option("--input-shape", "input_shapes", multiple=True, help="NAME=1,3,32,32 for dynamic inputs")
@click.option("--rpc-tracker", default=None, help="HOST:PORT of a TVM RPC tracker: measure on its devices")
@click.option("--rpc-key", default=None, help="device key registered with the tracker")
@handle_errors
def tune_command(model, target_name, trials, trials_per_task, trials_per_batch, tuning_dir, input_shapes,
                 rpc_tracker, rpc_key):
    """Tune MODEL's kernels for a TVM target with MetaSchedule; builds reuse the records.

    Cortex-M targets (their emulated board) and aarch64 targets (qemu-aarch64) are scored by the
    instructions a candidate executes; host targets by time, --rpc-tracker devices by time."""
    from pathlib import Path

    from edgekit.compiler.requires import require_tuning

    require_tuning()
    from edgekit.compiler import tuning
    from edgekit.compiler.tune_progress import SCORE_INSTRUCTIONS, SCORE_SECONDS, TuneProgress, progress_callback
    from edgekit.compiler.tune_qemu import SCALE, StopRequest

    rpc = _rpc(rpc_tracker, rpc_key)
    onnx_model, target, context = prepare_model(model, target_name, input_shapes)
    check_model(onnx_model, target, context)
    emulated = tuning.measured_by_emulator(target, rpc)
    directory = Path(tuning_dir) if tuning_dir else tuning.database_dir(target.tvm_target)
    echo = functools.partial(click.echo, err=True)
    where = f"instructions under {target.emulator.program} {target.emulator.machine}".rstrip() if emulated else "time"
    show = sys.stderr.isatty()  # elsewhere (CI, pipes) only the final summary line
    if show:
        echo(f"tuning {model} for {target.name}: {trials} trials scored by {where}, database {directory}")
    stop = StopRequest()
    # MetaSchedule's console log (its tables speak of latency whatever the score) goes quiet; its log
    # files under the database's logs/ directory keep everything.
    logging.getLogger(tuning.META_SCHEDULE_LOGGER).setLevel(logging.WARNING)
    progress = TuneProgress(trials, score=SCORE_INSTRUCTIONS if emulated else SCORE_SECONDS,
                            scale=SCALE if emulated else 1.0, show=show, stop=stop)
    # Other tunes may share the directory: counts are this run's merged records, not the growth.
    with tuning.PrivateCopy(directory) as copy:
        try:
            # Only the emulated runner re-measures what a Ctrl-C killed; elsewhere it stops at once.
            interrupts = (first_interrupt_stops(stop, echo, lambda: _abandon(stop, copy, echo))
                          if emulated else contextlib.nullcontext())
            with interrupts, progress:
                result = tuning.tune(onnx_model, target, trials, directory, rpc, trials_per_task,
                                     progress=progress_callback(progress), stop=stop,
                                     trials_per_batch=trials_per_batch, copy=copy)
        except BaseException as exc:
            # The stop raised in the measure callback comes back through TVM's FFI, possibly re-typed.
            if not (stop.requested or isinstance(exc, KeyboardInterrupt)):
                raise
            echo(_kept_message(copy))
            sys.exit(130)
    echo(progress.summary())
    if emulated:
        _echo_kernel_report(onnx_model, target, directory)
    for kernel, why in sorted(result["default_schedule_errors"].items()):
        echo(f"default schedule of {kernel} not measured: {why}")
    click.echo(f"{result['new_records']} new records, "
               f"{len(result['default_schedules_measured'])} of them edgekit's default schedules "
               f"({result['records_after']} in {result['directory']})")


def _kept_message(copy, note: str = "") -> str:
    from edgekit.compiler import tuning

    # Counted from what was merged, not the progress: records are what a later run resumes from.
    total = tuning.record_count(copy.shared)
    return (f"interrupted: {copy.new_records} new records kept ({total} in {copy.shared}){note}; "
            "run the same command again to resume from them")


def _abandon(stop, copy, echo) -> None:
    """Second Ctrl-C: leave now, without unwinding through TVM's C++ (see first_interrupt_stops).
    No merge here: the signal may have come in the middle of one, whose lock this process holds."""
    for cleanup in stop.cleanups:
        cleanup()
    echo(_kept_message(copy, "; the batch in flight was abandoned"))
    copy.close()
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(130)


def _echo_kernel_report(onnx_model, target, directory) -> None:
    """Per tuned kernel, instructions per call: untuned (Relax's schedule, and edgekit's default
    schedule where it applies) against the best record."""
    from edgekit.compiler import tuning, tune_qemu
    from edgekit.compiler.importer import import_onnx
    from edgekit.compiler.lower import tvm_target

    fused = tuning.fuse(import_onnx(onnx_model), tvm_target(target.tvm_target))
    rows = tune_qemu.kernel_report(fused, target, tuning.load_database(directory))
    if not rows:
        return
    width = max(len(r["kernel"]) for r in rows)
    click.echo(f"{'kernel':<{width}}  calls  {'relax':>12}  {'default':>12}  {'best':>12}  (instructions per call)")
    for r in rows:
        default = r["default_schedule_instructions"]
        click.echo(f"{r['kernel']:<{width}}  {r['calls']:>5}  {r['relax_instructions']:>12,}  "
                   f"{(f'{default:,}' if default is not None else '-'):>12}  {r['best_instructions']:>12,}")
