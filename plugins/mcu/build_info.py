"""What a generated library says about the build that made it: edgekit's version, the model file's
sha256, the front end, the target, the kernels, the precision it computes in, its arena, and the
libm functions one inference reaches. ``<name>.h``, ``library.json`` and the Zephyr ``Kconfig`` are
written from one :class:`BuildInfo`, so they cannot disagree.

Every field may come from outside edgekit (a third-party front end's or profile's name), so each is
checked here before any generated file holds it: text fields that fail the check are left out
rather than escaped into a meaning they did not have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from edgekit import __version__ as EDGEKIT_VERSION
from edgekit.errors import BuildError

if TYPE_CHECKING:
    from edgekit.context import BuildContext
    from edgekit.plugins.mcu.schedule import Schedule

_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
# a name that reads the same in C strings, comments, JSON, Kconfig help and a PlatformIO keyword
_PLAIN = re.compile(r"[a-z0-9](?:[a-z0-9.+-]{0,62}[a-z0-9])?\Z")
_VERSION = re.compile(r"[0-9A-Za-z.+-]{1,40}\Z")

#: C99 <math.h> functions (float and double forms) a generated library may call: what a C library
#: without libm (Zephyr's minimal libc) lacks.
LIBM_FUNCTIONS = frozenset(
    f"{base}{suffix}" for suffix in ("", "f") for base in """
    acos acosh asin asinh atan atan2 atanh cbrt ceil copysign cos cosh erf erfc exp exp2 expm1 fabs
    fdim floor fma fmax fmin fmod frexp hypot ilogb ldexp lgamma llrint llround log log10 log1p log2
    logb lrint lround modf nan nearbyint nextafter pow remainder remquo rint round scalbln scalbn sin
    sinh sqrt tan tanh tgamma trunc""".split())

PRECISIONS = ("float32", "int8", "mixed", "int4 weights", "int8 weights")


@dataclass(frozen=True)
class BuildInfo:
    """``math_functions``: the libm functions one inference reaches, as the target's linker found
    them after collecting garbage sections; ``math_references``: those any object of the library
    references, what a link without ``--gc-sections`` needs. None: not measured, so a libm is
    assumed to be needed."""

    edgekit_version: str = EDGEKIT_VERSION
    model_sha256: str = ""
    frontend: str = ""
    target: str = ""
    has_fpu: bool = False
    kernels: str = "edgekit"
    precision: str = "float32"
    static_arena: bool = False
    math_functions: tuple[str, ...] | None = None
    math_references: tuple[str, ...] | None = None

    def __post_init__(self):
        if not _VERSION.match(self.edgekit_version):
            raise BuildError(f"edgekit version {self.edgekit_version!r} cannot be written into a library")
        if self.model_sha256 and not _SHA256.match(self.model_sha256):
            raise BuildError(f"model sha256 {self.model_sha256!r} is not 64 lowercase hex digits")
        for field in ("frontend", "target", "kernels"):
            value = getattr(self, field)
            if value and not _PLAIN.match(value):
                object.__setattr__(self, field, "")  # an outside name we cannot write safely: left out
        if self.precision not in PRECISIONS:
            raise BuildError(f"precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        for field in ("math_functions", "math_references"):
            functions = getattr(self, field)
            if functions is not None:
                unknown = set(functions) - LIBM_FUNCTIONS
                if unknown:
                    raise BuildError(f"not C math functions: {', '.join(sorted(unknown))}")
                object.__setattr__(self, field, tuple(sorted(set(functions))))

    @classmethod
    def from_context(cls, context: BuildContext) -> BuildInfo:
        target = context.target
        return cls(model_sha256=context.model_sha256 or "",
                   frontend=str((context.report.get("model") or {}).get("frontend") or "").lower(),
                   target=str(target.name or "").lower(),
                   has_fpu=str(target.fpu or "none").lower() != "none",
                   kernels=str(context.option("kernels") or "edgekit").lower(),
                   static_arena=bool(context.option("static_arena", False)))

    def with_schedule(self, sched: Schedule, static_arena: bool) -> BuildInfo:
        return self.with_layers(schedule_precision(sched), static_arena)

    def with_layers(self, precision: str, static_arena: bool) -> BuildInfo:
        return replace(self, precision=precision, static_arena=static_arena)

    def with_math(self, measured: dict) -> BuildInfo:
        """``measured``: :func:`.sizes.measure`'s result."""
        return replace(self, math_functions=tuple(measured["math_functions"]),
                       math_references=tuple(measured["math_references"]))

    @property
    def needs_libm(self) -> bool:
        """One inference calls libm (a link that collects garbage sections needs it). Unmeasured
        counts as needed: a missing libm is a link error, a spare one costs nothing."""
        return self.math_functions is None or bool(self.math_functions)

    @property
    def links_libm(self) -> bool:
        """Some object of the library references libm (a link that keeps every section needs it)."""
        return self.math_references is None or bool(self.math_references)

    @property
    def computes_float(self) -> bool:
        return self.precision != "int8"

    @property
    def arena(self) -> str:
        return "static arena" if self.static_arena else "caller's arena"

    def summary(self) -> str:
        """One line: what was built, from what, for what."""
        source = f" from {self.frontend}" if self.frontend else ""
        target = f" for {self.target}" if self.target else ""
        sha = f" (model sha256 {self.model_sha256[:12]})" if self.model_sha256 else ""
        return (f"edgekit {self.edgekit_version}{source}{target}{sha}: {self.precision}, {self.arena}, "
                f"{self.kernels} kernels")


def schedule_precision(sched: Schedule) -> str:
    """The precision of a schedule's computing layers (see :func:`precision_of`); the float <-> int8
    boundary conversions of an int8 model with float I/O are not computing layers."""
    dtypes = [sched.tensors[layer.outputs[0]].dtype for layer in sched.layers
              if layer.outputs and layer.family != "ek_quant"]
    return precision_of(dtypes, sched.families)


def precision_of(layer_dtypes, families=()) -> str:
    """int8 when every computing layer writes int8, float32 when none does (``int4 weights`` /
    ``int8 weights`` for weight-only quantized matrices), mixed otherwise. Integer results of other
    widths (indices, shapes) say nothing either way."""
    dtypes = set(layer_dtypes)
    quantized = bool(dtypes & {"int8", "uint8"})
    if quantized and "float32" in dtypes:
        return "mixed"
    if quantized:
        return "int8"
    if "ek_gemm_w4" in families:
        return "int4 weights"
    if "ek_gemm_w8" in families:
        return "int8 weights"
    return "float32"
