"""Run every benchmark in this directory, one after another, each in its own process, and write each
one's figures to ``<out>/<name>.json`` (``make bench``). A benchmark that fails is reported by name
and the others still run; the exit code is 1 when any failed.

    .venv/bin/python benchmarks/run_all.py [--out build/benchmarks] [--only moe,tvm]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: benchmark -> arguments for a full run (kernels_m4 has no --json; its table is its output)
BENCHMARKS = {"mcu_float32": ["--json"], "mcu_int8": ["--json"], "kernels_m4": [], "repparam": ["--json"],
              "tvm": ["--json"], "tvm_mcu": ["--json"], "moe": ["--json"], "tflite_int8": ["--json"],
              "fuzz": ["--board-examples", "30", "--int8-examples", "300", "--int8-board-examples", "25",
                       "--int8-tflite-examples", "30", "--tvm-examples", "100", "--tvm-board-examples", "20", "--json"],
              "fuzz_frontends": ["--json"], "scale": ["--json"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/benchmarks"))
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    args = parser.parse_args()
    chosen = [b for b in args.only.split(",") if b] or list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        print(f"error: --only {','.join(unknown)}: no such benchmark (have {', '.join(BENCHMARKS)})",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in chosen:
        extra = [str(args.out / f"{name}.json")] if BENCHMARKS[name] else []
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, str(HERE / f"{name}.py"), *BENCHMARKS[name], *extra]).returncode:
            failed.append(name)
    if failed:
        print(f"error: benchmark(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
