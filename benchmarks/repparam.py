"""Re-parameterization figures: for every example in ``examples/repparam`` and both torch exporters,
MACs and parameters before/after the repparam pipeline, the plain architecture's figures, whether
the node-type multisets match, and the max error against the unmerged model; plus emulated
Cortex-M4 instructions per inference before/after when the MCU back end can run.

    .venv/bin/python benchmarks/repparam.py [--json out.json] [--examples repvgg,lora]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples" / "repparam"))

from export import EXAMPLES, EXPORTERS, export  # noqa: E402

from edgekit.building import BuildRequest, build  # noqa: E402
from edgekit.errors import EdgekitError  # noqa: E402
from edgekit.model import model_stats, op_counts  # noqa: E402
from edgekit.registry import default_registry  # noqa: E402
from edgekit.verify import random_inputs, run_onnxruntime  # noqa: E402

PIPELINE = ["fold-constants", "eliminate-dead-code", "fold-batchnorm", "fold-ssf", "merge-lora",
            "merge-branches", "collapse-linear-chains", "eliminate-dead-code"]
SAMPLES = 4


def build_onnx(model: onnx.ModelProto, work: Path, name: str, passes: list[str], target: str = "x86-64",
               run: bool = False) -> tuple[dict, onnx.ModelProto]:
    source = work / f"{name}.onnx"
    onnx.save(model, str(source))
    out = work / f"{name}.{target}.out"
    report = build(BuildRequest(model=str(source), target=target, output=out, passes=passes, run=run,
                                verify_samples=SAMPLES), default_registry())
    return report, onnx.load(str(out / "reference.onnx"))


def relative_error(original: onnx.ModelProto, merged: onnx.ModelProto) -> float:
    """max |merged - original| / max |original| over every output and sample."""
    inputs = random_inputs(original, SAMPLES, seed=1)
    worst = 0.0
    for ref, out in zip(run_onnxruntime(original, inputs), run_onnxruntime(merged, inputs)):
        for name, value in ref.items():
            scale = float(np.max(np.abs(value))) or 1.0
            worst = max(worst, float(np.max(np.abs(out[name].astype(np.float64) - value))) / scale)
    return worst


def measure(name: str, exporter: str, work: Path) -> dict:
    trained = export(name, exporter)
    plain = export(name, exporter, plain=True)
    report, merged = build_onnx(trained, work, f"{name}.{exporter}", PIPELINE)
    _, plain_built = build_onnx(plain, work, f"{name}.plain.{exporter}", PIPELINE)
    before, after, plain_stats = model_stats(trained), model_stats(merged), model_stats(plain_built)
    return {
        "example": name, "exporter": exporter,
        "before": before.as_dict(), "after": after.as_dict(), "plain": plain_stats.as_dict(),
        "ops_before": op_counts(trained), "ops_after": op_counts(merged), "ops_plain": op_counts(plain_built),
        "matches_plain": op_counts(merged) == op_counts(plain_built) and after.parameters == plain_stats.parameters,
        "max_rel_error": relative_error(trained, merged),
        "passes": {p["name"]: p["notes"] for p in report["passes"] if p["notes"] and p["plugin"] == "repparam"},
        # the pipeline ends with eliminate-dead-code: it must find nothing the repparam passes left behind
        "left_dead_code": report["passes"][-1]["notes"],
    }


def cortex_m4_instructions(name: str, exporter: str, work: Path) -> tuple[int | None, int | None] | str:
    """Emulated instructions per inference before/after, or why they cannot be measured."""
    registry = default_registry()
    if "cortex-m4" not in registry.targets:
        return "no cortex-m4 target"
    try:
        counts = []
        for label, passes in (("before", ["fold-constants", "eliminate-dead-code"]), ("after", PIPELINE)):
            report, _ = build_onnx(export(name, exporter), work, f"{name}.{exporter}.{label}", passes,
                                   target="cortex-m4", run=True)
            measurements = report.get("run", {}).get("measurements", {})
            counts.append(measurements.get("instructions"))
        return tuple(counts)
    except Exception as exc:  # the MCU back end is another team's work in progress: report, don't fail
        return f"cortex-m4 run unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--examples", default=",".join(EXAMPLES))
    parser.add_argument("--no-mcu", action="store_true", help="skip the emulated Cortex-M4 runs")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"{'example':16} {'exporter':8} {'MACs before':>12} {'MACs after':>11} {'params before':>14} "
              f"{'params after':>13} {'plain params':>13} {'= plain':>7} {'max rel err':>11}  cortex-m4 instr. before/after")
        for name in args.examples.split(","):
            for exporter in EXPORTERS:
                try:
                    row = measure(name, exporter, work)
                except EdgekitError as exc:  # a failing build is a figure too: say which and why
                    rows.append({"example": name, "exporter": exporter, "error": str(exc)})
                    print(f"{name:16} {exporter:8} build failed: {exc}", flush=True)
                    continue
                row["cortex_m4"] = "skipped" if args.no_mcu else cortex_m4_instructions(name, exporter, work)
                rows.append(row)
                b, a, p = row["before"], row["after"], row["plain"]
                print(f"{name:16} {exporter:8} {b['macs']:>12} {a['macs']:>11} {b['parameters']:>14} "
                      f"{a['parameters']:>13} {p['parameters']:>13} {str(row['matches_plain']):>7} "
                      f"{row['max_rel_error']:>11.2e}  {row['cortex_m4']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
