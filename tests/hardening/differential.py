"""One differential check: `edgekit build --run` of a generated graph, which compares the run with
onnxruntime (and fails the build beyond the back end's tolerance, or on any sanitizer report)."""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

import onnx

#: target -> (back end, runner it gets): the host build runs under AddressSanitizer and UBSan
TARGETS = {"x86-64": "mcu-c", "cortex-m4": None, "cortex-m0plus": None}


@lru_cache(maxsize=1)
def _registry():
    from edgekit.registry import default_registry

    return default_registry()


def build_and_compare(model: onnx.ModelProto, target: str = "x86-64", samples: int = 2) -> dict:
    """The run section of the report; raises the build's error (EdgekitError) on any mismatch."""
    from edgekit.build import BuildRequest, build

    with tempfile.TemporaryDirectory(prefix="ek-fuzz-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(model, path)
        report = build(BuildRequest(model=str(path), target=target, backend=TARGETS[target], output=Path(tmp) / "out",
                                    run=True, verify_samples=samples), _registry())
    return report["run"]


def describe(model: onnx.ModelProto) -> str:
    """The graph as text, for a failure message (a mismatch becomes a regression test from it)."""
    return onnx.printer.to_text(model.graph)
