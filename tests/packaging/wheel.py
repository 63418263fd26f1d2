"""Build edgekit's sdist and wheel from the files git tracks, and install the wheel into a fresh
virtual environment, as a user's `pip install edgekit` would (not the editable tree `make setup` makes)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO

#: source directory -> its path inside the wheel (setup.py's package_dir)
PACKAGE_DIRS = {"edgekit": "edgekit", "plugins": "edgekit/plugins", "compiler": "edgekit/compiler",
                "targets": "edgekit/targets"}


def project_files() -> list[str]:
    """What a clean clone holds: tracked files and new ones git does not ignore (a session's work)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return sorted(f for f in listed if f and (REPO / f).is_file())


def copy_project(dest: Path) -> Path:
    for rel in project_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    return dest


def build_sdist_and_wheel(work: Path) -> tuple[Path, Path]:
    """The sdist built by setuptools' PEP 517 hook from a clean copy, then the wheel built from the
    sdist (so a file the sdist leaves out is missing from the wheel too)."""
    src = copy_project(work / "src")
    dist = work / "dist"
    dist.mkdir()
    subprocess.run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(dist)!r})"],
                   cwd=src, check=True, capture_output=True)
    (sdist,) = dist.glob("edgekit-*.tar.gz")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(dist), str(sdist)], cwd=work, check=True, capture_output=True)
    (wheel,) = dist.glob("edgekit-*.whl")
    return sdist, wheel


def expected_package_files() -> dict[str, str]:
    """Every file under the package directories that edgekit may read at run time, by its path in the
    wheel: sources, kernels, firmware, profiles, READMEs (not caches)."""
    expected = {}
    for rel in project_files():
        top, _, rest = rel.partition("/")
        if top in PACKAGE_DIRS and rest and "__pycache__" not in rel:
            expected[f"{PACKAGE_DIRS[top]}/{rest}"] = rel
    return expected


def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        return z.namelist()


@dataclass
class Installed:
    """A fresh virtual environment holding the installed wheel."""

    root: Path
    install_seconds: float

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def env(self, cache: Path) -> dict[str, str]:
        """A user's shell: nothing of the test's environment leaks in (no PYTHONPATH, the dev venv not
        on PATH), and an empty edgekit cache so nothing compiled by the dev tree is reused."""
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "EDGEKIT"))}
        path = [p for p in keep.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO))]
        return {**keep, "PATH": os.pathsep.join([str(self.root / "bin"), *path]), "EDGEKIT_CACHE_DIR": str(cache)}

    def pip_install(self, requirement: str, constraints: Path) -> float:
        started = time.perf_counter()
        proc = subprocess.run([str(self.python), "-m", "pip", "install", "-q", "-c", str(constraints), requirement],
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"pip install {requirement} failed:\n{proc.stderr[-3000:]}"
        return time.perf_counter() - started

    def edgekit(self, *args: str, cwd: Path, cache: Path, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.root / "bin" / "edgekit"), *args], cwd=cwd, env=self.env(cache),
                              capture_output=True, text=True, timeout=timeout)


def install_fresh(root: Path, wheel: Path, constraints: Path, extras: str = "") -> Installed:
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    installed = Installed(root, 0.0)
    installed.install_seconds = installed.pip_install(f"{wheel}{extras}", constraints)
    return installed
