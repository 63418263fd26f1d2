"""The largest model built without error (issue 9), per back end and target.

Synthetic models grow until something gives: a stack of Gemm+Relu layers sized by its weights
(flash), and a Conv+Relu pair sized by its feature maps (RAM).

- mcu-c, cortex-m4 on the emulated board: the limits are the profile's flash and RAM budgets. The
  largest fitting size is found by bisection (builds without --run), then built, run and compared
  with onnxruntime; the next size up must be refused in one line naming the budget (exit 1 or 2,
  no traceback).
- mcu-c on the host (x86-64, the C under ASan/UBSan) and the TVM back end on x86-64: weights of
  growing size, each built, run and compared; build seconds and peak RSS (of the build process and
  everything it ran: gcc, the runner) show where the cost goes.
- The largest real model of the MLPerf Tiny set built and run for cortex-m4.

Every build is a separate ``edgekit build`` process, so an error is seen as a user sees it.

    .venv/bin/python benchmarks/scale.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
EDGEKIT = Path(sys.executable).parent / "edgekit"
REAL_MODELS = Path("/work/shared/models/mlperf-tiny")
MB = 1 << 20
GEMM_DEPTH = 4
CONV_CHANNELS = 8
# Host builds past this are not started: a C compile of constant arrays grows with them, and the
# machine is shared (the script stops growing once a build takes longer, see host_series).
HOST_BUILD_TIMEOUT_S = 420
BUDGET_WORDS = ("flash", "ram")


@dataclass
class Row:
    target: str
    backend: str
    model: str
    parameters: int
    weight_bytes: int
    built: bool
    matched: bool | None
    build_seconds: float
    peak_rss_mb: float
    note: str = ""


def gemm_stack(path: Path, width: int, depth: int = GEMM_DEPTH) -> int:
    """``depth`` Gemm(width x width)+Relu layers; returns the parameter count. Weights scaled by
    1/sqrt(width) keep activations of order one however wide the layers are."""
    rng = np.random.default_rng(width)
    nodes, weights, name = [], [], "x"
    for i in range(depth):
        w = (rng.standard_normal((width, width), dtype=np.float32) / np.sqrt(width)).astype(np.float32)
        weights += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(np.zeros(width, np.float32), f"B{i}")]
        nodes += [helper.make_node("Gemm", [name, f"W{i}", f"B{i}"], [f"h{i}"], transB=1),
                  helper.make_node("Relu", [f"h{i}"], [f"a{i}"])]
        name = f"a{i}"
    _save(path, nodes, weights, [1, width], [1, width], name)
    return depth * (width * width + width)


def conv_pair(path: Path, side: int, channels: int = CONV_CHANNELS) -> int:
    """Two 3x3 Conv+Relu layers on a ``channels`` x side x side map: RAM grows with side squared,
    the weights stay tiny. Returns the parameter count."""
    rng = np.random.default_rng(side)
    nodes, weights, name = [], [], "x"
    for i in range(2):
        w = (rng.standard_normal((channels, channels, 3, 3)) / (3 * np.sqrt(channels))).astype(np.float32)
        weights += [numpy_helper.from_array(w, f"K{i}"), numpy_helper.from_array(np.zeros(channels, np.float32), f"C{i}")]
        nodes += [helper.make_node("Conv", [name, f"K{i}", f"C{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        name = f"r{i}"
    shape = [1, channels, side, side]
    _save(path, nodes, weights, shape, shape, name)
    return 2 * (channels * channels * 9 + channels)


def _save(path: Path, nodes, weights, in_shape, out_shape, output: str) -> None:
    graph = helper.make_graph(nodes, path.stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, out_shape)], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)


def build(model: Path, target: str, backend: str | None, out: Path, run: bool,
          timeout: float = HOST_BUILD_TIMEOUT_S) -> dict:
    """One ``edgekit build`` process: exit status, seconds, peak RSS (MB, the largest of the build and
    the processes it waited for, from wait4), its last stderr line and its report."""
    command = [str(EDGEKIT), "build", str(model), "-t", target, "-o", str(out), "-q",
               *(["--backend", backend] if backend else []), *(["--run"] if run else [])]
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, text=True)
        status, usage = _wait(proc, timeout)
        seconds = time.perf_counter() - start
        err.seek(0)
        stderr = err.read()
    report = out / "report.json"
    return {"status": status, "seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024 if usage else 0.0,
            "stderr": stderr, "report": json.loads(report.read_text()) if status == 0 and report.is_file() else None}


def _wait(proc: subprocess.Popen, timeout: float):
    """(exit status, rusage) of ``proc``; None status when it ran past ``timeout`` (then killed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage
        time.sleep(0.2)
    proc.kill()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return None, usage


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def clean_refusal(result: dict) -> bool:
    """Exit 1 or 2, no traceback, one line of error that names a flash or RAM budget."""
    lines = [line for line in result["stderr"].strip().splitlines() if line.strip()]
    text = result["stderr"].lower()
    return (result["status"] in (1, 2) and "traceback" not in text and len(lines) == 1
            and any(word in text for word in BUDGET_WORDS))


def matched(result: dict) -> bool | None:
    """Whether the run matched onnxruntime within the build's tolerance (None: not run)."""
    run = (result["report"] or {}).get("run")
    if not run:
        return None
    tolerance = run.get("tolerance", {"atol": 1e-4})
    return run["max_abs_error"] <= tolerance["atol"] + tolerance.get("rtol", 0.0)


def row(target: str, backend: str, name: str, params: int, weight_bytes: int, result: dict) -> Row:
    note = "" if result["status"] == 0 else ("timeout" if result["status"] is None else error_line(result["stderr"]))
    done = Row(target, backend, name, params, weight_bytes, result["status"] == 0, matched(result),
               round(result["seconds"], 1), round(result["peak_rss_mb"], 1), note)
    print(f"{target} {backend} {name}: {'built' if done.built else 'not built'} in {done.build_seconds} s",
          file=sys.stderr, flush=True)  # the table comes at the end, after minutes
    return done


def largest_fitting(make, lo: int, hi: int, step: int, work: Path, target: str) -> tuple[int, int]:
    """Bisect the size parameter of ``make`` (lo builds, hi is refused) to ``step``: (largest
    that builds, smallest refused), by builds without a run."""
    def fits(size: int) -> bool:
        model = work / f"probe-{make.__name__}-{size}.onnx"
        make(model, size)
        result = build(model, target, None, work / f"probe-{size}", run=False)
        if result["status"] != 0 and not clean_refusal(result):
            raise RuntimeError(f"{model.name} on {target}: not a clean refusal: {result['stderr'][-2000:]}")
        return result["status"] == 0

    assert fits(lo) and not fits(hi), f"{make.__name__}: {lo} must fit and {hi} must not on {target}"
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step or lo + step
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo, hi


def mcu_limits(work: Path, target: str = "cortex-m4") -> list[Row]:
    """Flash (Gemm stack width) and RAM (Conv map side) limits of mcu-c on the emulated board."""
    rows = []
    for make, lo, hi, step, what in ((gemm_stack, 64, 512, 8, "gemm"), (conv_pair, 16, 256, 4, "conv")):
        fit, refused = largest_fitting(make, lo, hi, step, work, target)
        for size, run in ((fit, True), (refused, False)):
            model = work / f"{what}-{size}.onnx"
            params = make(model, size)
            result = build(model, target, None, work / f"{what}-{size}-{target}", run=run)
            name = f"{what} {'width' if what == 'gemm' else 'side'} {size}"
            if result["status"] != 0:
                name += " (refused cleanly)" if clean_refusal(result) else " (NOT a clean refusal)"
            rows.append(row(target, "mcu-c", name, params, 4 * params, result))
    return rows


def host_series(work: Path, backend: str, sizes_mb: list[int], target: str = "x86-64") -> list[Row]:
    """Gemm stacks of ``sizes_mb`` megabytes of weights built and run on the host. A size whose
    build is predicted (linear in the weights, from the last one) to exceed the timeout is skipped."""
    rows: list[Row] = []
    for size in sizes_mb:
        if rows and not rows[-1].built:
            break
        width = int(np.sqrt(size * MB / 4 / GEMM_DEPTH))
        if rows and rows[-1].build_seconds * size / _mb(rows[-1]) > HOST_BUILD_TIMEOUT_S:
            rows.append(Row(target, backend, f"gemm width {width} (skipped)", 0, size * MB, False, None, 0.0,
                            0.0, f"{rows[-1].build_seconds:.0f} s for {_mb(rows[-1]):.0f} MB predicts "
                            f"more than {HOST_BUILD_TIMEOUT_S} s"))
            break
        model = work / f"gemm-{width}.onnx"
        params = gemm_stack(model, width)
        result = build(model, target, backend, work / f"{backend}-{width}", run=True)
        rows.append(row(target, backend, f"gemm width {width}", params, 4 * params, result))
        model.unlink()
    return rows


def _mb(r: Row) -> float:
    return r.weight_bytes / MB


def real_model(work: Path, target: str = "cortex-m4") -> Row:
    """The largest .onnx of the MLPerf Tiny set, built and run for ``target``."""
    model = max(REAL_MODELS.glob("*.onnx"), key=lambda p: p.stat().st_size)
    params = sum(int(np.prod(t.dims)) for t in onnx.load(model).graph.initializer)
    result = build(model, target, None, work / f"real-{target}", run=True)
    weights = (result["report"] or {}).get("backend", {}).get("weights_bytes", 4 * params)
    return row(target, "mcu-c", f"{model.name} (real)", params, weights, result)


def print_table(rows: list[Row]) -> None:
    print(f"{'target':<10} {'backend':<8} {'model':<34} {'parameters':>12} {'weight bytes':>13} "
          f"{'built':>5} {'matched':>7} {'build s':>8} {'peak RSS MB':>11}  note")
    for r in rows:
        match = "-" if r.matched is None else ("yes" if r.matched else "NO")
        print(f"{r.target:<10} {r.backend:<8} {r.model:<34} {r.parameters:>12,} {r.weight_bytes:>13,} "
              f"{'yes' if r.built else 'no':>5} {match:>7} {r.build_seconds:>8.1f} {r.peak_rss_mb:>11.0f}  {r.note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="host sizes 1 and 16 MB only")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    mcu_sizes = [1, 16] if args.quick else [1, 16, 64, 256]
    tvm_sizes = [1, 16] if args.quick else [1, 16, 64]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ek-scale-") as scratch:
        work = Path(scratch)
        rows = [real_model(work), *mcu_limits(work), *host_series(work, "mcu-c", mcu_sizes),
                *host_series(work, "tvm", tvm_sizes)]
    print_table(rows)
    print(f"total {time.perf_counter() - start:.0f} s; peak RSS of this script's children "
          f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))


if __name__ == "__main__":
    main()
