"""Passes: named ``(model, context) -> model`` rewrites with declared needs and a numerical tolerance.

A pass is written as a plain function and wrapped with :func:`model_pass`::

    @edgekit.model_pass("fold-batchnorm", description="...", rtol=1e-5, atol=1e-6)
    def fold_batchnorm(model: onnx.ModelProto, context: edgekit.BuildContext) -> onnx.ModelProto:
        ...

After every pass the pipeline checks the model (``onnx.checker``, strict shape inference) and runs it
and its input model in onnxruntime on the same inputs; outputs that differ by more than
``atol + rtol * |reference|`` fail the build, naming the pass, the output and the error.

A pass that changes numerics on purpose (quantization) says so with ``approximate=True``: the
pipeline then records the signal-to-quantization-noise ratio of its outputs against its input
model (``sqnr_db`` in the pass's report entry) instead of applying a tolerance, and the pass reports
its own accuracy figures in the context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx

    from edgekit.context import BuildContext

PassFunction = Callable[["onnx.ModelProto", "BuildContext"], "onnx.ModelProto"]


@dataclass(frozen=True)
class Tolerance:
    """Elementwise bound ``|out - ref| <= atol + rtol * |ref|`` (as ``numpy.allclose``)."""

    atol: float = 1e-5
    rtol: float = 1e-5


@dataclass(frozen=True)
class Pass:
    """A model rewrite. ``needs`` names what it requires from the context (``"calibration"``...)."""

    name: str
    function: PassFunction
    description: str = ""
    needs: frozenset[str] = frozenset()
    tolerance: Tolerance = Tolerance()
    plugin: str = ""  # filled in by the registry: which plugin provided it
    approximate: bool = False  # changes numerics on purpose: measured (SQNR), not bounded

    def __call__(self, model: onnx.ModelProto, context: BuildContext) -> onnx.ModelProto:
        return self.function(model, context)


def model_pass(name: str, *, description: str = "", needs: tuple[str, ...] = (),
               atol: float = 1e-5, rtol: float = 1e-5,
               approximate: bool = False) -> Callable[[PassFunction], Pass]:
    """Decorator turning ``f(model, context) -> model`` into a :class:`Pass`.

    The description defaults to the first line of the function's docstring."""

    def wrap(function: PassFunction) -> Pass:
        doc = (function.__doc__ or "").strip().splitlines()
        return Pass(name=name, function=function, description=description or (doc[0] if doc else ""),
                    needs=frozenset(needs), tolerance=Tolerance(atol=atol, rtol=rtol),
                    approximate=approximate)

    return wrap


@dataclass
class ModelStats:
    nodes: int
    parameters: int
    macs: int

    def as_dict(self) -> dict[str, int]:
        return {"nodes": self.nodes, "parameters": self.parameters, "macs": self.macs}


@dataclass
class PassRecord:
    """What the report keeps of one pass run."""

    name: str
    plugin: str
    seconds: float
    before: ModelStats
    after: ModelStats
    max_abs_error: float  # against the pass's input model
    max_rel_error: float
    max_abs_error_vs_original: float  # accumulated over the pipeline so far
    tolerance: Tolerance
    changed: bool
    notes: list[Any] = field(default_factory=list)
    sqnr_db: float | None = None  # approximate passes: output SQNR against the pass's input

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "plugin": self.plugin, "seconds": round(self.seconds, 4),
            "changed": self.changed,
            "before": self.before.as_dict(), "after": self.after.as_dict(),
            "max_abs_error": self.max_abs_error, "max_rel_error": self.max_rel_error,
            "max_abs_error_vs_original": self.max_abs_error_vs_original,
            "tolerance": ({"approximate": True} if self.sqnr_db is not None else
                          {"atol": self.tolerance.atol, "rtol": self.tolerance.rtol}),
            **({"sqnr_db": round(self.sqnr_db, 2) if self.sqnr_db != float("inf") else "inf"}
               if self.sqnr_db is not None else {}),
            "notes": self.notes,
        }
