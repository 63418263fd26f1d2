"""ONNX backend conformance of the mcu-c back end, run through the generated C on the host.

Sources: the node test cases shipped in the ``onnx`` package
(``onnx.backend.test.case.node.collect_testcases``: model, inputs and expected outputs in memory)
and the data directories ``pytorch-converted`` and ``pytorch-operator`` (model.onnx +
test_data_set_*/*.pb). For every claimed op, each case whose graph uses it is classified:

* applicable: generated, compiled into a batch shared library (one per batch, kernels once) and
  called through ctypes; outputs compared with ``rtol=1e-3, atol=1e-7`` (onnx's defaults);
* inapplicable, with the reason stated by :func:`classify` or by the back end's own BuildError
  (the exact error a user would get: e.g. 3-D convolution, training-mode BatchNorm).

Binding rule (stated here because it changes what is a graph input): the generated code compiles
weights and shape-like operands in, so graph inputs feeding positions the back end requires to be
constant (``CONST_INPUTS``: Conv weights, Reshape shape, Slice starts...) and every integer input
are bound as initializers from the case's data set. All other float inputs stay runtime inputs.

Usage: ``python -m edgekit.plugins.mcu.conformance`` prints passed/applicable per op.
"""

from __future__ import annotations

import ctypes
import glob
import os
import tempfile
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edgekit.errors import BuildError
from edgekit.plugins.mcu import hostbuild
from edgekit.plugins.mcu.generator import Generated, generate
from edgekit.plugins.mcu.optable import supported_ops_list

RTOL, ATOL = 1e-3, 1e-7
#: Claimed ops whose ONNX node cases cannot apply, and where they are tested instead: the node
#: cases of QuantizeLinear/DequantizeLinear read or write int8 graph tensors, while the back end
#: keeps int8 inside the graph (QDQ groups) behind float32 inputs and outputs.
TESTED_ELSEWHERE = {
    "QuantizeLinear": "tests/mcu/test_int8_models.py (every model's input boundary, vs onnxruntime)",
    "DequantizeLinear": "tests/mcu/test_int8_models.py (every model's output boundary, vs onnxruntime)",
}

#: Input positions each op needs as build-time constants.
CONST_INPUTS = {
    "Conv": {1, 2}, "ConvTranspose": {1, 2}, "BatchNormalization": {1, 2, 3, 4}, "Clip": {1, 2},
    "Pad": {1, 2, 3}, "Slice": {1, 2, 3, 4}, "Reshape": {1}, "Squeeze": {1}, "Unsqueeze": {1},
    "ReduceMean": {1}, "LSTM": {1, 2, 3, 4, 5, 6, 7}, "GRU": {1, 2, 3, 4, 5}, "Resize": {1, 2, 3},
    "QuantizeLinear": {1, 2}, "DequantizeLinear": {1, 2},
}


@dataclass
class Case:
    name: str
    source: str                       # "node", "pytorch-converted", "pytorch-operator"
    model: onnx.ModelProto
    data_sets: list[tuple[list[np.ndarray], list[np.ndarray]]]
    ops: set[str] = field(default_factory=set)


@dataclass
class Result:
    case: str
    ops: set[str]
    status: str                       # pass, fail, inapplicable
    reason: str = ""


def _load_pb(path: str) -> np.ndarray:
    t = onnx.TensorProto()
    with open(path, "rb") as fh:
        t.ParseFromString(fh.read())
    return numpy_helper.to_array(t)


def load_cases() -> list[Case]:
    """Every node test case and every pytorch-converted/-operator model of the onnx package."""
    import warnings

    from onnx.backend.test.case.node import collect_testcases

    cases = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        node_cases = collect_testcases(None)
    for tc in node_cases:
        if tc.model is None or not tc.data_sets:
            continue
        sets = [(list(i), list(o)) for i, o in tc.data_sets]
        cases.append(Case(tc.name, "node", tc.model, sets))
    root = Path(onnx.__file__).parent / "backend" / "test" / "data"
    for sub in ("pytorch-converted", "pytorch-operator"):
        for model_path in sorted(glob.glob(str(root / sub / "*" / "model.onnx"))):
            d = os.path.dirname(model_path)
            sets = []
            for ds in sorted(glob.glob(os.path.join(d, "test_data_set_*"))):
                ins = [_load_pb(p) for p in sorted(glob.glob(os.path.join(ds, "input_*.pb")),
                                                   key=lambda p: int(p.rsplit("_", 1)[1][:-3]))]
                outs = [_load_pb(p) for p in sorted(glob.glob(os.path.join(ds, "output_*.pb")),
                                                    key=lambda p: int(p.rsplit("_", 1)[1][:-3]))]
                sets.append((ins, outs))
            if sets:
                cases.append(Case(os.path.basename(d), sub, onnx.load(model_path), sets))
    for c in cases:
        c.ops = {n.op_type for n in c.model.graph.node if n.domain in ("", "ai.onnx")}
    return cases


def classify(case: Case, claimed: set[str]) -> str:
    """The reason a case is inapplicable, or "" when it should run."""
    graph = case.model.graph
    foreign = sorted({f"{n.domain}::{n.op_type}" for n in graph.node if n.domain not in ("", "ai.onnx")})
    if foreign:
        return f"ops outside the default domain: {', '.join(foreign)}"
    init = {t.name for t in graph.initializer}
    for vi in list(graph.input) + list(graph.output):
        if vi.name in init:
            continue
        if not vi.type.HasField("tensor_type"):
            return f"'{vi.name}' is not a tensor (sequence/optional/map)"
    for vi in graph.output:
        if vi.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            return f"output '{vi.name}' dtype is not float32"
    for arrays in case.data_sets[0]:
        for a in arrays:
            if not isinstance(a, (np.ndarray, np.generic)):
                return f"data set holds a non-tensor value ({type(a).__name__})"
            if np.asarray(a).size == 0 and np.asarray(a).dtype == np.float32:
                return "empty float32 tensor in the data set (zero-size tensors are not supported)"
    return ""


def bind_constants(case: Case, data_index: int) -> tuple[onnx.ModelProto, list[int]] | str:
    """The model with constant-position and integer graph inputs bound as initializers, and the
    indices of the inputs that stay runtime inputs (all float32); or a reason string."""
    model = onnx.ModelProto.FromString(case.model.SerializeToString())
    graph = model.graph
    init = {t.name for t in graph.initializer}
    inputs = [vi for vi in graph.input if vi.name not in init]
    values = [np.asarray(v) for v in case.data_sets[data_index][0]]
    if len(values) != len(inputs):
        return f"data set has {len(values)} inputs for {len(inputs)} graph inputs"
    const_names = set()
    for node in graph.node:
        for pos in CONST_INPUTS.get(node.op_type, ()):
            if pos < len(node.input) and node.input[pos]:
                const_names.add(node.input[pos])
    runtime = []
    keep = []
    for i, (vi, value) in enumerate(zip(inputs, values)):
        dtype = vi.type.tensor_type.elem_type
        if vi.name in const_names or dtype != onnx.TensorProto.FLOAT:
            graph.initializer.append(numpy_helper.from_array(np.asarray(value), vi.name))
        else:
            if np.asarray(value).dtype != np.float32:
                return f"input '{vi.name}' is {np.asarray(value).dtype}, not float32"
            runtime.append(i)
            keep.append(vi)
    if not runtime:
        return "every input is a build-time constant (nothing left to compute at run time)"
    for vi in inputs:
        graph.input.remove(vi)
    graph.input.extend(keep)
    # Give the runtime inputs their data-set shapes (some cases leave dims symbolic).
    for vi, idx in zip(keep, runtime):
        shape = np.asarray(values[idx]).shape
        dims = vi.type.tensor_type.shape
        del dims.dim[:]
        for d in shape:
            dims.dim.add().dim_value = int(d)
    return model, runtime


@dataclass
class _Pending:
    case: Case
    data_index: int
    gen: Generated
    runtime: list[int]


def run(cases: list[Case] | None = None, batch_size: int = 400, work_dir: Path | None = None,
        log=None) -> list[Result]:
    """Run every case; returns one Result per (case) -- a case passes when all its data sets do."""
    claimed = set(supported_ops_list())
    cases = load_cases() if cases is None else cases
    results: list[Result] = []
    pending: list[_Pending] = []
    tmp = tempfile.TemporaryDirectory(prefix="edgekit-conformance-") if work_dir is None else None
    root = Path(tmp.name if tmp else work_dir)
    for ci, case in enumerate(cases):
        relevant = case.ops & claimed
        if not relevant:
            continue
        reason = classify(case, claimed)
        if reason:
            results.append(Result(case.name, relevant, "inapplicable", reason))
            continue
        generated = []
        for di in range(len(case.data_sets)):
            bound = bind_constants(case, di)
            if isinstance(bound, str):
                reason = bound
                break
            model, runtime = bound
            try:
                gen = generate(model, root / f"c{ci}_{di}", name=f"c{ci}_{di}", with_kernels=False,
                               with_integration=False)
            except BuildError as exc:
                # Ops outside the claim are judged after the back end's own constant folding
                # (an expanded function's Shape/Cast of static tensors folds away).
                unclaimed = sorted(op for op in case.ops - claimed
                                   if f"(op {op})" in str(exc) and "op not supported" in str(exc))
                reason = (f"uses op(s) the back end does not claim: {', '.join(unclaimed)}"
                          if unclaimed else f"back end refuses: {exc}")
                break
            generated.append(_Pending(case, di, gen, runtime))
        if reason:
            results.append(Result(case.name, relevant, "inapplicable", reason))
            continue
        pending.extend(generated)
    by_case: dict[str, list[str]] = defaultdict(list)
    order: list[Case] = []
    for start in range(0, len(pending), batch_size):
        batch = pending[start:start + batch_size]
        bdir = root / f"batch{start // batch_size}"
        # One translation unit per case (its schedule and weights): half the compiler runs.
        sources = []
        for p in batch:
            case_dir = root / f"c{cases.index(p.case)}_{p.data_index}"
            unit = case_dir / "unit.c"
            unit.write_text("".join(f'#include "{s}"\n' for s in p.gen.model_sources))
            sources.append(unit)
        sources += hostbuild.kernel_sources()
        objs = hostbuild.compile_objects(sources, bdir / "obj", [hostbuild.KERNEL_DIR.parent],
                                         hostbuild.STRICT_CFLAGS + ("-O1", "-fPIC"))
        lib = ctypes.CDLL(str(hostbuild.link_shared(objs, bdir / "batch.so")))
        for p in batch:
            if p.case not in order:
                order.append(p.case)
            ins_data, outs_data = p.case.data_sets[p.data_index]
            sched = p.gen.schedule
            model = hostbuild.HostModel(lib, p.gen.prefix, [sched.tensors[n].shape for n in sched.inputs],
                                        [sched.tensors[n].shape for n in sched.outputs],
                                        p.gen.plan.arena_bytes)
            try:
                got = model.run([ins_data[i] for i in p.runtime])
                for g, e, name in zip(got, outs_data, sched.outputs):
                    np.testing.assert_allclose(g, np.asarray(e, dtype=np.float32).reshape(g.shape),
                                               rtol=RTOL, atol=ATOL, err_msg=f"output '{name}'")
            except AssertionError as exc:
                by_case[p.case.name].append(f"data set {p.data_index}: " +
                                            " ".join(str(exc).split())[:300])
            except Exception as exc:  # a crash of one case must not hide the others
                by_case[p.case.name].append(f"data set {p.data_index}: {type(exc).__name__}: {exc}"
                                            + traceback.format_exc(limit=1)[-200:])
    for case in order:
        fails = by_case.get(case.name)
        # Credit only the ops that reached the generated code (not ones folded at build time).
        ran = set().union(*(p.gen.schedule.source_ops for p in pending if p.case is case))
        results.append(Result(case.name, case.ops & claimed & ran, "fail" if fails else "pass",
                              "; ".join(fails or [])))
    if tmp:
        tmp.cleanup()
    return results


def summarize(results: list[Result]) -> dict[str, dict[str, int]]:
    """Per claimed op: passed, applicable, inapplicable counts."""
    table: dict[str, dict[str, int]] = {op: {"passed": 0, "applicable": 0, "inapplicable": 0}
                                        for op in supported_ops_list()}
    for r in results:
        for op in r.ops:
            row = table[op]
            if r.status == "inapplicable":
                row["inapplicable"] += 1
            else:
                row["applicable"] += 1
                row["passed"] += r.status == "pass"
    return table


def format_table(table: dict[str, dict[str, int]]) -> str:
    lines = [f"{'op':<20} {'passed/applicable':>18} {'inapplicable':>13}"]
    for op, row in sorted(table.items()):
        lines.append(f"{op:<20} {row['passed']:>8}/{row['applicable']:<9} {row['inapplicable']:>13}")
    total_p = sum(r["passed"] for r in table.values())
    total_a = sum(r["applicable"] for r in table.values())
    lines.append(f"{'(op, case) pairs':<20} {total_p:>8}/{total_a:<9}")
    return "\n".join(lines)


def main() -> int:
    import sys
    import time

    start = time.time()
    results = run()
    verbose = "-v" in sys.argv
    for r in results:
        if r.status == "fail" or (verbose and r.status == "inapplicable"):
            print(f"{r.status.upper():<13} {r.case}: {r.reason}")
    print(format_table(summarize(results)))
    fails = sum(r.status == "fail" for r in results)
    passes = sum(r.status == "pass" for r in results)
    print(f"{passes} passed, {fails} failed ({time.time() - start:.0f} s; cases, not (op, case) pairs)")
    return 1 if fails else 0


if __name__ == "__main__":
    raise SystemExit(main())
