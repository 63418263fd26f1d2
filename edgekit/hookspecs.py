"""The edgekit plugin contract.

Every capability of edgekit -- front ends, passes, target profiles, back ends, runners -- comes from a
plugin implementing the hooks below. First-party plugins (``edgekit.plugins.*``) register through the
same ``edgekit`` entry-point group a third-party package uses::

    # pyproject.toml of a plugin package
    [project.entry-points.edgekit]
    my_plugin = "my_package.plugin"

    # my_package/plugin.py
    import edgekit

    @edgekit.model_pass("drop-identity", description="Remove Identity nodes")
    def drop_identity(model, context):
        ...
        return model

    @edgekit.hookimpl
    def edgekit_register_passes():
        return [drop_identity]

A hook that raises, or returns something of the wrong type, is reported with the plugin's name and a
one-line reason; it never surfaces as an anonymous traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # imported for annotations only: the CLI must start without onnx
    import onnx

    from edgekit.backends import Backend, KernelLibrary
    from edgekit.context import BuildContext
    from edgekit.frontends import ModelSource
    from edgekit.passes import Pass, PassRecord
    from edgekit.runners import Runner
    from edgekit.target import Target

hookspec = pluggy.HookspecMarker("edgekit")


@hookspec
def edgekit_register_passes() -> list[Pass]:
    """Return the passes this plugin provides (``edgekit.Pass`` objects, usually made with
    ``@edgekit.model_pass``). Pass names are global: two plugins may not register the same name."""


@hookspec
def edgekit_register_targets() -> list[Target | str]:
    """Return target profiles: ``edgekit.Target`` objects or paths of TOML profile files."""


@hookspec
def edgekit_register_backends() -> list[Backend]:
    """Return back ends (code generators or compilers), ``edgekit.Backend`` instances. A target
    profile names its back end by ``Backend.name``."""


@hookspec
def edgekit_register_kernel_libraries() -> list[KernelLibrary]:
    """Return kernel libraries (``edgekit.KernelLibrary``) a back end can use instead of its own
    kernels, chosen with ``--kernels NAME``; ``KernelLibrary.backend`` names that back end."""


@hookspec
def edgekit_register_runners() -> list[Runner]:
    """Return runners (harness transports), ``edgekit.Runner`` instances, that execute a built
    artifact and return its outputs and measurements."""


@hookspec(firstresult=True)
def edgekit_export_model(source: ModelSource, context: BuildContext) -> onnx.ModelProto | None:
    """Turn a user's model into ONNX, or return None when this plugin does not read ``source``.

    The first plugin to return a model wins, so a plugin can add a framework or a file format.
    ``context.options`` holds the user's options (for example ``input_shapes``)."""


@hookspec
def edgekit_register_commands(cli: Any) -> None:
    """Add subcommands to the ``edgekit`` CLI (a ``click.Group``), e.g. ``@cli.command() def tune(): ...``.
    Import heavy modules inside the command, not at plugin import: every CLI start loads plugins."""


@hookspec
def edgekit_pipeline_started(model: onnx.ModelProto, context: BuildContext) -> None:
    """Called once with the front end's model before the first pass."""


@hookspec
def edgekit_before_pass(pass_: Pass, model: onnx.ModelProto, context: BuildContext) -> None:
    """Called before each pass runs."""


@hookspec
def edgekit_after_pass(pass_: Pass, model: onnx.ModelProto, context: BuildContext,
                       record: PassRecord) -> None:
    """Called after each pass has run and been verified; ``record`` is what the report stores."""


@hookspec
def edgekit_pipeline_finished(model: onnx.ModelProto, context: BuildContext) -> None:
    """Called once with the final model, before the back end sees it."""


@hookspec
def edgekit_describe_model(model: onnx.ModelProto, context: BuildContext) -> dict[str, Any] | None:
    """Describe structure of ``model`` this plugin understands, for ``edgekit inspect``; None when
    there is nothing to say (the usual answer for most models).

    The description is one table::

        {"title": str, "columns": [str, ...], "rows": [[cell, ...], ...]}

    with one cell per column in every row; cells are str, int, float or bool (ints are printed with
    thousands separators). ``context`` holds the target (or None) and the user's options. The model
    is the plugin's own copy, but must be treated as read-only. Called for every plugin; a plugin
    that raises or returns a malformed table is named in a one-line warning and its table is left
    out, the rest of the inspection is unaffected."""


@hookspec
def edgekit_compare_run(source: ModelSource, model: onnx.ModelProto, context: BuildContext,
                        outputs: list[dict[str, Any]], rerun: Any) -> dict[str, Any] | None:
    """Compare a run (``--run``, ``edgekit run``) with an outside reference this plugin knows for
    ``source`` (the user's model file: for example the framework that produced it), or return None.

    ``outputs`` are the runner's outputs, one dict per input set of ``context.inputs`` (named and
    shaped as ``model``'s graph outputs, which is what the artifact computes). ``rerun(probe)``
    builds another ONNX model with the same target, back end and options in a scratch directory,
    runs it on the same runner with the same inputs and returns its outputs: a plugin uses it to
    locate a difference (every layer's output made a graph output, say). The result is stored in
    the run report under ``references[<plugin>]``; it must be JSON-serializable and hold

        {"reference": str, "agrees": bool | None, "summary": str, ...}

    ``summary`` is one line for the terminal; ``agrees`` None: not compared (the summary says why,
    for example an oracle package that is not installed). A run is judged against onnxruntime and a
    reference's mismatch is recorded and warned about, unless the result has ``"judges": True``:
    the reference is the arithmetic the artifact implements (a TFLite model built with TFLite
    Micro's rounding, say), so the run is judged by it instead, and onnxruntime's figures are for
    information. A plugin that raises is named in a one-line warning."""


# Keep the names in one place: the plugin listing and the safe caller use them.
REGISTRATION_HOOKS: dict[str, str] = {
    "edgekit_register_passes": "passes",
    "edgekit_register_targets": "targets",
    "edgekit_register_backends": "backends",
    "edgekit_register_runners": "runners",
    "edgekit_register_kernel_libraries": "kernel_libraries",
}
PROVIDES_FRONTEND = "edgekit_export_model"
DESCRIBE_HOOK = "edgekit_describe_model"
COMPARE_RUN_HOOK = "edgekit_compare_run"
OBSERVER_HOOKS = ("edgekit_pipeline_started", "edgekit_before_pass", "edgekit_after_pass",
                  "edgekit_pipeline_finished")

__all__: list[Any] = ["hookspec"]
