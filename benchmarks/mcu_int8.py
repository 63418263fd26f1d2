"""MCU back end, int8 (issue 5): ResNet-8 and the autoencoder quantized by `--quantize int8`, run on
the emulated Cortex-M4 and Cortex-M0+, against the float32 build and CMSIS-NN.

Prints per model and core: instructions per inference (and per MAC), the ratio to the float32 build
(M4) and to CMSIS-NN's count on the same board (../shared/notes/anchor-figures.md, gcc 12.2 -O2),
per layer type; int8 weights and arena against the float32 build's and TFLite Micro's activation
arena; output SQNR and top-1 agreement against the float model; the exact-match ratio against
onnxruntime running the same QDQ model. ResNet-8 is calibrated on 64 real-image 32x32 crops and its
accuracy measured on 64 others, disjoint from them (examples/quantize/images.py: photos that
matplotlib and scikit-image ship; no CIFAR-10 offline); the autoencoder is calibrated and measured
on its 40 real frames (ad_sample_input_f32.bin). Instructions, not cycles.

    .venv/bin/python benchmarks/mcu_int8.py [--targets cortex-m4,cortex-m0plus]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "examples" / "models" / "mlperf-tiny"
IMAGES = REPO / "examples" / "quantize" / "images.py"
AE_FRAMES = MODELS / "ad_sample_input_f32.bin"
# CMSIS-NN instructions per inference on the same boards (gcc -O2) and per layer type (M4, M0+).
CMSIS = {
    "kws_dscnn": {"cortex-m4": 7_695_547, "cortex-m0plus": 28_998_020},
    "ic_resnet8": {"cortex-m4": 29_858_477, "cortex-m0plus": 97_549_797},
    "ad_autoencoder": {"cortex-m4": 579_822, "cortex-m0plus": 1_758_406},
}
CMSIS_LAYERS = {  # (M4, M0+) sums of the per-layer rows of anchor-figures.md
    "ic_resnet8": {
        "conv 3x3": (2_110_079 + 5_493_131 + 5_493_133 + 2_520_659 + 4_543_882 + 2_188_998 + 4_155_746,
                     5_182_270 + 17_838_557 + 17_819_143 + 8_417_902 + 15_813_940 + 7_704_008 + 14_940_899),
        "conv 1x1": (563_626 + 421_394, 1_644_145 + 1_278_850),
        "add": (1_331_467 + 669_876 + 334_806, 3_883_571 + 1_945_346 + 978_981),
        "pool": (26_418, 84_833), "fully connected": (1_841, 5_236), "softmax": (3_389, 12_084),
    },
    "ad_autoencoder": {"fully connected": (579_800, 1_758_384)},
    "kws_dscnn": {
        "conv (other kernels)": (1_118_170, 3_017_450),
        "depthwise": (560_973 + 3 * 560_974, 2_573_659 + 2_573_486 + 2_571_759 + 2_574_498),
        "conv 1x1": (1_069_024 + 1_069_025 + 1_069_024 + 1_069_023, 3_873_343 + 3_874_074 + 3_874_787 + 3_875_443),
        "pool": (50_751, 167_490), "fully connected": (2_181, 6_041), "softmax": (4_428, 15_964),
    },
}
# TFLite Micro's activation bytes in its tensor arena (its whole arena: KWS 24,272, ResNet-8 55,984,
# autoencoder 3,984 B)
TFLM_ARENA = {"kws_dscnn": 16_000, "ic_resnet8": 49_152, "ad_autoencoder": 768}


def layer_type(layer: dict) -> str:
    op = layer["op"].split("+")[0]
    if op == "QConv":
        summary = f" {layer.get('summary', '')} "
        if "depthwise" in summary:
            return "depthwise"
        return "conv 1x1" if " k1x1 " in summary else "conv 3x3" if " k3x3 " in summary else "conv (other kernels)"
    return {"QAdd": "add", "QAveragePool": "pool", "QGlobalAveragePool": "pool", "QGemm": "fully connected",
            "QMatMul": "fully connected", "QSoftmax": "softmax"}.get(op, "boundary/other")


def build(model: Path, target: str, out: Path, quantize: bool, options: dict | None = None) -> dict:
    from edgekit.building import BuildRequest, build as edgekit_build
    from edgekit.registry import default_registry

    return edgekit_build(BuildRequest(model=str(model), target=target, output=out, run=True, verify_samples=4,
                                      quantize="int8" if quantize else None, options=options or {}),
                         default_registry())


def arena_without_workspace(out: Path, target: str) -> int:
    """The arena of the same build with option output_workspace=false (every tensor in the arena)."""
    import onnx

    from edgekit.plugins.mcu.generator import lower_model
    from edgekit.plugins.mcu.planner import plan

    return plan(lower_model(onnx.load(out / "reference.onnx"), target), borrow_outputs=False).arena_bytes


def measure(name: str, targets: list[str], work: Path) -> list[dict]:
    model = MODELS / f"{name}.onnx"
    if name == "ad_autoencoder":
        frames = work / "ae_frames.npy"
        np.save(frames, np.fromfile(AE_FRAMES, dtype="<f4").reshape(40, 1, 640))
        options = {"calibration": str(frames)}
    else:
        options = {"calibration": f"{IMAGES}:cifar_like", "validation": f"{IMAGES}:validation"}
    results = []
    float_m4 = build(model, "cortex-m4", work / f"{name}-f32", False)
    for target in targets:
        report = build(model, target, work / f"{name}-{target}", True, options)
        backend, run, q = report["backend"], report["run"], report["quantization"]
        per_layer = run["measurements"].get("instructions_per_layer", [])
        kinds: dict[str, int] = defaultdict(int)
        for layer, count in zip(backend["layers"], per_layer):
            kinds[layer_type(layer)] += count
        results.append({
            "model": name, "target": target, "macs": report["model"]["after"]["macs"],
            "instructions": run["measurements"]["instructions"],
            "float_instructions_m4": float_m4["run"]["measurements"]["instructions"],
            "cmsis_instructions": CMSIS[name][target], "by_type": dict(kinds),
            "weights_bytes": backend["weights_bytes"], "float_weights_bytes": float_m4["backend"]["weights_bytes"],
            "arena_bytes": backend["arena_bytes"], "float_arena_bytes": float_m4["backend"]["arena_bytes"],
            "arena_lower_bound_bytes": backend["arena_lower_bound_bytes"],
            "output_workspace_bytes": backend["output_workspace_bytes"],
            "float_output_workspace_bytes": float_m4["backend"]["output_workspace_bytes"],
            "arena_without_workspace_bytes": arena_without_workspace(work / f"{name}-{target}", target),
            "float_arena_without_workspace_bytes": arena_without_workspace(work / f"{name}-f32", "cortex-m4"),
            "boundary_table_bytes": backend["boundary_table_bytes"],
            "exact_ratio_float64": run.get("exact_ratio_float64", {}),
            "code_bytes": backend["code_bytes"], "exact_ratio": run.get("exact_ratio", {}),
            "max_abs_error": run["max_abs_error"], "output_sqnr_db": q["output_sqnr_db"],
            "top1_agreement": q["top1_agreement"], "calibration": q["calibration"],
            "validation": q["validation"],
        })
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="cortex-m4,cortex-m0plus")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    targets = args.targets.split(",")
    everything = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("ic_resnet8", "ad_autoencoder"):
            for r in measure(name, targets, Path(tmp)):
                everything.append(r)
                core = 0 if r["target"] == "cortex-m4" else 1
                print(f"\n== {name} int8 on emulated {r['target']} (instructions, not cycles)")
                print(f"instructions/inference  {r['instructions']:>12,}  per MAC {r['instructions'] / r['macs']:.2f}"
                      f"   vs CMSIS-NN {r['instructions'] / r['cmsis_instructions']:.3f}x"
                      f"   vs float32 on M4 {r['instructions'] / r['float_instructions_m4']:.3f}x")
                for kind, count in sorted(r["by_type"].items()):
                    ref = CMSIS_LAYERS[name].get(kind)
                    ratio = f"  vs CMSIS-NN {count / ref[core]:.3f}x" if ref else ""
                    print(f"    {kind:<16} {count:>12,}{ratio}")
                weights = r['weights_bytes'] - r['boundary_table_bytes']
                print(f"weights                 {weights:>12,} B  ({weights / r['float_weights_bytes']:.3f}x float32)"
                      f"  + {r['boundary_table_bytes']:,} B of integer-only boundary tables")
                print(f"arena                   {r['arena_bytes']:>12,} B  (float32 {r['float_arena_bytes']:,} B; "
                      f"lower bound {r['arena_lower_bound_bytes']:,}); output buffer as workspace "
                      f"{r['output_workspace_bytes']:,} B (float32 {r['float_output_workspace_bytes']:,} B)")
                alone, float_alone = r['arena_without_workspace_bytes'], r['float_arena_without_workspace_bytes']
                print(f"arena, all in the arena {alone:>12,} B  ({alone / float_alone:.3f}x float32's {float_alone:,} B, "
                      f"{alone / TFLM_ARENA[name]:.3f}x TFLite Micro's activations)")
                print(f"library code            -Os {r['code_bytes']['Os']:,} B  -O2 {r['code_bytes']['O2']:,} B")
                print(f"output SQNR vs float    {r['output_sqnr_db']} dB   top-1 agreement {r['top1_agreement']}"
                      f"   (calibration {Path(r['calibration']['data']).name}, {r['calibration']['samples']} samples;"
                      f" measured on {Path(r['validation']).name})")
                print(f"vs onnxruntime (QDQ)    exact {r['exact_ratio']}   max abs error {r['max_abs_error']:.3g}"
                      f"   vs the exact (float64) QDQ arithmetic: exact {r['exact_ratio_float64']}")
    if args.json:
        args.json.write_text(json.dumps(everything, indent=2))


if __name__ == "__main__":
    main()
