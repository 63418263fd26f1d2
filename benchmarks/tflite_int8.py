"""TFLite front end (issue 8): the MLPerf Tiny int8 ``.tflite`` files built for the emulated Cortex-M4
(``edgekit build X.tflite --target cortex-m4 --run``), with TFLite Micro's arithmetic.

Prints per model: instructions per inference (per MAC, and against CMSIS-NN's count on the same
board, ../shared/notes/anchor-figures.md), per layer type; library code, weight and arena bytes
(against TFLite Micro's activation arena); how many int8 output values are identical to TFLite
Micro's over 100 seeded inputs; and the published Cortex-M4F latencies of these models as the
reference table. Instructions are executed instructions counted on an emulator: they are not
cycles, and the published figures are milliseconds on silicon.

    .venv/bin/python benchmarks/tflite_int8.py [--samples 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mcu_int8 import CMSIS, CMSIS_LAYERS, MODELS, TFLM_ARENA, layer_type  # noqa: E402

#: model -> (TFLite Micro reference, best published) median latency on a Cortex-M4F at 120 MHz
#: (NUCLEO-L4R5ZI, MLPerf Tiny v0.5-v1.1), ms
PUBLISHED_MS = {"kws_dscnn": {"TFLM reference": 181.9, "microTVM": 144.0, "microTVM+CMSIS-NN": 99.8,
                              "X-CUBE-AI 8.1": 62.9, "Plumerai": 47.8},
                "ic_resnet8": {"TFLM reference": 704.2, "microTVM+CMSIS-NN": 389.6, "X-CUBE-AI 8.1": 214.0,
                               "Plumerai": 167.8},
                "ad_autoencoder": {"TFLM reference": 10.05, "X-CUBE-AI 8.1": 6.86, "Plumerai": 4.05}}


def measure(name: str, work: Path, samples: int) -> dict:
    from edgekit.building import BuildRequest, build
    from edgekit.registry import default_registry

    report = build(BuildRequest(model=str(MODELS / f"{name}_int8.tflite"), target="cortex-m4",
                                output=work / name, run=True, verify_samples=samples), default_registry())
    backend, run = report["backend"], report["run"]
    kinds: dict[str, int] = defaultdict(int)
    for layer, count in zip(backend["layers"], run["measurements"].get("instructions_per_layer", [])):
        kinds[layer_type(layer)] += count
    tflm = run["references"]["tflite"]
    return {"model": name, "macs": report["model"]["after"]["macs"],
            "instructions": run["measurements"]["instructions"], "by_type": dict(kinds),
            "cmsis_instructions": CMSIS[name]["cortex-m4"], "code_bytes": backend["code_bytes"],
            "weights_bytes": backend["weights_bytes"], "arena_bytes": backend["arena_bytes"],
            "output_workspace_bytes": backend["output_workspace_bytes"],
            "int8_arithmetic": backend["int8_arithmetic"], "judged_against": run["judged_against"],
            "tflm_identical_values": tflm["identical_values"], "tflm_values": tflm["values"],
            "tflm_inputs": tflm["inputs"], "published_ms": PUBLISHED_MS[name]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    everything = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("kws_dscnn", "ic_resnet8", "ad_autoencoder"):
            r = measure(name, Path(tmp), args.samples)
            everything.append(r)
            print(f"\n== {name}_int8.tflite on emulated cortex-m4 ({r['int8_arithmetic']} arithmetic; "
                  f"instructions, not cycles)")
            print(f"instructions/inference  {r['instructions']:>12,}  per MAC {r['instructions'] / r['macs']:.2f}"
                  f"   vs CMSIS-NN {r['instructions'] / r['cmsis_instructions']:.3f}x")
            for kind, count in sorted(r["by_type"].items()):
                ref = CMSIS_LAYERS.get(name, {}).get(kind)
                ratio = f"  vs CMSIS-NN {count / ref[0]:.3f}x" if ref else ""
                print(f"    {kind:<16} {count:>12,}{ratio}")
            print(f"library code            -Os {r['code_bytes']['Os']:,} B  -O2 {r['code_bytes']['O2']:,} B")
            print(f"weights                 {r['weights_bytes']:>12,} B")
            print(f"arena                   {r['arena_bytes']:>12,} B  + output buffer as workspace "
                  f"{r['output_workspace_bytes']:,} B  (TFLite Micro's activations {TFLM_ARENA[name]:,} B)")
            print(f"vs TFLite Micro         {r['tflm_identical_values']:,} of {r['tflm_values']:,} int8 output "
                  f"values identical over {r['tflm_inputs']} inputs (run judged against {r['judged_against']})")
            published = ", ".join(f"{k} {v:g} ms" for k, v in r["published_ms"].items())
            print(f"published Cortex-M4F    {published}  (120 MHz silicon, milliseconds: not comparable "
                  f"to instruction counts one for one)")
    if args.json:
        args.json.write_text(json.dumps(everything, indent=2))


if __name__ == "__main__":
    main()
