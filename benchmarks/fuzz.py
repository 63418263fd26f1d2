"""Differential fuzzing at scale (issue 9): random valid ONNX graphs (tests/hardening/graphs.py)
built with `edgekit build --run`, the mcu-c library on the host under AddressSanitizer and UBSan
(and, with --board-examples, on the emulated cortex-m4 and cortex-m0plus), each run compared with
onnxruntime. Prints how many graphs ran, the op mix, and every mismatch (the error and the graph
as text, to turn into a regression test). The exit code is 1 when any mismatch was found.

    .venv/bin/python benchmarks/fuzz.py [--examples 1000] [--board-examples 0] [--seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from tests.hardening.differential import build_and_compare, describe  # noqa: E402
from tests.hardening.graphs import graphs  # noqa: E402


def fuzz(target: str, examples: int, random_seed: int, max_ops: int) -> dict:
    ops: Counter = Counter()
    found: list[dict] = []
    count = 0

    @seed(random_seed)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=["generate"])
    @given(graphs(max_ops=max_ops))
    def one(model):
        nonlocal count
        count += 1
        ops.update(n.op_type for n in model.graph.node)
        try:
            build_and_compare(model, target)
        except Exception as exc:
            found.append({"target": target, "error": f"{type(exc).__name__}: {exc}", "graph": describe(model)})

    one()
    return {"target": target, "examples": count, "mismatches": found, "ops": dict(ops)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--board-examples", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    runs = [("x86-64", args.examples, 6)]
    runs += [(t, args.board_examples, 4) for t in ("cortex-m4", "cortex-m0plus") if args.board_examples]
    results = []
    for target, n, max_ops in runs:
        started = time.perf_counter()
        r = fuzz(target, n, args.seed, max_ops)
        results.append(r)
        print(f"== {target}: {r['examples']} random graphs, {len(r['mismatches'])} mismatches "
              f"({time.perf_counter() - started:.0f} s)")
        print("   ops: " + ", ".join(f"{op} {k}" for op, k in sorted(r["ops"].items())))
        for m in r["mismatches"]:
            print(f"-- {m['error']}\n{m['graph']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if any(r["mismatches"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
