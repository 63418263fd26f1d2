"""MCU back end, float32, on the emulated Cortex-M4: the figures issue 3 asks for.

For ResNet-8 and the autoencoder: instructions per inference and per MAC (total and per conv layer),
arena bytes and their ratio to the lower bound, weights bytes, library code bytes (kernels + schedule,
without weights and harness) at -Os and -O2, and `edgekit build` wall time without the run. Reference
figures measured on the same emulated board with gcc 12.2 -O2 (../shared/notes/anchor-figures.md) are
printed beside ours as ratios. Emulators count instructions: these are not cycles.

    .venv/bin/python benchmarks/mcu_float32.py [--target cortex-m4]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "examples" / "models" / "mlperf-tiny"
# (instructions per inference, intermediate RAM bytes, library code bytes) on the same board, gcc -O2.
REFERENCES = {
    "ic_resnet8": {"onnx2c": (232_445_036, 196_608, 2_876), "tvm-llvm": (62_293_358, 336_708, 35_112)},
    "ad_autoencoder": {"onnx2c": (1_344_346, 1_024, 1_048), "tvm-llvm": (1_600_951, 3_588, 7_100)},
}


def _build(model: Path, target: str, out: Path, run: bool) -> tuple[dict, float]:
    from edgekit.building import BuildRequest, build
    from edgekit.registry import Registry

    start = time.perf_counter()
    report = build(BuildRequest(model=str(model), target=target, output=out, run=run), Registry())
    return report, time.perf_counter() - start


def measure(name: str, target: str, work: Path) -> dict:
    model = MODELS / f"{name}.onnx"
    _, build_seconds = _build(model, target, work / f"{name}-build", run=False)
    report, _ = _build(model, target, work / f"{name}-run", run=True)
    backend, run = report["backend"], report["run"]["measurements"]
    macs = report["model"]["after"]["macs"]
    conv = [(layer, count) for layer, count in zip(backend["layers"], run.get("instructions_per_layer", []))
            if layer["op"].split("+")[0] in ("Conv", "Gemm", "MatMul") and layer.get("macs")]
    return {
        "model": name, "target": target, "macs": macs,
        "instructions": run["instructions"], "instructions_per_mac": run["instructions"] / macs,
        "layer_instructions_per_mac": [(layer["node"], count / layer["macs"]) for layer, count in conv],
        "arena_bytes": backend["arena_bytes"], "arena_lower_bound_bytes": backend["arena_lower_bound_bytes"],
        "arena_ratio": backend["arena_bytes"] / backend["arena_lower_bound_bytes"],
        "weights_bytes": backend["weights_bytes"], "code_bytes": backend["code_bytes"],
        "build_seconds": build_seconds, "max_abs_error": report["run"]["max_abs_error"],
        "stack_bytes": run.get("stack_bytes"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cortex-m4")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("ic_resnet8", "ad_autoencoder"):
            r = measure(name, args.target, Path(tmp))
            results.append(r)
            print(f"\n== {name} on emulated {args.target} (float32; instructions, not cycles)")
            print(f"instructions/inference  {r['instructions']:>13,}   per MAC {r['instructions_per_mac']:.2f}"
                  f"   ({r['macs']:,} MACs)")
            for node, per_mac in r["layer_instructions_per_mac"]:
                print(f"    {node[-48:]:<48} {per_mac:6.2f} instructions/MAC")
            print(f"arena                   {r['arena_bytes']:>13,} B   lower bound {r['arena_lower_bound_bytes']:,} B"
                  f"   ratio {r['arena_ratio']:.3f}")
            print(f"weights                 {r['weights_bytes']:>13,} B")
            print(f"library code            -Os {r['code_bytes']['Os']:,} B   -O2 {r['code_bytes']['O2']:,} B")
            print(f"stack (measured)        {r['stack_bytes']}")
            print(f"build wall time         {r['build_seconds']:.2f} s (without the run)")
            print(f"max abs error vs ORT    {r['max_abs_error']:.2e}")
            for ref, (insns, ram, code) in REFERENCES[name].items():
                print(f"  vs {ref:<9} instructions {r['instructions'] / insns:.3f}x   "
                      f"RAM {r['arena_bytes'] / ram:.3f}x   code(-O2) {r['code_bytes']['O2'] / code:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
