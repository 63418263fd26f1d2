"""How far a rewritten model's outputs are from its input model's, on calibration data: the figures
the approximate experts passes (prune, average) report and decide by."""

from __future__ import annotations

import numpy as np
import onnx


def output_error(reference: list[dict[str, np.ndarray]], actual: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Over every output and sample:

    * ``max_abs``: the largest ``|actual - reference|``;
    * ``relative_rms``: ``sqrt(sum (actual - reference)^2 / sum reference^2)``;
    * ``max_relative``: per output, ``max |actual - reference| / max |reference|``; the largest of these.
    """
    max_abs, num, den, max_rel = 0.0, 0.0, 0.0, 0.0
    for name in (reference[0] if reference else {}):
        ref = np.concatenate([r[name].astype(np.float64).reshape(-1) for r in reference])
        got = np.concatenate([a[name].astype(np.float64).reshape(-1) for a in actual])
        diff = np.abs(got - ref)
        worst = float(diff.max(initial=0.0))
        max_abs = max(max_abs, worst)
        num += float(np.sum(diff ** 2))
        den += float(np.sum(ref ** 2))
        scale = float(np.abs(ref).max(initial=0.0))
        max_rel = max(max_rel, worst / scale if scale else (0.0 if worst == 0 else float("inf")))
    return {"max_abs": max_abs, "relative_rms": float(np.sqrt(num / den)) if den else 0.0,
            "max_relative": max_rel}


def rounded(error: dict[str, float]) -> dict[str, float]:
    """``error`` for the report (significant digits kept, not decimals: the errors may be tiny)."""
    return {k: float(f"{v:.6g}") for k, v in error.items()}


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def drop_value_info(model: onnx.ModelProto, names: set[str] = frozenset()) -> None:
    """Forget (in place) the recorded shapes of ``names`` (their shapes changed) and of tensors no
    longer in the graph, so shape inference works them out afresh."""
    present = ({o for n in model.graph.node for o in n.output} | {t.name for t in model.graph.initializer}
               | {i.name for i in model.graph.input})
    kept = [v for v in model.graph.value_info if v.name in present and v.name not in names]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)
