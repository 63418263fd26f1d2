"""Front-end fuzzing at scale (issue 9). Two parts:

1. Mutated model files (tests/hardening/mutations.py) from the corpus (tests/hardening/corpus.py:
   the MLPerf Tiny .onnx and int8 .tflite files, and small generated ones), each built through the
   real CLI for x86-64 with mcu-c, and every ``--run-every``-th one that builds also with --run.
   The contract (tests/hardening/contract.py): a build succeeds, or exits 2 / 1 with one line that
   names the problem, no traceback and no output directory; anything else is a finding.
2. Random valid TFLite graphs (tests/hardening/tflite_graphs.py), float and int8, built with --run
   on the host (mcu-c under ASan/UBSan), compared with onnxruntime and TFLite Micro: a failed build or
   a difference from TFLite Micro is a finding.

3. With ``--hostile-names N`` (issue 21): N models carrying hostile names (tests/hardening/
   hostile_names.py: splices, trigraphs, comment and string breakers, markup, shell, control and
   non-ASCII text, very long names, C words, our own symbols, collisions) in random places, with a
   random ``--name``, built through the CLI for the host with --run (mcu-c under ASan/UBSan), every
   ``--run-every``-th one on another back end (int8, QEMU, TVM kernels, the tvm back end); every
   generated file is checked for escapes and compiled with ``gcc -trigraphs -Werror``.

Prints the counts (inputs tried, built OK, refused by exit code, findings, each with its seed and
description) and exits 1 when there is any finding.

    .venv/bin/python benchmarks/fuzz_frontends.py [--files 1000] [--graphs 200] [--seed 0]
        [--run-every 20] [--jobs 2] [--json out.json] [--hostile-names 0]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

# Python put this script's directory first: its tvm.py would shadow TVM (the hostile-name builds use it).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.hardening import contract  # noqa: E402

#: Corpus file -> share of the mutated files: the small generated files build in a fraction of a
#: second, the MLPerf Tiny ones in seconds, and each is exercised.
SHARES = {"conv_relu.onnx": 3, "float_cnn.tflite": 3, "int8_ops.tflite": 3, "kws_dscnn_int8.tflite": 2,
          "ic_resnet8_int8.tflite": 1, "ad_autoencoder_int8.tflite": 1, "ic_resnet8.onnx": 1,
          "ad_autoencoder.onnx": 1}


def file_tasks(files: int, first_seed: int, run_every: int) -> list[tuple[str, int, bool]]:
    """(corpus file, seed, run the build too) for ``files`` mutants, shared out by SHARES."""
    total = sum(SHARES.values())
    tasks = []
    for name, share in SHARES.items():
        for k in range(round(files * share / total)):
            tasks.append((name, first_seed + k, run_every > 0 and k % run_every == 0))
    return tasks


def one_file(task: tuple[str, int, bool]) -> dict:
    name, seed, run = task
    with tempfile.TemporaryDirectory(prefix="ek-fuzz-fe-") as tmp:
        description, outcome = contract.check_mutant(name, seed, Path(tmp), run_sample=run)
    return {"file": name, "seed": seed, "run": outcome.ran, "mutation": description.split(":")[0],
            "description": description, "code": outcome.code, "finding": outcome.finding,
            "seconds": round(outcome.seconds, 2), "message": outcome.stderr.strip()[:300]}


def graph_specs(n: int, first_seed: int) -> list:
    """``n`` random TFLite graph specs, drawn by hypothesis from a fixed seed."""
    if n <= 0:  # hypothesis wants at least one example
        return []
    from hypothesis import HealthCheck, given, seed, settings

    from tests.hardening.tflite_graphs import tflite_graphs

    specs = []

    @seed(first_seed)
    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              phases=["generate"])
    @given(tflite_graphs())
    def collect(spec):
        specs.append(spec)

    collect()
    return specs[:n]


def one_graph(task: tuple[int, object]) -> dict:
    from tests.hardening.tflite_graphs import describe, differential

    k, spec = task
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ek-fuzz-tfl-") as tmp:
        finding = differential(spec, tmp)
    int8 = any(t.quant is not None for t in spec.tensors)
    return {"graph": k, "int8": int8, "ops": [o.op for o in spec.ops], "finding": finding,
            "seconds": round(time.perf_counter() - started, 2), "description": describe(spec) if finding else ""}


#: Back ends a hostile-name model is built with besides the host's mcu-c (every --run-every-th one).
HOSTILE_OTHERS = ("int8", "cortex-m4", "cortex-m4-tvm", "tvm")


def hostile_tasks(n: int, first_seed: int, run_every: int) -> list[tuple[int, str]]:
    """(seed, flavour) of ``n`` hostile-name builds."""
    others = [k for k in range(n) if run_every > 0 and k % run_every == run_every - 1]
    return [(first_seed + k, HOSTILE_OTHERS[others.index(k) % len(HOSTILE_OTHERS)] if k in others else "host")
            for k in range(n)]


def one_hostile(task: tuple[int, str]) -> dict:
    """One model with the names of ``seed`` in random slots (and maybe --name), built with --run."""
    import random

    import onnx

    from tests.hardening import hostile_names as hn

    seed, flavour = task
    rng = random.Random(seed)
    names = hn.hostile_names(seed, rng.randint(1, 12), first_probe=seed * 100)
    assigned = hn.assign(names, rng)
    lib = assigned.pop("lib", None)
    with tempfile.TemporaryDirectory(prefix="ek-fuzz-hostile-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(hn.template_model(assigned), path)
        outcome = hn.check_hostile_build(path, Path(tmp) / "out", flavour, lib_name=lib)
    return {"seed": seed, "flavour": flavour, "names": len(names), "classes": sorted({n.cls for n in names}),
            "slots": {**{k: v for k, v in assigned.items()}, "lib": lib}, "code": outcome.code,
            "escapes": outcome.escapes, "violations": outcome.violations, "message": outcome.message,
            "finding": "; ".join(outcome.findings)[:2000] or None, "seconds": round(outcome.seconds, 2)}


def report_hostile(results: list[dict]) -> None:
    escapes = sum(len(r["escapes"]) for r in results)
    violations = sum(len(r["violations"]) for r in results)
    built = sum(1 for r in results if r["code"] == 0)
    refused = sum(1 for r in results if r["code"] in (1, 2) and not r["violations"])
    print(f"== hostile names: {sum(r['names'] for r in results)} names tried, {len(results)} builds, "
          f"{built} succeeded, {refused} refused, {escapes} escapes (must be 0), {violations} contract "
          f"violations (must be 0)")
    by_class = Counter(c for r in results for c in r["classes"])
    print("   classes: " + ", ".join(f"{c} {n}" for c, n in sorted(by_class.items())))
    print("   back ends: " + ", ".join(f"{f} {n}" for f, n in sorted(Counter(r["flavour"] for r in results).items())))
    for r in results:
        if r["finding"]:
            slots = {k: v if v is None or len(v) < 80 else f"{v[:40]}...{v[-30:]}" for k, v in r["slots"].items()}
            print(f"-- seed {r['seed']} ({r['flavour']}) {slots!r}:\n   " +
                  "\n   ".join([*r["escapes"], *r["violations"]][:10]))


def _outcome(r: dict) -> str:
    if r["finding"]:
        return "finding"
    return {0: "built OK", 2: "refused, exit 2", 1: "refused, exit 1"}.get(r["code"], "finding")


def report_files(results: list[dict]) -> None:
    by_file = {name: Counter() for name in SHARES}
    by_mutation: dict[str, Counter] = {}
    for r in results:
        by_file[r["file"]][_outcome(r)] += 1
        by_mutation.setdefault(r["mutation"], Counter())[_outcome(r)] += 1
    total = Counter(_outcome(r) for r in results)
    ran = sum(1 for r in results if r["run"] and not r["finding"])
    print(f"== mutated files: {len(results)} tried, {total['built OK']} built OK ({ran} of them also ran "
          f"with --run), {total['refused, exit 2']} refused with exit 2, {total['refused, exit 1']} with "
          f"exit 1, {total['finding']} findings")
    for title, table in (("file", by_file), ("mutation", by_mutation)):
        for key, counts in sorted(table.items()):
            print(f"   {title} {key}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for r in results:
        if r["finding"]:
            print(f"-- {r['file']} seed {r['seed']} [{r['description']}]: {r['finding']}")


def report_graphs(results: list[dict]) -> None:
    found = [r for r in results if r["finding"]]
    int8 = sum(r["int8"] for r in results)
    ops = Counter(op for r in results for op in r["ops"])
    print(f"== random TFLite graphs: {len(results)} tried ({int8} int8, {len(results) - int8} float), "
          f"{len(results) - len(found)} built, ran and agreed with TFLite Micro, {len(found)} findings")
    print("   ops: " + ", ".join(f"{op} {n}" for op, n in sorted(ops.items())))
    for r in found:
        print(f"-- graph {r['graph']}: {r['finding']}\n{r['description']}")


def _progress(what: str, results) -> list[dict]:
    """The results, with a line on stderr every 50 (a run takes many minutes)."""
    done = []
    for r in results:
        done.append(r)
        if len(done) % 50 == 0:
            print(f"{what}: {len(done)} done, {sum(1 for d in done if d['finding'])} findings", file=sys.stderr,
                  flush=True)
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--graphs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-every", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--hostile-names", type=int, default=0,
                        help="models with hostile names to build (issue 21); 0: none")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    contract.preload()
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        files = _progress("files", pool.imap_unordered(one_file, file_tasks(args.files, args.seed, args.run_every)))
        files_seconds = time.perf_counter() - started
        graphs = _progress("graphs", pool.imap_unordered(one_graph, enumerate(graph_specs(args.graphs, args.seed))))
        graphs_done = time.perf_counter()
        hostile = _progress("hostile names", pool.imap_unordered(
            one_hostile, hostile_tasks(args.hostile_names, args.seed, args.run_every)))
    report_files(sorted(files, key=lambda r: (r["file"], r["seed"])))
    print(f"   ({files_seconds:.0f} s with {args.jobs} jobs)")
    report_graphs(sorted(graphs, key=lambda r: r["graph"]))
    print(f"   ({graphs_done - started - files_seconds:.0f} s with {args.jobs} jobs)")
    if hostile:
        report_hostile(sorted(hostile, key=lambda r: r["seed"]))
        print(f"   ({time.perf_counter() - graphs_done:.0f} s with {args.jobs} jobs)")
    if args.json:
        args.json.write_text(json.dumps({"files": files, "graphs": graphs, "hostile_names": hostile}, indent=2))
    return 1 if any(r["finding"] for r in [*files, *graphs, *hostile]) else 0


if __name__ == "__main__":
    sys.exit(main())
