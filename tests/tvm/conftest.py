"""Shared fixtures: TVM builds are made once per session (each takes seconds) and reused."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("tvm", reason="the tvm extra is not installed (pip install edgekit[tvm])")

MODELS = Path(__file__).resolve().parents[2] / "examples" / "models" / "mlperf-tiny"
RESNET8 = MODELS / "ic_resnet8.onnx"
AUTOENCODER = MODELS / "ad_autoencoder.onnx"


def tvm_registry():
    """The installed plugins, plus the TVM plugin when its entry point is not installed yet."""
    from edgekit.registry import Registry

    registry = Registry()
    if "tvm" not in registry.backends:
        import edgekit.compiler.plugin as plugin

        registry = Registry(extra_plugins=[plugin])
    return registry


def build(model: Path, target: str, out: Path, run: bool, **options):
    from edgekit.building import BuildRequest, build as edgekit_build

    request = BuildRequest(model=str(model), target=target, output=out, run=run, backend="tvm",
                           options=options)
    return edgekit_build(request, tvm_registry())


@pytest.fixture(scope="session")
def tvm_build():
    """``tvm_build(model_path, target, out, run, **options)`` → report."""
    return build


@pytest.fixture(scope="session")
def models():
    return {"resnet8": RESNET8, "autoencoder": AUTOENCODER}


@pytest.fixture(scope="session")
def registry():
    return tvm_registry()


@pytest.fixture(scope="session")
def builds(tmp_path_factory):
    """Both models for x86-64 and x86-64-v3 (run natively) and cortex-a76 (run under qemu-aarch64), and ResNet-8
    for mali-g78 (build-only): {(model stem, target): (output dir, report)}."""
    root = tmp_path_factory.mktemp("tvm-builds")
    made = {}
    for model in (RESNET8, AUTOENCODER):
        for target in ("x86-64", "x86-64-v3", "cortex-a76"):
            out = root / f"{model.stem}-{target}"
            # no_tuning: the results must not depend on tuning records this machine happens to hold
            made[(model.stem, target)] = (out, build(model, target, out, run=True, timing_repeats=3,
                                                     no_tuning=True))
    out = root / "ic_resnet8-mali-g78"
    made[("ic_resnet8", "mali-g78")] = (out, build(RESNET8, "mali-g78", out, run=False, no_tuning=True))
    return made
