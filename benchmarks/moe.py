"""Mixture-of-experts figures on the emulated Cortex-M4: instructions per inference with
conditional execution (only the top-2 of 8 experts run) against computing all 8 experts, for the
MoE MLP and the MoE transformer block of ``examples/moe``, built from PyTorch by ``edgekit build``
(default cortex-m4 pipeline, which partitions the experts) and run under QEMU (mps2-an386) with
the harness's exact instruction counting: instructions, not cycles; in float32, static int8
(``--quantize int8``) and weight-only experts (pass ``experts-precision``: every expert int8, or
a mix of int8 and int4 within ``experts_flash_budget``; activations float). Also the arena bytes
with experts run from flash and with k RAM slots (``expert_memory=ram``), and the weight bytes
(all, and the experts' alone).
Every run is checked against onnxruntime by the build itself, so a figure is only printed for a
model that computed the right thing.

    .venv/bin/python benchmarks/moe.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgekit.building import BuildRequest, build
from edgekit.registry import default_registry

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "moe" / "moe_models.py"
MODELS = {"moe-mlp": ("make_moe_mlp", "1,16"), "moe-block": ("make_moe_block", "1,8,32")}
#: bytes for the 8 experts' weights (both models' experts are 32 -> 128 -> 32: 9,856 B at int8,
#: 5,760 B at int4): room for three experts at int8, the other five at int4
MIXED_BUDGET = 60_000
MODES = {"top-2 of 8": {}, "all 8": {"moe_conditional": False}, "top-2, RAM slots": {"expert_memory": "ram"},
         "int8 top-2 of 8": {"quantize": "int8"}, "int8 all 8": {"quantize": "int8", "moe_conditional": False},
         "w8 experts top-2": {"passes": ["experts-precision"]},
         "w8/w4 experts top-2": {"passes": ["experts-precision"], "experts_flash_budget": MIXED_BUDGET}}
GOAL = 0.35


def measure(work: Path, factory: str, shape: str, options: dict) -> dict:
    options = dict(options)
    quantize = options.pop("quantize", None)
    registry = default_registry()
    extra = options.pop("passes", [])
    passes = [*registry.target("cortex-m4").passes, *extra] if extra else None
    report = build(BuildRequest(model=f"{EXAMPLES}:{factory}", target="cortex-m4", output=work, run=True,
                                input_shapes=[shape], verify_samples=8, quantize=quantize, passes=passes,
                                options=options), registry)
    moe = next(layer for layer in report["backend"]["layers"] if layer["op"] == "MoE")
    index = moe["index"]
    return {"instructions": report["run"]["measurements"]["instructions"],
            "moe_layer_instructions": report["run"]["measurements"]["instructions_per_layer"][index],
            "arena_bytes": report["backend"]["arena_bytes"], "weights_bytes": report["backend"]["weights_bytes"],
            "expert_weights_bytes": sum(p["weights_bytes"] for p in report["backend"]["moe"][0]["placement"]),
            "max_abs_error": report["run"]["max_abs_error"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="edgekit-moe-bench-") as tmp:
        for model, (factory, shape) in MODELS.items():
            figures[model] = {mode: measure(Path(tmp) / f"{model}-{i}", factory, shape, options)
                              for i, (mode, options) in enumerate(MODES.items())}
            runs = figures[model]
            runs["ratio"] = runs["top-2 of 8"]["instructions"] / runs["all 8"]["instructions"]
            runs["ratio_int8"] = runs["int8 top-2 of 8"]["instructions"] / runs["int8 all 8"]["instructions"]
    table = Table(title="MoE on emulated cortex-m4 (instructions, not cycles)")
    for column in ("model", "mode", "instructions", "MoE layer", "arena B", "weights B", "experts B", "max |err|"):
        table.add_column(column, justify="right" if column not in ("model", "mode") else "left")
    for model, runs in figures.items():
        for mode in MODES:
            r = runs[mode]
            table.add_row(model, mode, f"{r['instructions']:,}", f"{r['moe_layer_instructions']:,}",
                          f"{r['arena_bytes']:,}", f"{r['weights_bytes']:,}", f"{r['expert_weights_bytes']:,}",
                          f"{r['max_abs_error']:.1e}")
    console = Console(width=120)
    console.print(table)
    for model, runs in figures.items():
        for key, what in (("ratio", "float32"), ("ratio_int8", "int8")):
            verdict = "meets" if runs[key] <= GOAL else "MISSES"
            console.print(f"{model} ({what}): conditional / all experts = {runs[key]:.3f} ({verdict} the goal "
                          f"<= {GOAL})")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
