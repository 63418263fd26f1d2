"""Fixtures for the harness tests: hand-written libraries that follow the mcu-c back end's contract
(``fixtures/``), laid out as a built output directory with ``report.json``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import edgekit

FIXTURES = Path(__file__).parent / "fixtures"
TARGETS = Path(__file__).resolve().parents[2] / "targets"

FAKE_W = np.array([
    [1, 0, 0, 0, 0, 0, 0, 0],
    [0.5] * 8,
    [1, -1, 1, -1, 1, -1, 1, -1],
    [0, 0, 0, 0, 0, 0, 0, 0.25],
], dtype=np.float32)


def fake_reference(x: np.ndarray) -> np.ndarray:
    """What fixtures/fake_model/model.c computes: y = W relu(2x + 1)."""
    h = np.maximum(2 * x.reshape(8).astype(np.float32) + 1, 0)
    return (FAKE_W @ h).reshape(1, 4)


def fake_metadata(arena_bytes: int = 32, static_arena: bool = False) -> dict:
    return {
        "name": "fake", "header": "model.h", "sources": ["model.c"], "include_dirs": ["."],
        "run_function": "fake_run_io", "static_arena": static_arena, "arena_bytes": arena_bytes,
        "inputs": [{"name": "x", "c_name": "x", "shape": [1, 8], "dtype": "float32", "count": 8, "bytes": 32}],
        "outputs": [{"name": "y", "c_name": "y", "shape": [1, 4], "dtype": "float32", "count": 4, "bytes": 16}],
        "layers": [
            {"index": 0, "node": "affine_relu", "op": "Relu", "kernel": "fake", "macs": 8, "output_shape": [1, 8]},
            {"index": 1, "node": "matmul", "op": "MatMul", "kernel": "fake", "macs": 32, "output_shape": [1, 4]},
        ],
        "profile_macro": "EK_PROFILE",
    }


def make_artifact(directory: Path, source: str = "model.c", **meta_changes) -> Path:
    """An output directory holding fixtures/fake_model/<source> as model.c and a report.json."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / "fake_model" / "model.h", directory / "model.h")
    shutil.copy(FIXTURES / "fake_model" / source, directory / "model.c")
    backend = {**fake_metadata(), **meta_changes}
    (directory / "report.json").write_text(json.dumps({"backend": backend}), encoding="utf-8")
    return directory


def context_for(target: str | edgekit.Target, **options) -> edgekit.BuildContext:
    if isinstance(target, str):
        target = edgekit.Target.from_toml(TARGETS / f"{target}.toml")
    return edgekit.BuildContext(target=target, registry=None, options=options)


def random_inputs(n: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.uniform(-2, 2, size=(1, 8)).astype(np.float32)} for _ in range(n)]


@pytest.fixture
def fake_artifact(tmp_path) -> Path:
    return make_artifact(tmp_path / "out")
