"""Fixtures shared by every test package: paths to real models, and running the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "examples" / "models" / "mlperf-tiny"
EDGEKIT = Path(sys.executable).parent / "edgekit"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def run_edgekit(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                timeout: float = 600) -> Result:
    """Run the installed ``edgekit`` command as a user would."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([str(EDGEKIT), *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def resnet8() -> Path:
    return MODELS / "ic_resnet8.onnx"


@pytest.fixture(scope="session")
def autoencoder() -> Path:
    return MODELS / "ad_autoencoder.onnx"


@pytest.fixture
def edgekit_cli():
    return run_edgekit
