"""What users install is what is tested: the sdist and wheel hold every file edgekit reads at run time,
and the wheel, installed non-editable into a fresh environment with its dependencies resolved by pip,
builds and runs real models on the emulated cortex-m4 and a TVM target from an unrelated directory,
at both ends of the dependency ranges (constraints/tested.txt and constraints/lowest.txt)."""

from __future__ import annotations

import email.parser
import hashlib
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import MODELS, REPO
from tests.packaging.wheel import (Installed, build_sdist_and_wheel, expected_package_files, install_fresh,
                                   wheel_names)

TESTED = REPO / "constraints" / "tested.txt"
LOWEST = REPO / "constraints" / "lowest.txt"


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> tuple[Path, Path]:
    return build_sdist_and_wheel(tmp_path_factory.mktemp("dist"))


def test_wheel_holds_every_package_file(dist):
    sdist, wheel = dist
    names = set(wheel_names(wheel))
    missing = sorted(rel for inside, rel in expected_package_files().items() if inside not in names)
    assert not missing, f"the wheel leaves out {missing}"
    for needed in ("edgekit/plugins/mcu/kernels/ek_common.h", "edgekit/plugins/harness/firmware/ek_firmware.ld",
                   "edgekit/plugins/harness/qemu_plugin/insn_count.c", "edgekit/targets/cortex-m4.toml"):
        assert needed in names
    with tarfile.open(sdist) as tar:
        in_sdist = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"LICENSE", "README.md", "setup.py", "pyproject.toml"} <= in_sdist


def test_wheel_metadata_is_spdx_licensed(dist):
    _, wheel = dist
    with zipfile.ZipFile(wheel) as z:
        (meta_name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        meta = email.parser.Parser().parsestr(z.read(meta_name).decode())
        licenses = [n for n in z.namelist() if "/licenses/" in n]
    assert meta["License-Expression"] == "Apache-2.0"
    assert any(n.endswith("/LICENSE") for n in licenses), licenses
    requires = meta.get_all("Requires-Dist")
    # core dependencies are ranges, not exact pins that clash with a user's environment
    core = [r for r in requires if "extra ==" not in r]
    assert core and not [r for r in core if "==" in r], core


def _check_build(env: Installed, work: Path, cache: Path, model: Path, target: str, *extra: str) -> dict:
    out = work / f"{model.stem}-{target}{'-'.join(extra)}".replace("--", "-")
    proc = env.edgekit("build", str(model), "--target", target, "-o", str(out), "--run", "-q", *extra,
                       cwd=work, cache=cache)
    assert proc.returncode == 0, f"edgekit build {model.name} --target {target} {extra}:\n{proc.stderr[-3000:]}"
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["samples"] >= 1
    assert report["edgekit_version"] == _installed_version(env)
    assert report["model"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    return report


def _installed_version(env: Installed) -> str:
    import subprocess

    return subprocess.run([str(env.python), "-c", "import importlib.metadata as m; print(m.version('edgekit'))"],
                          capture_output=True, text=True, check=True).stdout.strip()


def _imports_from_env(env: Installed, work: Path, cache: Path) -> None:
    import subprocess

    where = subprocess.run([str(env.python), "-c", "import edgekit.plugins.mcu, edgekit; print(edgekit.__file__)"],
                           cwd=work, env=env.env(cache), capture_output=True, text=True, check=True).stdout
    assert Path(where.strip()).is_relative_to(env.root), f"edgekit imported from {where}, not the installed wheel"


def test_installed_wheel_builds_and_runs(dist, tmp_path):
    """Core install: float and int8 on the emulated cortex-m4; a TVM target asks for the extra (exit 2);
    with [tvm,tflite]: a cortex-a53 TVM build run under qemu-aarch64 and the README's KWS example."""
    _, wheel = dist
    env = install_fresh(tmp_path / "env", wheel, TESTED)
    work, cache = tmp_path / "elsewhere", tmp_path / "cache"
    work.mkdir()
    _imports_from_env(env, work, cache)
    print(f"wheel {wheel.name}: {len(wheel_names(wheel))} files, {wheel.stat().st_size:,} bytes; "
          f"core install {env.install_seconds:.1f} s")
    resnet8 = MODELS / "ic_resnet8.onnx"
    float_report = _check_build(env, work, cache, resnet8, "cortex-m4")
    assert float_report["backend"]["backend"] == "mcu-c"
    _check_build(env, work, cache, resnet8, "cortex-m4", "--quantize", "int8")

    no_tvm = env.edgekit("build", str(resnet8), "--target", "cortex-a53", "-o", str(work / "a53"), cwd=work,
                         cache=cache)
    assert no_tvm.returncode == 2, no_tvm.stderr
    assert "pip install 'edgekit[tvm]'" in no_tvm.stderr and "Traceback" not in no_tvm.stderr
    assert not (work / "a53").exists()
    no_tune = env.edgekit("tune", str(resnet8), "--target", "cortex-a53", "--trials", "1", cwd=work, cache=cache)
    assert no_tune.returncode == 2 and "edgekit[tvm]" in no_tune.stderr, no_tune.stderr

    extras_seconds = env.pip_install(f"{wheel}[tvm,tflite]", TESTED)
    print(f"[tvm,tflite] install {extras_seconds:.1f} s")
    tvm_report = _check_build(env, work, cache, resnet8, "cortex-a53")
    assert tvm_report["backend"]["backend"] == "tvm"
    kws = _check_build(env, work, cache, MODELS / "kws_dscnn_int8.tflite", "cortex-m4", "--samples", "3")
    tflite = kws["run"]["references"]["tflite"]
    assert tflite["agrees"] is True, tflite  # judged by TFLite Micro, which the tflite extra installs


def test_lowest_dependencies(dist, tmp_path):
    """The lower bounds of the core ranges: float and int8 builds run on the emulated cortex-m4."""
    _, wheel = dist
    env = install_fresh(tmp_path / "env", wheel, LOWEST)
    work, cache = tmp_path / "elsewhere", tmp_path / "cache"
    work.mkdir()
    print(f"lowest-dependency install {env.install_seconds:.1f} s")
    resnet8 = MODELS / "ic_resnet8.onnx"
    _check_build(env, work, cache, resnet8, "cortex-m4")
    _check_build(env, work, cache, resnet8, "cortex-m4", "--quantize", "int8")
