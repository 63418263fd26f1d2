"""Mixed precision: which layers stay in float so that the quantized model meets an accuracy floor.

Technique: one-layer-at-a-time sensitivity (quantize only that layer, measure the output against the
float model), then greedy: keep the most sensitive layers in float, one more at a time, until the
floor holds (the per-layer sensitivity ranking of HAWQ-style mixed precision, measured rather than
estimated from Hessians).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx

from edgekit.errors import UsageError
from edgekit.plugins.quantize.accuracy import top1_agreement
from edgekit.plugins.quantize.static import compute_nodes, quantize_int8
from edgekit.verify import run_onnxruntime, sqnr_db


@dataclass(frozen=True)
class Floor:
    """``--accuracy-floor``: output SQNR in dB (``30dB``) or top-1 agreement (``top1=0.99``)."""

    kind: str
    value: float

    def met(self, reference: list[dict], actual: list[dict]) -> bool:
        return self.measure(reference, actual) >= self.value

    def measure(self, reference: list[dict], actual: list[dict]) -> float:
        if self.kind == "top1":
            agreement = top1_agreement(reference, actual)
            return -1.0 if agreement is None else agreement
        return sqnr_db(reference, actual)

    @property
    def text(self) -> str:
        return f"top1={self.value:g}" if self.kind == "top1" else f"{self.value:g}dB"


def parse_floor(text: str | None) -> Floor | None:
    if text is None or text == "":
        return None
    value = str(text).strip().lower()
    m = re.fullmatch(r"top1\s*=\s*([0-9.]+)", value)
    if m and 0.0 < float(m.group(1)) <= 1.0:
        return Floor("top1", float(m.group(1)))
    m = re.fullmatch(r"([0-9.]+)\s*(db)?", value)
    if m:
        return Floor("sqnr", float(m.group(1)))
    raise UsageError(f"--accuracy-floor {text}: expected an output SQNR like 30dB or a top-1 agreement "
                     f"like top1=0.99")


def choose(model: onnx.ModelProto, samples: list[dict], validation: list[dict], method: str,
           floor: Floor) -> tuple[list[str], list[dict], float]:
    """(nodes kept in float, the sensitivity table, the accuracy reached)."""
    reference = run_onnxruntime(model, validation, "float model")

    def score(quantized: onnx.ModelProto) -> float:
        return floor.measure(reference, run_onnxruntime(quantized, validation, "quantized model"))

    table = [{"node": node, "alone": score(quantize_int8(model, samples, method, only=[node]))}
             for node in compute_nodes(model)]
    # most sensitive first: the layer that alone costs the most accuracy
    order = sorted(table, key=lambda row: row["alone"])
    keep_float: list[str] = []
    reached = score(quantize_int8(model, samples, method))
    for row in order:
        if reached >= floor.value:
            break
        keep_float.append(row["node"])
        reached = score(quantize_int8(model, samples, method, exclude=keep_float))
    for row in table:
        row["choice"] = "float" if row["node"] in keep_float else "int8"
        row["alone"] = round(float(row["alone"]), 4) if np.isfinite(row["alone"]) else "inf"
    return keep_float, table, reached
