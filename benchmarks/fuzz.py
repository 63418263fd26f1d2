"""Differential fuzzing at scale (issue 9): random valid ONNX graphs built with `edgekit build --run`,
each run compared with onnxruntime. Runs, each with its own count:

    --examples              float graphs (tests/hardening/graphs.py), mcu-c on the host under ASan/UBSan
    --board-examples        the same on the emulated cortex-m4 and cortex-m0plus
    --int8-examples         int8 graphs (tests/hardening/int8_graphs.py), --quantize int8, host + sanitizers
    --int8-tflite-examples  the same with --option int8_arithmetic=tflite (quantized ops only)
    --int8-board-examples   int8 graphs on the emulated cortex-m4 and cortex-m0plus
    --tvm-examples          float graphs, --backend tvm on x86-64
    --tvm-board-examples    float graphs, --kernels tvm under mcu-c on the emulated cortex-m4 and cortex-m0plus

Prints per run how many graphs ran, the op mix (and, for int8, the mix of layers that ran as int8
kernels), and every failure as it is found (the error and the graph as text, to turn into a
regression test).
The exit code is 1 when any failure was found.

    .venv/bin/python benchmarks/fuzz.py [--examples 1000] [--board-examples 0] [--int8-examples 0]
        [--int8-tflite-examples 0] [--int8-board-examples 0] [--tvm-examples 0]
        [--tvm-board-examples 0] [--seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

# Run as a script, this file's directory is sys.path[0], where benchmarks/tvm.py would shadow the tvm
# package (the TVM runs import it); the repository root takes its place, for the tests package.
sys.path[:] = [str(Path(__file__).resolve().parents[1])] + [
    p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from tests.hardening.differential import build_and_compare, describe  # noqa: E402
from tests.hardening.graphs import graphs  # noqa: E402
from tests.hardening.int8_graphs import int8_graphs  # noqa: E402


@dataclass(frozen=True)
class Run:
    """One fuzzing run: the option giving its count, where it builds, and what it generates."""

    option: str
    target: str
    flavour: str
    generator: object  # a strategy factory taking max_ops: graphs, int8_graphs
    max_ops: int


RUNS = [
    Run("examples", "x86-64", "float", graphs, 6),
    Run("board_examples", "cortex-m4", "float", graphs, 4),
    Run("board_examples", "cortex-m0plus", "float", graphs, 4),
    Run("int8_examples", "x86-64", "int8", int8_graphs, 6),
    # TFLite's rounding is held to the step bound only: no float-only ops (see int8_graphs)
    Run("int8_tflite_examples", "x86-64", "int8-tflite", partial(int8_graphs, quantized_only=True), 6),
    Run("int8_board_examples", "cortex-m4", "int8", int8_graphs, 5),
    Run("int8_board_examples", "cortex-m0plus", "int8", int8_graphs, 5),
    Run("tvm_examples", "x86-64", "tvm", graphs, 6),
    Run("tvm_board_examples", "cortex-m4", "tvm", graphs, 4),
    Run("tvm_board_examples", "cortex-m0plus", "tvm", graphs, 4),
]


def _int8_layers(report: dict) -> list[str]:
    """The ops of the layers that ran as int8 kernels (mcu-c names them Q<op>[+fused])."""
    return [layer["op"] for layer in report.get("backend", {}).get("layers", [])
            if layer.get("dtype") == "int8" and layer["op"] != "QuantizeLinear"]


def fuzz(run: Run, examples: int, random_seed: int) -> dict:
    ops: Counter = Counter()
    int8: Counter = Counter()
    found: list[dict] = []
    count = 0

    @seed(random_seed)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=["generate"])
    @given(run.generator(max_ops=run.max_ops))
    def one(model):
        nonlocal count
        count += 1
        ops.update(n.op_type for n in model.graph.node)
        try:
            int8.update(_int8_layers(build_and_compare(model, run.target, flavour=run.flavour)))
        except Exception as exc:
            found.append({"target": run.target, "flavour": run.flavour,
                          "error": f"{type(exc).__name__}: {exc}", "graph": describe(model)})
            _print_failure(found[-1], count)

    one()
    return {"target": run.target, "flavour": run.flavour, "examples": count, "mismatches": found,
            "ops": dict(ops), "int8_layers": dict(int8)}


def _print_failure(failure: dict, index: int) -> None:
    """As soon as it is found: a long session shows its findings while it runs."""
    print(f"-- [{failure['target']} {failure['flavour']} #{index}] {failure['error']}\n{failure['graph']}",
          flush=True)


def _print(result: dict, seconds: float) -> None:
    print(f"== {result['target']} {result['flavour']}: {result['examples']} random graphs, "
          f"{len(result['mismatches'])} mismatches ({seconds:.0f} s)")
    print("   ops: " + ", ".join(f"{op} {k}" for op, k in sorted(result["ops"].items())))
    if result["int8_layers"]:
        print("   int8 layers: " + ", ".join(f"{op} {k}" for op, k in sorted(result["int8_layers"].items())))
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for option in dict.fromkeys(r.option for r in RUNS):
        parser.add_argument("--" + option.replace("_", "-"), type=int, default=1000 if option == "examples" else 0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    results = []
    for run in RUNS:
        if not getattr(args, run.option):
            continue
        started = time.perf_counter()
        result = fuzz(run, getattr(args, run.option), args.seed)
        result["seconds"] = round(time.perf_counter() - started, 1)
        results.append(result)
        _print(result, result["seconds"])
        if args.json:  # after every run: a long session that is cut short keeps what it found
            args.json.write_text(json.dumps(results, indent=2))
    return 1 if any(r["mismatches"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
