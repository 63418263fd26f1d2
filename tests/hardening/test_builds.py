"""Builds (issue 9): deterministic (the same model built twice, into different directories, gives
byte-identical output directories), and concurrent (two builds of different models at once, with a
fresh shared cache both must fill, both succeed and both match onnxruntime)."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EDGEKIT, REPO, run_edgekit

MODELS = REPO / "examples" / "models" / "mlperf-tiny"


def _edgekit(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([str(EDGEKIT), *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("model,target,extra", [
    ("ic_resnet8.onnx", "cortex-m4", ["--run"]),
    ("kws_dscnn_int8.tflite", "cortex-m0plus", ["--run"]),
    ("ad_autoencoder.onnx", "cortex-a76", []),
])
def test_building_twice_gives_byte_identical_directories(tmp_path, model, target, extra):
    """EDGEKIT_REPRODUCIBLE=1 (what CI and release builds set) leaves out the wall-clock times;
    nothing else in the C, the weights, the memory plan or the report may differ: no absolute
    paths of the output directory, no dict-order noise."""
    outs = [tmp_path / "first", tmp_path / "elsewhere" / "second"]
    for out in outs:
        job = _edgekit("build", str(MODELS / model), "--target", target, "-o", str(out), "-q", *extra,
                       env={"EDGEKIT_REPRODUCIBLE": "1"})
        _, err = job.communicate(timeout=900)
        assert job.returncode == 0, err
    first, second = (_files(o) for o in outs)
    assert first.keys() == second.keys() and len(first) >= 3
    differing = [name for name in first if first[name] != second[name]]
    assert not differing, differing
    for name, data in first.items():
        assert str(tmp_path).encode() not in data, f"{name} holds the output directory's absolute path"
    assert filecmp.dircmp(outs[0], outs[1]).diff_files == []


def test_without_the_reproducible_switch_only_the_times_differ(tmp_path):
    reports = []
    for out in (tmp_path / "a", tmp_path / "b"):
        job = _edgekit("build", str(MODELS / "ad_autoencoder.onnx"), "--target", "cortex-m4", "-o", str(out), "-q",
                       env={"EDGEKIT_REPRODUCIBLE": ""})
        assert job.wait(timeout=600) == 0
        report = json.loads((out / "report.json").read_text())
        assert report["build_seconds"] > 0
        report.pop("build_seconds")
        for record in report["passes"]:
            record.pop("seconds")
        reports.append(report)
    assert reports[0] == reports[1]


def test_two_builds_at_once_both_succeed_and_match_onnxruntime(tmp_path):
    """Two `--run` builds of different models on the emulated board at the same time, sharing a
    fresh cache (both need the QEMU counting plugin, which neither has built yet)."""
    env = {"EDGEKIT_CACHE_DIR": str(tmp_path / "cache")}
    jobs = {name: _edgekit("build", str(MODELS / f"{name}.onnx"), "--target", "cortex-m4", "-o",
                           str(tmp_path / name), "--run", "--samples", "2", "-q", env=env)
            for name in ("ic_resnet8", "ad_autoencoder")}
    for name, job in jobs.items():
        _, err = job.communicate(timeout=900)
        assert job.returncode == 0, f"{name}: {err}"
        run = json.loads((tmp_path / name / "report.json").read_text())["run"]
        assert run["samples"] == 2 and run["max_abs_error"] < 1e-3
        assert run["measurements"]["instructions"] > 0
    plugins = list((tmp_path / "cache" / "qemu-plugins").glob("*.so"))
    assert len(plugins) == 1, plugins


def test_stack_use_is_reported_and_an_overflow_fails_the_build_as_such(tmp_path):
    """The harness paints the stack before each inference: the report gives the bytes the model
    used; with less reserved than that, the run stops with a stack overflow, not a wrong answer."""
    model = str(MODELS / "ad_autoencoder.onnx")
    ok = run_edgekit("build", model, "-t", "cortex-m4", "-o", str(tmp_path / "ok"), "-q", "--run")
    assert ok.code == 0, ok.stderr
    used = json.loads((tmp_path / "ok" / "report.json").read_text())["run"]["measurements"]["stack_bytes"]
    assert 0 < used < 16384
    small = used // 2 // 8 * 8
    out = tmp_path / "small"
    failed = run_edgekit("build", model, "-t", "cortex-m4", "-o", str(out), "-q", "--run",
                         "--option", f"stack_bytes={small}")
    assert failed.code == 1
    assert failed.stderr.strip() == (f"error: model on mps2-an386: stack overflow: the model used more than the "
                                     f"{small:,} B reserved stack; reserve more with --option stack_bytes=N")
    assert not out.exists()
