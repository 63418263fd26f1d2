"""One differential check: `edgekit build --run` of a generated graph, which compares the run with
onnxruntime (and fails the build beyond the back end's tolerance, or on any sanitizer report).

A *flavour* says what the build does with the float graph: ``float`` (the target's back end as is),
``int8`` (``--quantize int8``: calibrated static QDQ, then mcu-c's integer kernels; judged in
quantization steps against the QDQ model's exact arithmetic), ``int8-tflite`` (the same with
TFLite's rounding, ``--option int8_arithmetic=tflite``) and ``tvm`` (TVM's kernels: the ``tvm``
back end on a Linux target, ``--kernels tvm`` under mcu-c on a bare-metal one)."""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import onnx

#: target -> (back end, runner it gets): the host build runs under AddressSanitizer and UBSan
TARGETS = {"x86-64": "mcu-c", "cortex-m4": None, "cortex-m0plus": None}
#: flavour -> BuildRequest fields on top of the target's back end
FLAVOURS: dict[str, dict[str, Any]] = {
    "float": {},
    "int8": {"quantize": "int8"},
    "int8-tflite": {"quantize": "int8", "options": {"int8_arithmetic": "tflite"}},
    "tvm": {"backend": "tvm"},
}
#: TVM builds Linux libraries only; on these bare-metal targets its kernels run under mcu-c's C
BARE_METAL = ("cortex-m4", "cortex-m0plus")


@lru_cache(maxsize=1)
def _registry():
    from edgekit.registry import default_registry

    return default_registry()


def request_fields(target: str, flavour: str) -> dict[str, Any]:
    """The BuildRequest fields (back end, quantize, options) of ``flavour`` on ``target``."""
    if flavour == "tvm" and target in BARE_METAL:
        return {"options": {"kernels": "tvm"}}
    return {"backend": TARGETS.get(target), **FLAVOURS[flavour]}


def build_and_compare(model: onnx.ModelProto, target: str = "x86-64", samples: int = 2,
                      flavour: str = "float") -> dict:
    """The build's report (its ``run`` section holds the comparison); raises the build's error
    (EdgekitError) on any mismatch."""
    from edgekit.building import BuildRequest, build

    with tempfile.TemporaryDirectory(prefix="ek-fuzz-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(model, path)
        return build(BuildRequest(model=str(path), target=target, output=Path(tmp) / "out", run=True,
                                  verify_samples=samples, **request_fields(target, flavour)), _registry())


def describe(model: onnx.ModelProto) -> str:
    """The graph as text, for a failure message (a mismatch becomes a regression test from it)."""
    return onnx.printer.to_text(model.graph)
