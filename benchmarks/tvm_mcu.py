"""``--kernels tvm`` on the emulated Cortex-M4: TVM's kernels against edgekit's own float32 kernels.

For ResNet-8 and the autoencoder, each built and run in this process on the same seeded input:

- ``edgekit``: mcu-c with its hand-written kernels (float32);
- ``tvm-relax``: TVM kernels as Relax legalizes them (``default_schedule=false``, no tuning records);
- ``tvm-default``: with edgekit's default conv schedule (``compiler/default_schedule.py``), no records;
- ``tvm-default-c``: the same kernels through TVM's ``c`` target, compiled by the target's gcc;
- ``tvm-tuned``: with the tuning database's records for the target, when it has any
  (``edgekit tune MODEL --target cortex-m4 --trials N``); the row names the tuned kernels.

Printed per row: instructions per inference and their ratio to edgekit's, instructions per MAC of
the conv layers (min-max), arena bytes against the lower bound of the tensors alone, the largest
kernel workspace, library code bytes at -O2 (kernels + driver, no weights), max abs error against
onnxruntime, and ``edgekit build`` wall time without the run. Emulators count instructions: these
are not cycles.

    .venv/bin/python benchmarks/tvm_mcu.py [--target cortex-m4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"resnet8": ROOT / "examples/models/mlperf-tiny/ic_resnet8.onnx",
          "autoencoder": ROOT / "examples/models/mlperf-tiny/ad_autoencoder.onnx"}
VARIANTS = {
    "edgekit": {},
    "tvm-relax": {"kernels": "tvm", "default_schedule": False, "no_tuning": True},
    "tvm-default": {"kernels": "tvm", "no_tuning": True},
    "tvm-default-c": {"kernels": "tvm", "no_tuning": True, "tvm_codegen": "c"},
    "tvm-tuned": {"kernels": "tvm"},
}


def registry():
    from edgekit.registry import Registry

    reg = Registry()
    if "tvm" not in reg.kernel_libraries:
        import edgekit.compiler.plugin as plugin

        reg = Registry(extra_plugins=[plugin])
    return reg


def build(model: Path, target: str, out: Path, run: bool, options: dict) -> tuple[dict, float]:
    from edgekit.building import BuildRequest, build as edgekit_build

    started = time.perf_counter()
    report = edgekit_build(BuildRequest(model=str(model), target=target, output=out, run=run, options=options),
                           registry())
    return report, time.perf_counter() - started


def row(report: dict, seconds: float) -> dict:
    backend, run = report["backend"], report["run"]
    measured = run["measurements"]
    per_layer = measured.get("instructions_per_layer") or []
    conv = [count / layer["macs"] for layer, count in zip(backend["layers"], per_layer)
            if layer["macs"] and ("conv" in layer["kernel"].lower() or layer["op"] == "Conv")]
    tensors = backend.get("arena_tensor_lower_bound_bytes") or backend.get("arena_lower_bound_bytes")
    return {
        "instructions": measured["instructions"],
        "conv_instructions_per_mac": [round(min(conv), 2), round(max(conv), 2)] if conv else None,
        "instructions_per_mac": round(measured["instructions"] / max(1, sum(l["macs"] for l in backend["layers"])), 2),
        "arena_bytes": backend["arena_bytes"],
        "tensor_lower_bound_bytes": tensors,
        "arena_over_tensor_bound": round(backend["arena_bytes"] / tensors, 3) if tensors else None,
        "workspace_bytes": backend.get("workspace_bytes", 0),
        "code_bytes_O2": backend["code_bytes"]["O2"],
        "max_abs_error": run["max_abs_error"],
        "tuned_kernels": backend.get("tuned_kernels", []),
        "build_seconds_with_run": round(seconds, 2),
    }


def measure(target: str, scratch: Path) -> dict:
    figures: dict = {}
    for name, model in MODELS.items():
        rows = {}
        for variant, options in VARIANTS.items():
            report, seconds = build(model, target, scratch / f"{name}-{variant}", True,
                                    {**options, "ignore_budget": True})
            if variant == "tvm-tuned" and not report["backend"].get("tuned_kernels"):
                rows[variant] = "no tuning records for this target (run edgekit tune)"
                continue
            rows[variant] = row(report, seconds)
        base = rows["edgekit"]["instructions"]
        for variant, values in rows.items():
            if isinstance(values, dict):
                values["instructions_vs_edgekit"] = round(values["instructions"] / base, 3)
        _, seconds = build(model, target, scratch / f"{name}-time", False, {"kernels": "tvm", "no_tuning": True})
        rows["tvm_build_seconds_no_run"] = round(seconds, 2)
        figures[name] = rows
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cortex-m4")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ek-bench-tvm-mcu-") as scratch:
        figures = measure(args.target, Path(scratch))
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
