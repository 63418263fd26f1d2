"""One build: front end → verified pass pipeline → back end → (optional) runner, into an atomic
output directory with ``report.json``. The CLI is a thin layer over :func:`build` and :func:`run`."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgekit import __version__ as edgekit_version
from edgekit.context import BuildContext
from edgekit.errors import BuildError, EdgekitError, PluginError, UsageError, one_line
from edgekit.output import atomic_directory, check_output_dir, write_json
from edgekit.passes import Tolerance
from edgekit.references import compare_with_references, judging_reference, scratch_rerun
from edgekit.registry import Registry
from edgekit.runners import lasting_options

REPORT_FILE = "report.json"
REFERENCE_MODEL = "reference.onnx"  # the pipeline's output: what the artifact must compute
REPORT_VERSION = 1
# Set to make report.json byte-reproducible: wall-clock times (TIME_KEYS, at any depth) are left out.
REPRODUCIBLE_ENV = "EDGEKIT_REPRODUCIBLE"


#: --quantize value -> the pass that does it (registered by the quantize plugin)
QUANTIZE_PASSES = {"int8": "quantize-int8", "int4": "quantize-int4"}


@dataclass
class BuildRequest:
    model: str
    target: str
    output: Path
    passes: list[str] | None = None
    input_shapes: list[str] = field(default_factory=list)
    inputs_file: str | None = None
    run: bool = False
    name: str = "model"
    seed: int = 0
    verify_samples: int = 1
    backend: str | None = None  # overrides the target profile's back end
    options: dict[str, Any] = field(default_factory=dict)
    quantize: str | None = None  # "int8": the quantize plugin's pass runs after the target's passes
    force: bool = False  # replace an existing non-empty output directory that edgekit did not write
    config_file: Path | None = None  # the settings file used, which the output must not replace


def build(request: BuildRequest, registry: Registry,
          progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Build ``request`` and return the report (also written to ``OUT/report.json``)."""
    from edgekit.frontends import ModelSource, export_to_onnx
    from edgekit.model import fix_input_shapes, graph_inputs, model_stats, op_counts, validate
    from edgekit.pipeline import run_pipeline
    from edgekit.verify import load_inputs, random_inputs

    started = time.perf_counter()
    check_output_dir(request.output, _input_files(request), request.force)
    target = registry.target(request.target)
    backend = registry.get("backends", request.backend or target.backend)
    runner = _runner_for(registry, target, backend) if request.run else None
    names = list(request.passes if request.passes is not None else target.passes)
    if request.quantize:
        if request.quantize not in QUANTIZE_PASSES:
            raise UsageError(f"--quantize {request.quantize}: expected one of {', '.join(QUANTIZE_PASSES)}")
        names.append(QUANTIZE_PASSES[request.quantize])
    passes = registry.resolve_passes(names)
    context = BuildContext(target=target, registry=registry, options={
        "name": request.name, "input_shapes": request.input_shapes, "seed": request.seed, **request.options})
    source = ModelSource.parse(request.model)
    _step(progress, "front end")
    frontend, model = export_to_onnx(source, context)
    context.model_sha256 = _sha256(source.path)  # after the front end checked it is a regular file
    model = fix_input_shapes(model, request.input_shapes, source.text)
    validate(model, source.text)
    context.inputs = (load_inputs(request.inputs_file, model) if request.inputs_file
                      else random_inputs(model, request.verify_samples, request.seed))
    report = context.report
    report.update({
        "report_version": REPORT_VERSION,
        "edgekit_version": edgekit_version,
        "model": {"source": source.text, "sha256": context.model_sha256, "frontend": frontend,
                  "ops": op_counts(model),
                  "inputs": _values(graph_inputs(model)), "outputs": _values(model.graph.output),
                  "before": model_stats(model).as_dict()},
        "target": {"name": target.name, "backend": backend.name,
                   "runner": backend.runner_for(target) or target.runner,
                   "cpu": target.cpu, "features": list(target.features)},
        "verification": {"samples": len(context.inputs), "seed": request.seed,
                         "inputs": "user file" if request.inputs_file else "seeded random"},
        # What back ends and runners read from the context; `edgekit run` restores it.
        "options": {k: v for k, v in sorted(lasting_options(context.options).items())
                    if k not in ("input_shapes", "seed")},
    })
    model = run_pipeline(model, passes, context, progress)
    report["model"]["after"] = model_stats(model).as_dict()
    _step(progress, f"back end {backend.name}")
    _call_backend(backend, "check", model, context)
    with atomic_directory(request.output, request.force) as staging:
        from edgekit.model import for_runtime

        (staging / REFERENCE_MODEL).write_bytes(for_runtime(model).SerializeToString())
        artifact = _call_backend(backend, "build", model, context, staging)
        for rel, text in sorted(context.attachments.items()):
            attached = staging / rel
            attached.parent.mkdir(parents=True, exist_ok=True)
            attached.write_text(text, encoding="utf-8", newline="\n")
        # "backend" names the back end; the rest is the back end's own metadata (its public keys).
        report["backend"] = {**artifact.metadata, "backend": backend.name, "files": sorted(artifact.files)}
        if runner is not None:
            _step(progress, f"run on {runner.name}")
            # The reference is the model the back end compiled (what `edgekit run` uses too); the
            # pipeline already bounded its distance from the original, pass by pass.
            rerun = scratch_rerun(runner, context, request.target, request.backend, [p.name for p in passes],
                                  request.options)
            report["run"] = execute(runner, staging, model, context, backend.tolerance,
                                    backend.quantized_tolerance_steps, rerun)
        if not os.environ.get(REPRODUCIBLE_ENV):
            report["build_seconds"] = round(time.perf_counter() - started, 3)
        else:
            _drop_times(report)
        write_json(staging / REPORT_FILE, report)
    return report


def _sha256(path: Path) -> str:
    """The hex sha256 of a model file (read in blocks: models can be large); "" when it is not a
    regular file (the front end then names the problem)."""
    import hashlib

    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return ""
    return digest.hexdigest()


#: Report keys that hold wall-clock times (the pipeline's per pass, a back end's per stage).
TIME_KEYS = ("seconds", "build_seconds")


def _drop_times(section: Any) -> None:
    """Remove every wall-clock time from the report, at any depth (reproducible builds)."""
    if isinstance(section, dict):
        for key in TIME_KEYS:
            section.pop(key, None)
        for value in section.values():
            _drop_times(value)
    elif isinstance(section, list):
        for value in section:
            _drop_times(value)


def execute(runner, artifact_dir: Path, reference_model, context: BuildContext,
            tolerance: Tolerance, quantized_steps: float = 1.0, rerun: Callable | None = None,
            device_outputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run the artifact, compare with onnxruntime on ``reference_model``; raise on a mismatch.
    Plugins that know an outside reference for the user's model compare the run too
    (:mod:`edgekit.references`; ``rerun`` lets them build and run a probe of the model).
    ``device_outputs``, when given, receives the runner's outputs, one dict per input set (the
    report holds only figures)."""
    from edgekit.verify import compare, quantized_outputs, run_float64, run_onnxruntime

    expected = run_onnxruntime(reference_model, context.inputs, "reference model")
    try:
        results = runner.run(artifact_dir, context.inputs, context)
    except EdgekitError:
        raise
    except Exception as exc:
        raise PluginError(runner.plugin or runner.name,
                          f"runner '{runner.name}' raised {type(exc).__name__}: {one_line(exc)}") from exc
    if len(results) != len(context.inputs):
        raise PluginError(runner.plugin or runner.name,
                          f"runner '{runner.name}' returned {len(results)} results for {len(context.inputs)} inputs")
    if device_outputs is not None:
        device_outputs.extend(dict(r.outputs) for r in results)
    steps = quantized_outputs(reference_model)
    text = context.option("quantized_tolerance_steps", None)
    try:
        max_steps = float(text) if text not in (None, "") else quantized_steps
    except (TypeError, ValueError):
        raise UsageError(f"--option quantized_tolerance_steps={text}: expected a number of "
                         f"quantization steps, such as 3") from None
    if not max_steps > 0:
        raise UsageError(f"--option quantized_tolerance_steps={text}: must be positive")
    comparison = compare(expected, [r.outputs for r in results], tolerance, steps, max_steps)
    exact64 = None
    if steps:
        # onnxruntime evaluates Q/DQ models in float32, and its round-off moves values across
        # quantization steps, more so through depth and out-of-range inputs. The model's exact
        # arithmetic (float64) is the sharper reference: where it exists, the run is judged by it.
        wide = run_float64(reference_model, context.inputs)
        if wide is not None:
            exact64 = compare(wide, [r.outputs for r in results], tolerance, steps, max_steps)
    judged = exact64 if exact64 is not None else comparison
    section = {
        "runner": runner.name, "samples": len(results),
        "max_abs_error": comparison.max_abs, "max_rel_error": comparison.max_rel,
        "tolerance": {"atol": tolerance.atol, "rtol": tolerance.rtol,
                      **({"quantization_steps": steps, "max_steps": max_steps} if steps else {})},
        **({"exact_ratio": comparison.exact_ratio} if steps else {}),
        **({"exact_ratio_float64": exact64.exact_ratio, "max_abs_error_float64": exact64.max_abs}
           if exact64 is not None else {}),
        "judged_against": "float64" if exact64 is not None else "onnxruntime",
        "measurements": results[0].measurements if results else {},
    }
    judge = None
    if rerun is not None:
        references, warnings = compare_with_references(
            context.report.get("model", {}).get("source", ""), reference_model, context,
            [r.outputs for r in results], rerun)
        if references:
            section["references"] = references
        if warnings:
            section["reference_warnings"] = warnings
        judge = judging_reference(references)
    context.report["run"] = section
    if judge is not None and not judged.mismatch:
        # the artifact implements the reference's arithmetic, not the ONNX graph's float rescaling
        section["judged_against"] = judge["reference"]
        if not judge["agrees"]:
            raise BuildError(f"run on '{runner.name}' does not match {judge['reference']}: {judge['summary']}")
    elif not judged.within():
        against = "the model's exact (float64) arithmetic" if exact64 is not None else "onnxruntime"
        detail = judged.mismatch or (
            f"output '{judged.worst_output}' differs from {against} by {judged.max_abs:.3g} "
            + (f"(more than {max_steps:g} quantization steps of {steps[judged.worst_output]:g})"
               if judged.worst_output in steps else
               f"(tolerance atol={tolerance.atol:g}, rtol={tolerance.rtol:g})"))
        raise BuildError(f"run on '{runner.name}' does not match {against}: {detail}")
    return section


def run(out: Path, registry: Registry, inputs_file: str | Path | Mapping[str, Any] | None = None, seed: int = 0,
        samples: int = 1, options: dict[str, Any] | None = None,
        device_outputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run a built output directory again (``edgekit run OUT``), with new inputs if given (a .npy or
    .npz file, or arrays by input name: :func:`edgekit.verify.load_inputs`); ``options`` go over the
    build's (``save_firmware``, say). ``device_outputs`` receives the outputs (:func:`execute`)."""
    from edgekit.model import load_model
    from edgekit.verify import load_inputs, random_inputs

    report = read_report(out)
    target = registry.target(report["target"]["name"])
    backend = registry.get("backends", report["target"]["backend"])
    runner = _runner_for(registry, target, backend)
    reference = load_model(out / REFERENCE_MODEL)
    context = BuildContext(target=target, registry=registry, report=report, work_dir=out,
                           options={**report.get("options", {}), **(options or {})},
                           model_sha256=str((report.get("model") or {}).get("sha256", "")))
    given = inputs_file is not None and not (isinstance(inputs_file, str) and not inputs_file)
    context.inputs = (load_inputs(inputs_file, reference, "--input") if given
                      else random_inputs(reference, samples, seed))
    rerun = scratch_rerun(runner, context, target.name, backend.name,
                          [p["name"] for p in report.get("passes", [])], context.options)
    return execute(runner, out, reference, context, backend.tolerance, backend.quantized_tolerance_steps, rerun,
                   device_outputs)


def read_report(out: Path) -> dict[str, Any]:
    """OUT's report.json, with what ``edgekit run`` reads of it checked: a UsageError naming the file
    and what is missing or of the wrong type."""
    import json

    report_path = out / REPORT_FILE
    if not report_path.is_file():
        raise UsageError(f"{out}: no {REPORT_FILE}; is this an edgekit build directory?")
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{report_path}: unreadable report ({one_line(exc)}); rebuild with edgekit build") from None
    problem = _report_problem(report) if isinstance(report, dict) else "not a JSON object"
    if problem:
        raise UsageError(f"{report_path}: not a report edgekit run can use ({problem}); rebuild with edgekit build")
    return report


def _report_problem(report: dict[str, Any]) -> str | None:
    target = report.get("target")
    if not isinstance(target, dict) or not all(isinstance(target.get(key), str) for key in ("name", "backend")):
        return "no target name and back end"
    for key, kind in (("options", dict), ("backend", dict), ("passes", list)):
        if not isinstance(report.get(key, kind()), kind):
            return f"'{key}' is not a JSON {'object' if kind is dict else 'array'}"
    if any(not isinstance(p, dict) or not isinstance(p.get("name"), str) for p in report.get("passes", [])):
        return "a pass without a name"
    return None


#: options that name input files (as a path, a directory or file.py:function)
INPUT_FILE_OPTIONS = ("calibration", "validation")


def _input_files(request: BuildRequest) -> list[tuple[str, Path]]:
    """The build's input files and directories: the output directory must not be or contain one."""
    from edgekit.frontends import ModelSource

    found = [("the model", ModelSource.parse(request.model).path)]
    if request.config_file:
        found.append(("the config file", request.config_file))
    if request.inputs_file:
        found.append(("the inputs", Path(request.inputs_file)))
    for key in INPUT_FILE_OPTIONS:
        if isinstance(request.options.get(key), str):
            found.append((f"the {key} data", ModelSource.parse(request.options[key]).path))
    return found


def _runner_for(registry: Registry, target, backend):
    """The runner for this target and back end: the back end's own when it names one for the target
    (``Backend.runner_for``), else the target profile's."""
    name = backend.runner_for(target) or target.runner
    if not name:
        raise UsageError(f"target '{target.name}' has no runner here (build-only); drop --run")
    return registry.get("runners", name)


def _call_backend(backend, method: str, *args):
    try:
        return getattr(backend, method)(*args)
    except EdgekitError:
        raise
    except Exception as exc:
        raise PluginError(backend.plugin or backend.name,
                          f"back end '{backend.name}' {method} raised {type(exc).__name__}: {one_line(exc)}") from exc


def _values(values) -> list[dict[str, Any]]:
    from edgekit.model import numpy_dtype, tensor_dims

    return [{"name": v.name, "shape": tensor_dims(v), "dtype": numpy_dtype(v).name} for v in values]


def _step(progress: Callable[[str], None] | None, what: str) -> None:
    if progress:
        progress(what)
