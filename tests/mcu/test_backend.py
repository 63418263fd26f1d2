"""The mcu-c back end as the core calls it: registration, build metadata (the harness contract),
measured sizes, flash/RAM budgets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import onnx
import pytest

import edgekit
from edgekit.plugins.mcu import plugin
from edgekit.plugins.mcu.plugin import McuBackend
from edgekit.registry import Registry
from edgekit.target import Target

from .helpers import AUTOENCODER, RESNET8

ROOT = Path(__file__).resolve().parents[2]
METADATA_KEYS = {"name", "header", "sources", "include_dirs", "run_function", "static_arena",
                 "arena_bytes", "arena_lower_bound_bytes", "arena_ratio", "inputs", "outputs",
                 "layers", "profile_macro", "code_bytes", "weights_bytes", "memory_plan"}


def _target(name: str, **changes) -> Target:
    t = Target.from_toml(ROOT / "targets" / f"{name}.toml")
    return dataclasses.replace(t, **changes) if changes else t


def _context(target: Target, **options) -> edgekit.BuildContext:
    return edgekit.BuildContext(target=target, registry=Registry(), options=options)


def test_plugin_registers_the_backend():
    backends = plugin.edgekit_register_backends()
    assert [b.name for b in backends] == ["mcu-c"]
    assert "mcu-c" in Registry(extra_plugins=[plugin]).backends


@pytest.fixture(scope="module")
def resnet_artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("r8")
    art = McuBackend().build(onnx.load(str(RESNET8)), _context(_target("cortex-m4"), name="resnet8"), out)
    return out, art


def test_build_metadata_is_the_harness_contract(resnet_artifact):
    out, art = resnet_artifact
    md = art.metadata
    assert METADATA_KEYS <= md.keys()
    assert md["name"] == "resnet8" and md["header"] == "resnet8.h" and md["run_function"] == "resnet8_run_io"
    assert md["static_arena"] is False and md["profile_macro"] == "EK_PROFILE"
    for rel in md["sources"] + [md["header"], md["memory_plan"]]:
        assert (out / rel).is_file(), rel
    assert set(md["include_dirs"]) == {".", "kernels"}
    assert md["inputs"] == [{"name": "input_1", "c_name": "input_1", "shape": [1, 3, 32, 32],
                             "dtype": "float32", "count": 3072, "bytes": 12288}]
    assert md["outputs"][0]["shape"] == [1, 10] and md["outputs"][0]["count"] == 10
    assert len(md["layers"]) == 15 and md["layers"][0]["kernel"] == "ek_conv2d_f32"
    assert sum(layer["macs"] for layer in md["layers"]) == 12501632
    assert md["layers"][-1]["output_shape"] == [1, 10]
    assert md["arena_lower_bound_bytes"] <= md["arena_bytes"] <= 1.05 * md["arena_lower_bound_bytes"]
    assert md["weights_bytes"] == 310824  # every initializer of the model, float32
    assert 0 < md["code_bytes"]["Os"] <= md["code_bytes"]["O2"] < 64 * 1024
    assert sorted(art.files) == sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def test_memory_plan_svg_is_written(resnet_artifact):
    out, _ = resnet_artifact
    svg = (out / "memory_plan.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<rect") > 10 and "lower bound" in svg


ONE_MIB_FLASH = 1024 * 1024  # an STM32F401-class part: the float32 autoencoder's weights do not fit


AUTOENCODER_WEIGHTS = 1063456


def test_flash_budget_error_names_the_numbers(tmp_path):
    """The weights fit, the weights and the code do not: found by measuring the compiled library."""
    target = _target("cortex-m4", flash_bytes=AUTOENCODER_WEIGHTS + 256)
    with pytest.raises(edgekit.BuildError, match=rf"flash needs \d+ B \(weights {AUTOENCODER_WEIGHTS} B.*--quantize int8"):
        McuBackend().build(onnx.load(str(AUTOENCODER)), _context(target), tmp_path)


def test_weights_larger_than_flash_are_refused_before_compiling(tmp_path):
    target = _target("cortex-m4", flash_bytes=ONE_MIB_FLASH)
    with pytest.raises(edgekit.BuildError, match=rf"its weights alone are {AUTOENCODER_WEIGHTS} B > "
                                                 rf"{ONE_MIB_FLASH} B of flash; quantize with --quantize int8"):
        McuBackend().build(onnx.load(str(AUTOENCODER)), _context(target), tmp_path)


def test_ram_budget_error(tmp_path):
    target = _target("cortex-m4", ram_bytes=64 * 1024)
    with pytest.raises(edgekit.BuildError, match=r"RAM needs \d+ B \(arena 19\d{4} B"):
        McuBackend().build(onnx.load(str(RESNET8)), _context(target), tmp_path)


def test_zero_budgets_mean_unlimited_and_static_arena(tmp_path):
    target = _target("cortex-m4", flash_bytes=0, ram_bytes=0)
    art = McuBackend().build(onnx.load(str(AUTOENCODER)), _context(target, name="ae", static_arena=True),
                             tmp_path)
    assert art.metadata["static_arena"] is True
    assert "uint8_t ae_arena[" in (tmp_path / "ae.c").read_text()
    assert "extern uint8_t ae_arena[];" in (tmp_path / "ae.h").read_text()


def test_ignore_budget_reports_instead_of_failing(tmp_path):
    context = _context(_target("cortex-m4", flash_bytes=ONE_MIB_FLASH), name="ae", ignore_budget=True)
    art = McuBackend().build(onnx.load(str(AUTOENCODER)), context, tmp_path)
    assert len(art.metadata["budget_exceeded"]) == 1 and "flash needs" in art.metadata["budget_exceeded"][0]
    assert any("ignore_budget" in str(n) for n in context.take_notes())


def test_unknown_kernel_library_is_a_usage_error():
    with pytest.raises(edgekit.UsageError, match=r"--kernels 'cmsis-nn'.*known: edgekit"):
        McuBackend().check(onnx.load(str(AUTOENCODER)), _context(_target("cortex-m4"), kernels="cmsis-nn"))


def test_output_workspace_option_keeps_tensors_out_of_the_output_buffer(tmp_path):
    model = onnx.load(str(AUTOENCODER))
    default = McuBackend().build(model, _context(_target("cortex-m4")), tmp_path / "default").metadata
    alone = McuBackend().build(model, _context(_target("cortex-m4"), output_workspace=False),
                               tmp_path / "alone").metadata
    assert (default["arena_bytes"], default["output_workspace_bytes"]) == (512, 1056)
    assert (alone["arena_bytes"], alone["output_workspace_bytes"]) == (1024, 0)
    header = (tmp_path / "default" / "model.h").read_text()
    assert "#define MODEL_OUTPUT_WORKSPACE_BYTES 1056u" in header
    assert "#define MODEL_OUTPUT_WORKSPACE_BYTES 0u" in (tmp_path / "alone" / "model.h").read_text()
    with pytest.raises(edgekit.UsageError, match="output_workspace=true or output_workspace=false"):
        McuBackend().build(model, _context(_target("cortex-m4"), output_workspace="maybe"), tmp_path / "bad")
