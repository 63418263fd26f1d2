"""The pass pipeline: run passes in order, verifying each one against its input model.

After every pass: ``onnx.checker``, strict shape inference, and an onnxruntime run of the pass's
output on the build's verification inputs, compared with the outputs of the pass's input model
under the pass's declared tolerance. The accumulated error against the original model is recorded
too. A pass that breaks numerics fails the build naming the pass, the output and the error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import onnx

from edgekit.errors import BuildError, EdgekitError, PluginError, UsageError, one_line
from edgekit.model import infer_shapes, model_stats
from edgekit.passes import PassRecord
from edgekit.verify import compare, run_onnxruntime, sqnr_db

if TYPE_CHECKING:
    from edgekit.context import BuildContext
    from edgekit.passes import Pass

ProgressCallback = Callable[[str], None]


def check_needs(passes: Sequence[Pass], context: BuildContext) -> None:
    """Refuse a pass whose declared needs the context cannot meet, before any pass runs."""
    for pass_ in passes:
        missing = sorted(need for need in pass_.needs if context.option(need) is None)
        if missing:
            raise UsageError(f"pass '{pass_.name}' needs {', '.join(missing)}; give it with "
                             f"--{missing[0].replace('_', '-')} or drop the pass")


def run_pipeline(model: onnx.ModelProto, passes: Sequence[Pass], context: BuildContext,
                 progress: ProgressCallback | None = None) -> onnx.ModelProto:
    check_needs(passes, context)
    host = context.registry.host
    original_outputs = run_onnxruntime(model, context.inputs, "input model", error=UsageError)
    context.section("verification")["reference_outputs"] = sorted(original_outputs[0]) if original_outputs else []
    host.notify("edgekit_pipeline_started", model=model, context=context)
    records = context.report.setdefault("passes", [])
    previous_outputs = original_outputs
    for pass_ in passes:
        if progress:
            progress(pass_.name)
        host.notify("edgekit_before_pass", pass_=pass_, model=model, context=context)
        before = model_stats(model)
        snapshot = model.SerializeToString()
        start = time.perf_counter()
        result = _run_one(pass_, model, context)
        seconds = time.perf_counter() - start
        _check_model(pass_, result)
        outputs = run_onnxruntime(result, context.inputs, f"model after pass '{pass_.name}'")
        step = compare(previous_outputs, outputs, pass_.tolerance)
        if not pass_.approximate and not step.within():
            raise BuildError(_numerics_message(pass_, step))
        total = compare(original_outputs, outputs)
        record = PassRecord(
            name=pass_.name, plugin=pass_.plugin, seconds=seconds, before=before, after=model_stats(result),
            max_abs_error=step.max_abs, max_rel_error=step.max_rel, max_abs_error_vs_original=total.max_abs,
            tolerance=pass_.tolerance, changed=result.SerializeToString() != snapshot,
            notes=context.take_notes(),
            sqnr_db=sqnr_db(previous_outputs, outputs) if pass_.approximate else None)
        records.append(record.as_dict())
        host.notify("edgekit_after_pass", pass_=pass_, model=result, context=context, record=record)
        model, previous_outputs = result, outputs
    host.notify("edgekit_pipeline_finished", model=model, context=context)
    context.section("verification")["max_abs_error_vs_original"] = (
        compare(original_outputs, previous_outputs).max_abs)
    return model


def _run_one(pass_: Pass, model: onnx.ModelProto, context: BuildContext) -> onnx.ModelProto:
    # The pass gets its own copy: a pass that mutates its input and then fails must not corrupt ours.
    working = onnx.ModelProto()
    working.CopyFrom(model)
    try:
        result = pass_(working, context)
    except EdgekitError:
        raise
    except Exception as exc:
        raise PluginError(pass_.plugin or pass_.name,
                          f"pass '{pass_.name}' raised {type(exc).__name__}: {one_line(exc)}") from exc
    if not isinstance(result, onnx.ModelProto):
        raise PluginError(pass_.plugin or pass_.name,
                          f"pass '{pass_.name}' returned {type(result).__name__}, expected onnx.ModelProto")
    return result


def _check_model(pass_: Pass, model: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise BuildError(f"pass '{pass_.name}' produced an invalid model: {one_line(exc)}") from None
    try:
        infer_shapes(model, strict=True)
    except BuildError as exc:
        raise BuildError(f"pass '{pass_.name}' produced a model whose {exc}") from None


def _numerics_message(pass_: Pass, step) -> str:
    if step.mismatch:
        return f"pass '{pass_.name}' changed the model's outputs: {step.mismatch}"
    tol = pass_.tolerance
    return (f"pass '{pass_.name}' changed output '{step.worst_output}' beyond its tolerance: max abs error "
            f"{step.max_abs:.3g}, max rel error {step.max_rel:.3g} (tolerance atol={tol.atol:g}, rtol={tol.rtol:g})")
