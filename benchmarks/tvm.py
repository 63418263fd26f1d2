"""TVM back end figures: x86-64 latency against onnxruntime, aarch64 instructions NEON vs scalar,
and ``edgekit build`` wall time per target.

x86-64 and x86-64-v3 (AVX2): each model is built with ``--backend tvm`` as Relax schedules it, with
edgekit's default schedule (both ignoring tuning records) and, when the profile's tuning database
holds records (``edgekit tune``), tuned; the libraries and onnxruntime are timed in this one
process on the same input (median of N runs after a warm-up). The TVM driver
runs parallel loops serially on one thread, so onnxruntime is timed with one intra-op thread
(the like-for-like ratio) and with its default threads (for information).
cortex-a76: instructions per inference under qemu-aarch64 (the harness's counting plugin) with the
profile's ``+neon`` kernels and with a copy of the profile whose TVM target says ``-neon`` (scalar).
Emulation counts instructions, not time.

    .venv/bin/python benchmarks/tvm.py [--repeats 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Run as a script, this file's directory is sys.path[0] and its name would shadow the tvm package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"resnet8": ROOT / "examples/models/mlperf-tiny/ic_resnet8.onnx",
          "autoencoder": ROOT / "examples/models/mlperf-tiny/ad_autoencoder.onnx"}


def registry():
    from edgekit.registry import Registry

    reg = Registry()
    if "tvm" not in reg.backends:
        import edgekit.compiler.plugin as plugin

        reg = Registry(extra_plugins=[plugin])
    return reg


def build(model, target, out, run, **options):
    from edgekit.building import BuildRequest, build as edgekit_build

    started = time.perf_counter()
    report = edgekit_build(BuildRequest(model=str(model), target=str(target), output=out, run=run,
                                        backend="tvm", options=options), registry())
    return report, time.perf_counter() - started


def median_us(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


X86_TARGETS = ("x86-64", "x86-64-v3")  # baseline SSE2, and AVX2 + FMA


def x86_latency(scratch: Path, repeats: int) -> dict:
    """Per model and x86 profile: TVM as Relax schedules it (``relax``), with edgekit's default
    schedule (``default``), and tuned when the profile's database holds records, against
    onnxruntime with one thread, all timed in this process on the same 64-byte-aligned input."""
    import onnxruntime as ort

    from edgekit.compiler import tuning
    from edgekit.compiler.runners import load_python_loader

    reg = registry()
    records = {t: tuning.record_count(tuning.database_dir(reg.target(t).tvm_target)) for t in X86_TARGETS}
    figures = {}
    for name, path in MODELS.items():
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        session_1 = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        session_n = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed_name = session_1.get_inputs()[0].name
        shape = [d if isinstance(d, int) else 1 for d in session_1.get_inputs()[0].shape]
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        row = {"onnxruntime_1thread_us": median_us(lambda: session_1.run(None, {feed_name: x}), repeats),
               "onnxruntime_default_us": median_us(lambda: session_n.run(None, {feed_name: x}), repeats)}
        for target in X86_TARGETS:
            variants = {"relax": {"no_tuning": True, "default_schedule": False}, "default": {"no_tuning": True}}
            if records[target]:
                variants["tuned"] = {}
            for variant, options in variants.items():
                out = scratch / f"{name}-{target}-{variant}"
                report, _ = build(path, target, out, False, **options)
                model = load_python_loader(out, report["backend"])
                outputs = [model.aligned(np.empty(s["shape"], dtype=s["dtype"])) for s in report["backend"]["outputs"]]
                x_aligned = model.aligned(x)
                key = f"{target}_{variant}"
                row[f"{key}_us"] = median_us(lambda: model.run_into([x_aligned], outputs), repeats)
                row[f"{key}_vs_ort_1thread"] = row[f"{key}_us"] / row["onnxruntime_1thread_us"]
                if variant == "tuned":
                    row[f"{key}_kernels_tuned"] = len(report["backend"]["tuned_kernels"])
        figures[name] = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
    figures["tuning_records"] = records
    return figures


def scalar_profile(scratch: Path) -> Path:
    """cortex-a76 with its TVM target's NEON turned off (scalar kernels)."""
    text = (ROOT / "targets/cortex-a76.toml").read_text()
    text = text.replace('name = "cortex-a76"', 'name = "cortex-a76-scalar"')
    text = text.replace('mattr = ["+neon", "+dotprod", "+fullfp16"]', 'mattr = ["-neon"]')
    path = scratch / "cortex-a76-scalar.toml"
    path.write_text(text)
    return path


def aarch64_instructions(scratch: Path) -> dict:
    figures = {}
    for name, path in MODELS.items():
        row = {}
        for variant, target in (("neon", "cortex-a76"), ("scalar", scalar_profile(scratch))):
            report, _ = build(path, target, scratch / f"{name}-a76-{variant}", True, no_tuning=True)
            assert report["run"]["max_abs_error"] <= 1e-4
            row[f"{variant}_instructions"] = report["run"]["measurements"]["instructions"]
        row["scalar_over_neon"] = round(row["scalar_instructions"] / row["neon_instructions"], 2)
        figures[name] = row
    return figures


def build_times(scratch: Path) -> dict:
    times = {}
    for target in ("x86-64", "x86-64-v3", "cortex-a53", "cortex-a76", "mali-g78", "adreno-650"):
        for name, path in MODELS.items():
            _, seconds = build(path, target, scratch / f"time-{name}-{target}", False, no_tuning=True)
            times[f"{target}/{name}"] = round(seconds, 2)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ek-bench-tvm-") as scratch:
        scratch = Path(scratch)
        figures = {"x86_64_latency": x86_latency(scratch, args.repeats),
                   "cortex_a76_qemu_instructions": aarch64_instructions(scratch),
                   "build_seconds_no_run": build_times(scratch)}
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
