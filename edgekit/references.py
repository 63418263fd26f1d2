"""Outside references for a run: plugins that know another implementation of the user's model (the
framework its file came from) compare the runner's outputs with it (``edgekit_compare_run``).
onnxruntime is the judge of a run unless a reference says it ``judges`` (it is the arithmetic the
artifact implements); other comparisons are recorded and warned about."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from edgekit.context import BuildContext
from edgekit.errors import one_line

if TYPE_CHECKING:
    import numpy as np
    import onnx

Outputs = list[dict[str, "np.ndarray"]]


def scratch_rerun(runner, context: BuildContext, target: str, backend: str | None, passes: list[str],
                  options: dict[str, Any]) -> Callable[[onnx.ModelProto], Outputs]:
    """``rerun(model)``: build ``model`` as the current build was built (target, back end, passes,
    options) in a scratch directory, run it on ``runner`` with ``context.inputs``, return its outputs.
    Options that ask the user's run for a file (``edgekit.runners.PER_RUN_OPTIONS``) stay out."""
    from edgekit.runners import lasting_options

    options = lasting_options(options)

    def rerun(model: onnx.ModelProto) -> Outputs:
        from edgekit.building import BuildRequest, build

        with tempfile.TemporaryDirectory(prefix="edgekit-rerun-") as tmp:
            source = Path(tmp) / "model.onnx"
            source.write_bytes(model.SerializeToString())
            out = Path(tmp) / "build"
            build(BuildRequest(model=str(source), target=target, output=out, passes=list(passes),
                               backend=backend, options=dict(options)), context.registry)
            # a context of its own: the runner reads the library's metadata from out/report.json
            scratch = BuildContext(target=context.target, registry=context.registry,
                                   options=lasting_options(context.options))
            return [r.outputs for r in runner.run(out, context.inputs, scratch)]

    return rerun


def compare_with_references(source_text: str, model: onnx.ModelProto, context: BuildContext,
                            outputs: Outputs, rerun: Callable) -> tuple[dict[str, Any], list[str]]:
    """Every plugin's ``edgekit_compare_run`` result by plugin name, and one warning line per
    plugin that raised or returned a malformed result."""
    from edgekit.frontends import ModelSource
    from edgekit.hookspecs import COMPARE_RUN_HOOK

    host = context.registry.host
    source = ModelSource.parse(source_text)
    found: dict[str, Any] = {}
    warnings: list[str] = []
    arguments = {"source": source, "model": model, "context": context, "outputs": outputs, "rerun": rerun}
    for plugin, result in host.call_each_guarded(COMPARE_RUN_HOOK, warnings, "comparison", lambda: arguments):
        if result is None:
            continue
        problem = _result_problem(result)
        if problem:
            warnings.append(f"plugin '{plugin}': {COMPARE_RUN_HOOK} {problem}; its comparison is left out")
            continue
        found[plugin] = result
    return found, warnings


def _result_problem(result: Any) -> str:
    if not isinstance(result, dict):
        return f"returned {type(result).__name__}, expected a dict or None"
    for key, kinds in (("reference", (str,)), ("summary", (str,)), ("agrees", (bool, type(None))),
                       ("judges", (bool, type(None)))):
        if not isinstance(result.get(key), kinds):
            return f"returned a result whose '{key}' is missing or of the wrong type"
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        return f"returned a result that is not JSON-serializable ({one_line(exc)})"
    return ""


def judging_reference(references: dict[str, Any]) -> dict[str, Any] | None:
    """The reference that judges the run instead of onnxruntime (the first that says so), or None."""
    return next((r for r in references.values() if r.get("judges") and r["agrees"] is not None), None)
