"""Read-only views of what a build and a run report, for the Python API (:mod:`edgekit.api`).

:class:`Report` is a build's ``report.json``; :class:`RunReport` is one ``edgekit run``: the device's
outputs and the run's comparison and measurements (the ``run`` section a build with ``--run`` also
has). Figures are properties by name, typed; a figure the report does not hold (no run, a back end
that does not measure it) is None, never a KeyError. :meth:`Report.get` reaches any other key.
This module imports nothing heavy: ``import edgekit`` loads it.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def _dig(data: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class _RunFigures:
    """The figures of a run section (``report.json``'s ``run``): its comparison with the reference
    and the runner's measurements. Subclasses say where the section is."""

    __slots__ = ()

    def _run(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def _measured(self, key: str) -> Any:
        return _dig(self._run(), ("measurements", key))

    @property
    def passed(self) -> bool | None:
        """True when the device's outputs matched the reference within tolerance; None without a
        run. (A mismatch is never a result: the build or run raises BuildError.)"""
        return True if isinstance(self._run(), dict) else None

    @property
    def runner(self) -> str | None:
        return _text(_dig(self._run(), ("runner",)))

    @property
    def samples(self) -> int | None:
        """How many input sets the run compared."""
        return _integer(_dig(self._run(), ("samples",)))

    @property
    def max_abs_error(self) -> float | None:
        """Worst absolute difference from onnxruntime over every output value of every sample."""
        return _number(_dig(self._run(), ("max_abs_error",)))

    @property
    def max_rel_error(self) -> float | None:
        return _number(_dig(self._run(), ("max_rel_error",)))

    @property
    def judged_against(self) -> str | None:
        """What judged the run: ``onnxruntime``, ``float64`` (a quantized model's exact arithmetic)
        or an outside reference (``TFLite Micro``)."""
        return _text(_dig(self._run(), ("judged_against",)))

    @property
    def measurements(self) -> dict[str, Any]:
        """Everything the runner measured (a copy); empty without a run."""
        return copy.deepcopy(_dig(self._run(), ("measurements",)) or {})

    @property
    def instructions(self) -> int | None:
        """Instructions per inference, counted exactly by the emulator (not cycles, not time)."""
        return _integer(self._measured("instructions"))

    @property
    def instructions_per_layer(self) -> list[int] | None:
        value = self._measured("instructions_per_layer")
        return list(value) if isinstance(value, list) else None

    @property
    def flash_bytes(self) -> int | None:
        """Flash of the whole firmware image the run measured (harness included)."""
        return _integer(self._measured("flash_bytes"))

    @property
    def ram_bytes(self) -> int | None:
        """Static RAM of the whole firmware image the run measured (arena, stack and heap reserves included)."""
        return _integer(self._measured("ram_bytes"))

    @property
    def model_flash_bytes(self) -> int | None:
        """Flash of the model's library alone: code and weights."""
        return _integer(self._measured("model_flash_bytes"))

    @property
    def model_ram_bytes(self) -> int | None:
        """Static RAM of the model's library alone (its arena among it)."""
        return _integer(self._measured("model_ram_bytes"))

    @property
    def stack_bytes(self) -> int | None:
        """Stack the inference used, measured by painting the stack."""
        return _integer(self._measured("stack_bytes"))


class Report(_RunFigures):
    """A build's ``report.json``, read-only: ``edgekit.build()`` returns one, :meth:`load` reads one.

    >>> report = Report.load("out")                       # doctest: +SKIP
    >>> report.instructions, report.arena_bytes, report.max_abs_error   # doctest: +SKIP
    (18851227, 197760, 3.6e-07)
    """

    __slots__ = ("_data", "_output_dir")

    def __init__(self, data: dict[str, Any], output_dir: str | os.PathLike[str]):
        self._data = copy.deepcopy(data)
        self._output_dir = Path(os.path.abspath(output_dir))

    @classmethod
    def load(cls, out: str | os.PathLike[str]) -> Report:
        """The report of the build in ``out``; a missing or malformed report.json is a UsageError."""
        from edgekit.building import read_report

        return cls(read_report(Path(out)), out)

    def _run(self) -> dict[str, Any] | None:
        run = self._data.get("run")
        return run if isinstance(run, dict) else None

    def get(self, *keys: str, default: Any = None) -> Any:
        """The value at ``keys`` (``report.get("backend", "code_bytes", "O2")``), a copy; ``default``
        when any key is missing."""
        value = _dig(self._data, keys)
        return default if value is None else copy.deepcopy(value)

    def to_dict(self) -> dict[str, Any]:
        """report.json as a dict (a copy)."""
        return copy.deepcopy(self._data)

    @property
    def output_dir(self) -> Path:
        """The build's output directory (absolute)."""
        return self._output_dir

    @property
    def edgekit_version(self) -> str | None:
        return _text(self._data.get("edgekit_version"))

    @property
    def model_source(self) -> str | None:
        """The MODEL the build was given (a path, or file.py:function)."""
        return _text(_dig(self._data, ("model", "source")))

    @property
    def model_sha256(self) -> str | None:
        """The hex sha256 of the model file (the .py file for a factory)."""
        return _text(_dig(self._data, ("model", "sha256"))) or None

    @property
    def target(self) -> str | None:
        return _text(_dig(self._data, ("target", "name")))

    @property
    def backend(self) -> str | None:
        return _text(_dig(self._data, ("target", "backend")))

    @property
    def passes(self) -> list[str]:
        """The names of the passes the pipeline ran, in order."""
        records = self._data.get("passes")
        return [r["name"] for r in records if isinstance(r, dict) and isinstance(r.get("name"), str)] \
            if isinstance(records, list) else []

    @property
    def inputs(self) -> list[dict[str, Any]]:
        """The model's inputs: ``{"name", "shape", "dtype"}`` each."""
        return copy.deepcopy(_dig(self._data, ("model", "inputs")) or [])

    @property
    def outputs(self) -> list[dict[str, Any]]:
        """The model's outputs: ``{"name", "shape", "dtype"}`` each."""
        return copy.deepcopy(_dig(self._data, ("model", "outputs")) or [])

    @property
    def macs(self) -> int | None:
        """Multiply-accumulates per inference of the model the back end compiled."""
        return _integer(_dig(self._data, ("model", "after", "macs")))

    @property
    def parameters(self) -> int | None:
        return _integer(_dig(self._data, ("model", "after", "parameters")))

    @property
    def arena_bytes(self) -> int | None:
        """The static memory plan's arena (the activations' RAM) of a C library back end."""
        return _integer(_dig(self._data, ("backend", "arena_bytes")))

    @property
    def weights_bytes(self) -> int | None:
        return _integer(_dig(self._data, ("backend", "weights_bytes")))

    @property
    def code_bytes(self) -> dict[str, int] | None:
        """The library's code size by optimisation level (``{"Os": ..., "O2": ...}``)."""
        value = _dig(self._data, ("backend", "code_bytes"))
        return dict(value) if isinstance(value, dict) else None

    @property
    def build_seconds(self) -> float | None:
        """Wall-clock time of the build (absent from reproducible reports)."""
        return _number(self._data.get("build_seconds"))

    def __repr__(self) -> str:
        return (f"Report(output_dir={str(self._output_dir)!r}, target={self.target!r}, "
                f"backend={self.backend!r}, passed={self.passed!r})")


class RunReport(_RunFigures):
    """One ``edgekit.run()``: what the device computed and how it compared.

    ``outputs`` holds the device's outputs, one dict per input set (output name -> array);
    ``arrays()`` is what :meth:`save` writes (``edgekit run --save``): with one input set, each
    output under its own name; with several, each output stacked along a new first axis (shape
    ``(samples, *output shape)``, the layout ``edgekit run --input`` reads).
    """

    __slots__ = ("_section", "_outputs")

    def __init__(self, section: dict[str, Any], outputs: list[dict[str, np.ndarray]]):
        self._section = copy.deepcopy(section)
        self._outputs = [dict(sample) for sample in outputs]

    def _run(self) -> dict[str, Any] | None:
        return self._section

    @property
    def outputs(self) -> list[dict[str, np.ndarray]]:
        """The device's outputs, one dict (output name -> array) per input set."""
        return [dict(sample) for sample in self._outputs]

    def arrays(self) -> dict[str, np.ndarray]:
        """The outputs by name as :meth:`save` writes them (see the class doc)."""
        return output_arrays(self._outputs)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`arrays` to ``path`` (a ``.npz``), atomically; returns the path. A path that
        cannot be written is a UsageError naming it."""
        from edgekit.userfiles import write_npz

        where = Path(path)
        write_npz(where, self.arrays(), f"--save {where}")
        return where

    def to_dict(self) -> dict[str, Any]:
        """The run section (as ``report.json``'s ``run``): comparison and measurements, a copy."""
        return copy.deepcopy(self._section)

    def __repr__(self) -> str:
        return (f"RunReport(runner={self.runner!r}, samples={self.samples!r}, "
                f"max_abs_error={self.max_abs_error!r}, instructions={self.instructions!r})")


def output_arrays(outputs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The run's outputs by name: one input set's as they are, several stacked on a new first axis.
    Names go through :func:`edgekit.naming.array_name`."""
    import numpy as np

    from edgekit.naming import array_name

    if not outputs:
        return {}
    if len(outputs) == 1:
        return {array_name(name): np.asarray(value) for name, value in outputs[0].items()}
    return {array_name(name): np.stack([np.asarray(sample[name]) for sample in outputs])
            for name in outputs[0]}
