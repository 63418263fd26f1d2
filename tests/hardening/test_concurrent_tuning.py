"""One MetaSchedule tuning database used by several processes at once (issue 9).

Two ``edgekit tune`` runs of different models for cortex-m4 (the fastest tuning here: candidates
are counted under QEMU, no worker pools) write into the default database of one fresh
``EDGEKIT_CACHE_DIR`` while a build reads it. MetaSchedule's JSONDatabase refers to a workload by
its line in ``database_workload.json`` and keeps the index in memory from when it was opened: two
writers appending their own new workloads would both call theirs line 0. The tunes are made to
open their databases before either commits (a barrier at the seed step, where the first commits
happen), so without edgekit's merge that corruption happens on every run, not by luck of timing.
The merge itself (re-indexing, a killed writer's partial line) is checked on hand-written lines.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import EDGEKIT, REPO

TARGET = "cortex-m4"
KERNEL = "fused_matmul_add_relu"
TIMEOUT_S = 300
# Runs `edgekit ARGS...` after making the seed step (the first database commits) wait until every
# party has opened its database: the interleaving that corrupts unsynchronised appends, every time.
# The search samples traces at random, with no cost model to train: what costs tens of seconds per
# batch here; the database sees the same commits and callbacks.
BARRIER_DRIVER = """
import functools, sys, time
from pathlib import Path
from tvm.s_tir.meta_schedule import relax_integration
from edgekit.compiler import tuning_seed
relax_integration.tune_relax = functools.partial(relax_integration.tune_relax, strategy="replay-trace",
                                                 cost_model="random")
barrier, me, parties = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
seed = tuning_seed.seed_default_schedules
def after_everyone_opened(*args, **kwargs):
    (barrier / me).touch()
    deadline = time.monotonic() + 120
    while len(list(barrier.iterdir())) < parties and time.monotonic() < deadline:
        time.sleep(0.05)
    return seed(*args, **kwargs)
tuning_seed.seed_default_schedules = after_everyone_opened
from edgekit.cli import run_cli
sys.argv = ["edgekit", *sys.argv[4:]]
run_cli()
"""


def _gemm_relu(path: Path, n_in: int, n_out: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    weights = [numpy_helper.from_array(rng.standard_normal((n_out, n_in)).astype(np.float32), "W"),
               numpy_helper.from_array(rng.standard_normal((n_out,)).astype(np.float32), "B")]
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["y"])],
        path.stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _finish(job: subprocess.Popen) -> str:
    out, err = job.communicate(timeout=TIMEOUT_S)
    assert job.returncode == 0, err[-3000:]
    return out


def _wait_for(condition, what: str, jobs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"no {what} in {TIMEOUT_S} s"
        assert all(j.poll() is None for j in jobs), f"a tune ended before {what}: " + \
            "".join(j.stderr.read()[-2000:] for j in jobs if j.poll() is not None)
        time.sleep(0.1)


def _build(model: Path, out: Path, env: dict[str, str], run: bool) -> subprocess.Popen:
    return _start([str(EDGEKIT), "build", str(model), "-t", TARGET, "--kernels", "tvm", "-o", str(out),
                   "-q", *(["--run"] if run else [])], env)


def _write(path: Path, *lines: str) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def test_merges_reindex_each_copys_workloads_into_the_shared_lines(tmp_path):
    """Two copies opened on the same (empty) database, each with its own new workload at line 0
    and one on both: merged, every record points at its own workload's shared line, and a
    workload both hold is written once."""
    from edgekit.compiler.tuning import RECORDS_FILE, WORKLOADS_FILE, PrivateCopy

    shared = tmp_path / "db"
    with PrivateCopy(shared) as first, PrivateCopy(shared) as second:
        _write(first.work / WORKLOADS_FILE, '["1","A"]', '["3","C"]')
        _write(first.work / RECORDS_FILE, '[0,["a"]]', '[1,["c"]]')
        _write(second.work / WORKLOADS_FILE, '["2","B"]', '["3","C"]')
        _write(second.work / RECORDS_FILE, '[0,["b"]]', '[1,["c2"]]', '[0,["b2"]]')
        assert (first.merge(), second.merge(), first.merge()) == (2, 3, 0)
        assert (first.new_records, second.new_records) == (2, 3)
    assert (shared / WORKLOADS_FILE).read_text().splitlines() == ['["1","A"]', '["3","C"]', '["2","B"]']
    assert (shared / RECORDS_FILE).read_text().splitlines() == [
        '[0,["a"]]', '[1,["c"]]', '[2,["b"]]', '[1,["c2"]]', '[2,["b2"]]']
    assert not first.work.exists() and not second.work.exists()


def test_a_copy_resumes_from_the_shared_records_and_drops_a_killed_writers_partial_line(tmp_path):
    from edgekit.compiler.tuning import RECORDS_FILE, WORKLOADS_FILE, PrivateCopy, record_count

    shared = tmp_path / "db"
    shared.mkdir()
    _write(shared / WORKLOADS_FILE, '["1","A"]')
    (shared / RECORDS_FILE).write_text('[0,["a"]]\n[0,["torn')  # a writer killed mid-line
    assert record_count(shared) == 1
    with PrivateCopy(shared) as copy:
        assert (copy.work / RECORDS_FILE).read_text() == '[0,["a"]]\n'  # what MetaSchedule resumes from
        with (copy.work / RECORDS_FILE).open("a") as f:
            f.write('[0,["a2"]]\n')
        assert copy.merge() == 1
    assert (shared / RECORDS_FILE).read_text().splitlines() == ['[0,["a"]]', '[0,["a2"]]']
    assert (shared / WORKLOADS_FILE).read_text().splitlines() == ['["1","A"]']


def test_two_tunes_and_a_build_share_one_database(tmp_path, monkeypatch):
    pytest.importorskip("tvm", reason="the tvm extra is not installed (pip install edgekit[tvm])")
    from edgekit.compiler import tuning
    from tests.tvm.conftest import tvm_registry

    models = [_gemm_relu(tmp_path / "wide.onnx", 32, 64, 0), _gemm_relu(tmp_path / "narrow.onnx", 48, 16, 1)]
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    env = {**os.environ, "EDGEKIT_REPRODUCIBLE": "1"}
    directory = tuning.database_dir(tvm_registry().target(TARGET).tvm_target)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    tunes = [_start([sys.executable, "-c", BARRIER_DRIVER, str(barrier), model.stem, str(len(models)),
                     "tune", str(model), "-t", TARGET, "--trials", "2", "--batch", "2"], env)
             for model in models]
    # the build opens the database while both tunes are still searching and committing
    _wait_for(lambda: tuning.record_count(directory) >= 1, "first record", tunes)
    concurrent = _build(models[0], tmp_path / "during", env, run=False)  # the run costs; loading is the point
    new = [int(re.search(r"^(\d+) new records", _finish(t), re.M).group(1)) for t in tunes]
    _finish(concurrent)

    workloads = (directory / tuning.WORKLOADS_FILE).read_text().splitlines()
    records = [json.loads(line) for line in (directory / tuning.RECORDS_FILE).read_text().splitlines()]
    # Each model's three records (two trials, and the default schedule measured as a seed) on its
    # own workload line. Unsynchronised, the second seed pointed at the first model's line, where
    # its trace replays without error (same blocks): the wrong kernel's schedule, silently.
    assert sorted(r[0] for r in records) == [0, 0, 0, 1, 1, 1]
    assert len(workloads) == len(set(workloads)) == 2
    assert new == [3, 3] and len(records) == sum(new)  # each run counts what it merged, not the growth

    after = _build(models[1], tmp_path / "after", env, run=True)  # loads the database: every trace replays
    _finish(after)
    report = json.loads((tmp_path / "after" / "report.json").read_text())
    assert sorted(report["backend"]["tuned_kernels"] + report["backend"]["default_schedule_kernels"]) == [KERNEL]
    assert report["run"]["max_abs_error"] <= 1e-4
    assert (tmp_path / "during" / "report.json").is_file()
