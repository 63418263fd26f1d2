"""``edgekit tune MODEL --target T --trials N``: MetaSchedule records for later builds.

The model goes through the same front end and pass pipeline as ``edgekit build``, so the tuned
workloads are exactly the kernels a build compiles. Ctrl-C stops tuning and keeps every record
measured so far (the JSON database appends as it goes); running again resumes from them.
"""

from __future__ import annotations

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


@click.command("tune")
@click.argument("model")
@click.option("--target", "-t", "target_name", required=True, help="target profile (its [tvm_target] is tuned)")
@click.option("--trials", type=click.IntRange(1), default=64, show_default=True,
              help="measured candidates in total over all kernels")
@click.option("--trials-per-task", type=click.IntRange(1), default=None, help="cap per kernel")
@click.option("--tuning-dir", type=click.Path(file_okay=False), default=None,
              help="database directory (default: the edgekit cache, keyed by target)")
@click.option("--input-shape", "input_shapes", multiple=True, help="NAME=1,3,32,32 for dynamic inputs")
@click.option("--rpc-tracker", default=None, help="HOST:PORT of a TVM RPC tracker: measure on its devices")
@click.option("--rpc-key", default=None, help="device key registered with the tracker")
@handle_errors
def tune_command(model, target_name, trials, trials_per_task, tuning_dir, input_shapes, rpc_tracker, rpc_key):
    """Tune MODEL's kernels for a TVM target with MetaSchedule; builds reuse the records."""
    from pathlib import Path

    from edgekit.compiler import tuning
    from edgekit.compiler.backend import TvmBackend

    rpc = _rpc(rpc_tracker, rpc_key)
    onnx_model, target, context = prepare_model(model, target_name, input_shapes)
    TvmBackend().check(onnx_model, context)
    directory = Path(tuning_dir) if tuning_dir else tuning.database_dir(target.tvm_target)
    click.echo(f"tuning {model} for {target.name}: {trials} trials, database {directory}", err=True)
    try:
        result = tuning.tune(onnx_model, target, trials, directory, rpc, trials_per_task)
    except KeyboardInterrupt:
        click.echo(f"interrupted: {tuning.record_count(directory)} records kept in {directory}; "
                   "run again to resume", err=True)
        raise
    click.echo(f"{result['records_after'] - result['records_before']} new records "
               f"({result['records_after']} in {result['directory']})")
