"""The Python API: ``edgekit.build``, ``edgekit.run`` and ``edgekit.inspect``, the commands of the
same names as functions.

They do what the commands do, with the same defaults, settings file (``edgekit.toml`` or
``[tool.edgekit]`` in ``pyproject.toml`` in the current directory, or ``config=``), checks and errors
(:mod:`edgekit.request` composes the build for both). A failure is an exception, never an exit: a
:class:`~edgekit.errors.UsageError` (bad input; ``exit_code`` 2) or a
:class:`~edgekit.errors.BuildError` (the build or run failed; ``exit_code`` 1), both
:class:`~edgekit.errors.EdgekitError`. They are meant for a user's own process: they install no
signal handler beyond the few steps that commit an output directory (then restored), print nothing
(progress goes to a ``progress`` callback; ``quiet=True`` also silences what libraries and plugins
write to stderr), and never call ``sys.exit``. Ctrl-C raises KeyboardInterrupt as usual, and leaves
the output directory as it was.

This module imports nothing heavy: ``import edgekit`` loads it.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.errors import UsageError
from edgekit.results import Report, RunReport

if TYPE_CHECKING:
    import numpy as np

    from edgekit.registry import Registry

PathLike = str | os.PathLike[str]
__all__ = ["Report", "RunReport", "build", "inspect", "run"]


def build(model: PathLike, target: PathLike | None = None, *, output: PathLike | None = None,
          run: bool | None = None, options: Mapping[str, Any] | None = None,
          progress: Callable[[str], None] | None = None, quiet: bool = False, **flags: Any) -> Report:
    """Build ``model`` for ``target`` into ``output``, as ``edgekit build`` does, and return its report.

    ``model`` is a path (``.onnx``, ``.tflite``, ``.pt2``) or ``"file.py:function"``. ``target`` is a
    target name (``edgekit targets``) or a profile ``.toml``. ``output`` defaults to
    ``build/<model stem>-<target>``. ``run=True`` runs the result on the target's runner (the
    emulated board, the host) and compares it with onnxruntime. ``options`` are back-end and plugin
    options (``--option key=value``: ``{"optimize": "-Os"}``). Arguments left as None come from the
    settings file, then the defaults.

    ``flags`` are ``edgekit build``'s other flags by their Python names: ``passes`` (a list, or
    ``"a,b"``), ``input_shape``/``input_shapes`` (``"1,3,32,32"``, or a list of
    ``"name=1,3,32,32"``), ``inputs`` (a .npy/.npz path), ``name``, ``seed``,
    ``samples``/``verify_samples``, ``backend``, ``kernels``, ``quantize``, ``group_size``,
    ``calibration``, ``calibration_method``, ``validation``, ``accuracy_floor``, ``force`` and
    ``config``. An unknown keyword is a UsageError that lists the valid ones.

    ``progress`` is called with the name of each step as it starts. Raises UsageError (bad input:
    nothing is built, ``output`` is untouched) or BuildError (a pass broke the numerics, the back end
    failed, the run did not match: ``output`` is left as it was).
    """
    from edgekit.building import build as build_model
    from edgekit.request import build_request

    request = build_request(model, {"target": target, "output": output, "run": run, "options": options, **flags},
                            cli=False)
    registry = _registry()
    with _silenced(quiet):
        build_model(request, registry, progress)
    return Report.load(request.output)


def run(out: PathLike, inputs: PathLike | Mapping[str, np.ndarray] | np.ndarray | None = None, *,
        seed: int = 0, samples: int = 1, options: Mapping[str, Any] | None = None,
        quiet: bool = False) -> RunReport:
    """Run the build in ``out`` again on its target's runner, as ``edgekit run`` does, and return what
    the device computed and how it compared with onnxruntime.

    ``inputs`` are the input sets: a dict of arrays by input name (a leading axis of several samples
    is allowed, as in a .npz), one array (a single-input model), or the path of a .npy/.npz file;
    None for ``samples`` seeded random sets (``seed``). ``options`` go over the options the build
    recorded in report.json, for this run only (``{"optimize": "-Os"}``, ``{"save_firmware": "fw.elf"}``).

    Returns a :class:`~edgekit.results.RunReport`: ``.outputs`` (one dict of output name -> array
    per input set), ``.arrays()`` and ``.save(path.npz)`` (what ``edgekit run --save`` writes),
    and the figures: ``.max_abs_error``, ``.instructions``, ``.measurements``... Raises UsageError
    (not a build directory, inputs of the wrong shape) or BuildError (the outputs do not match).
    """
    from edgekit.building import run as run_build
    from edgekit.request import option_values

    if not isinstance(out, (str, os.PathLike)):
        raise UsageError(f"edgekit.run(out={out!r}): expected a path (str or os.PathLike)")
    for key, value, least in (("seed", seed, 0), ("samples", samples, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise UsageError(f"edgekit.run({key}={value!r}): expected an integer of at least {least}")
    if isinstance(inputs, os.PathLike):
        inputs = os.fspath(inputs)
    outputs: list[dict[str, np.ndarray]] = []
    with _silenced(quiet):
        section = run_build(Path(out), _registry(), inputs, seed, samples,
                            options=option_values(options or {}, cli=False), device_outputs=outputs)
    return RunReport(section, outputs)


def inspect(model: PathLike, target: PathLike | None = None, input_shape: str | Sequence[str] | None = None, *,
            input_shapes: Sequence[str] | None = None) -> dict[str, Any]:
    """What ``edgekit inspect`` shows, as data: a dict with ``model``, ``inputs`` and ``outputs``
    (``{"name", "shape", "dtype"}`` each), ``stats`` (``nodes``, ``parameters``, ``macs``), ``ops``
    (op -> ``count``, ``macs``, ``nodes`` and, with a target, ``supported``), ``target``,
    ``backend``, ``supported_ops`` (None without a target), ``descriptions`` (the tables plugins
    add, e.g. mixture-of-experts layers: ``plugin``, ``title``, ``columns``, ``rows``) and
    ``warnings`` (plugins whose table was left out). ``input_shape`` as for :func:`build`.
    """
    from edgekit.inspection import inspect_model

    if input_shape is not None and input_shapes is not None:
        raise UsageError("edgekit.inspect(): 'input_shape' and 'input_shapes' name the same flag; give one")
    shapes = input_shape if input_shape is not None else input_shapes
    shapes = [shapes] if isinstance(shapes, str) else list(shapes or [])
    if not all(isinstance(s, str) for s in shapes):
        raise UsageError(f"edgekit.inspect(input_shape={shapes!r}): expected a string or a list of strings")
    for key, value in (("model", model), ("target", target)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise UsageError(f"edgekit.inspect({key}={value!r}): expected a str or os.PathLike")
    return inspect_model(os.fspath(model), _registry(), os.fspath(target) if target is not None else None, shapes)


#: plugins already warned about: once per process, as the CLI does
_warned: set[str] = set()


def _registry() -> Registry:
    """The process's registry (shared with the CLI); each broken plugin is a Python warning, once."""
    from edgekit.registry import default_registry

    registry = default_registry()
    registry.load_all()
    for info in registry.host.broken():
        if info.name not in _warned:
            _warned.add(info.name)
            warnings.warn(f"edgekit: plugin '{info.name}' not loaded: {info.broken}", RuntimeWarning, stacklevel=3)
    return registry


@contextlib.contextmanager
def _silenced(quiet: bool) -> Iterator[None]:
    if not quiet:
        yield
        return
    from edgekit.console import silent_stderr

    with silent_stderr():
        yield
