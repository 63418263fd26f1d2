"""``--target cortex-m* --kernels tvm``: TVM's kernels under mcu-c's static-arena C, run on the
emulated board and compared with onnxruntime by the same harness as edgekit's own kernels."""

from __future__ import annotations

import re
import onnx
import pytest

import edgekit
from tests.tvm.test_unsupported import _lstm_model


def mcu_build(model, target, out, run, **options):
    from edgekit.building import BuildRequest, build as edgekit_build
    from tests.tvm.conftest import tvm_registry

    request = BuildRequest(model=str(model), target=target, output=out, run=run,
                           options={"kernels": "tvm", **options})
    return edgekit_build(request, tvm_registry())


@pytest.fixture(scope="module")
def resnet8_m4(tmp_path_factory, models):
    out = tmp_path_factory.mktemp("tvm-m4") / "resnet8"
    return out, mcu_build(models["resnet8"], "cortex-m4", out, True)


def test_resnet8_runs_on_the_m4_board_and_matches(resnet8_m4):
    out, report = resnet8_m4
    backend, run = report["backend"], report["run"]
    assert report["target"]["backend"] == "mcu-c" and backend["kernel_library"] == "tvm"
    assert run["max_abs_error"] <= 1e-4
    assert run["measurements"]["instructions"] > 1_000_000
    # one profiled span per kernel call, and the conv calls carry their MACs
    layers = run["measurements"]["instructions_per_layer"]
    assert len(layers) == len(backend["layers"]) == backend["layers"][-1]["index"] + 1
    assert sum(layer["macs"] for layer in backend["layers"]) == 12_501_632  # ResNet-8's conv + FC MACs
    # the static arena holds the tensors and every kernel's workspace; no heap is linked in
    assert backend["workspace_bytes"] > 0
    assert backend["arena_tensor_lower_bound_bytes"] <= backend["arena_lower_bound_bytes"] <= backend["arena_bytes"]
    assert backend["arena_bytes"] <= 1.05 * backend["arena_lower_bound_bytes"]
    # the default conv schedule pads one window of rows per output row, not a copy of the tensor:
    # the whole arena stays within 1.1x of what the three live activations alone need
    assert backend["workspace_bytes"] < 16 * 1024
    assert backend["arena_bytes"] <= 1.1 * backend["arena_tensor_lower_bound_bytes"]
    source = (out / "model.c").read_text()
    assert "malloc" not in source and "posix_memalign" not in source
    assert (out / "model_kernels.o").is_file() and "model_kernels.o" in (out / "CMakeLists.txt").read_text()
    assert re.search(r"#define MODEL_ARENA_SIZE %du" % backend["arena_bytes"], (out / "model.h").read_text())


def test_autoencoder_on_the_m0plus_soft_float_board(tmp_path, models):
    report = mcu_build(models["autoencoder"], "cortex-m0plus", tmp_path / "ae", True, ignore_budget=True)
    assert report["run"]["max_abs_error"] <= 1e-4
    assert report["backend"]["tvm_target"]["mtriple"] == "thumbv6m-none-eabi"


@pytest.mark.parametrize("target", ["cortex-m7", "cortex-m55"])
def test_generated_c_compiles_warning_free_for_other_cortex_m_profiles(tmp_path, models, target):
    """Built (and for the M7 run) with -Wall -Wextra -Werror: the size measurement links it."""
    report = mcu_build(models["autoencoder"], target, tmp_path / target, target == "cortex-m7",
                       ignore_budget=True)
    assert report["backend"]["code_bytes"]["O2"] > 0
    if target == "cortex-m7":
        assert report["run"]["max_abs_error"] <= 1e-4


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def check_arena(plan, arena) -> None:
    """Independent check of an arena plan: tensors live at the same call, and a call's workspace
    and the tensors live at that call, never share bytes; everything lies inside the arena."""
    live: dict[str, list[int]] = {}
    for step, call in enumerate(plan.calls):
        for arg in call.args:
            if plan.slots[arg].kind == "storage":
                live.setdefault(arg, [step, step])[1] = step
    spans = {name: (arena.tensor_offsets[name], arena.tensor_offsets[name] + plan.slots[name].nbytes)
             for name in live}
    for step in range(len(plan.calls)):
        here = [name for name, (first, last) in live.items() if first <= step <= last]
        regions = [spans[name] for name in here]
        offset, size = arena.workspace[step]
        if size:
            regions.append((offset, offset + size))
        for i, a in enumerate(regions):
            assert 0 <= a[0] and a[1] <= arena.arena_bytes, f"call {step}: {a} outside the arena"
            for b in regions[i + 1:]:
                assert not _overlaps(a, b), f"call {step}: {a} and {b} overlap"


def test_arena_plan_keeps_workspace_apart_from_live_tensors(models):
    from edgekit.compiler import lower
    from edgekit.compiler.importer import import_onnx
    from edgekit.compiler.mcu_arena import plan_arena

    target = lower.tvm_target({"kind": "llvm", "mtriple": "thumbv7em-none-eabihf", "mcpu": "cortex-m4"})
    planned = lower.optimize(import_onnx(onnx.load(str(models["resnet8"]))), target)
    plan = lower.walk_main(planned)
    sizes = lower.workspace_allocations(planned, target)
    # ResNet-8's untuned 3x3 convs take a padded copy of their input from the workspace
    assert sizes["fused_conv2d1_add_relu"][0] == 16 * 34 * 34 * 4
    arena = plan_arena(plan, sizes)
    check_arena(plan, arena)
    # the checker fails a plan whose workspace lands on a live tensor
    busy, tensor = next((step, arg) for step, (_, size) in enumerate(arena.workspace) if size
                        for arg in plan.calls[step].args if plan.slots[arg].kind == "storage")
    arena.workspace[busy] = (arena.tensor_offsets[tensor], arena.workspace[busy][1])
    with pytest.raises(AssertionError, match="overlap"):
        check_arena(plan, arena)


def test_too_small_workspace_window_fails_the_run_instead_of_corrupting(resnet8_m4, tmp_path):
    """The bump allocator refuses what does not fit its window: the kernel returns an error."""
    import shutil

    from edgekit.building import run
    from tests.tvm.conftest import tvm_registry

    out, _ = resnet8_m4
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    source = broken / "model.c"
    text = source.read_text()
    step = re.search(r"#define WS(\d+)_BYTES (\d+)u", text)
    source.write_text(text.replace(step.group(0), f"#define WS{step.group(1)}_BYTES 64u"))
    with pytest.raises(edgekit.BuildError, match=r"model_run_io returned -?\d+"):
        run(broken, tvm_registry())


def test_unsupported_op_names_node_and_points_to_edgekit_kernels(tmp_path):
    _lstm_model(tmp_path / "lstm.onnx")
    with pytest.raises(edgekit.BuildError) as error:
        mcu_build(tmp_path / "lstm.onnx", "cortex-m4", tmp_path / "out", False)
    message = str(error.value)
    assert "'encoder_lstm'" in message and "LSTM" in message and "without --kernels tvm" in message
    assert not (tmp_path / "out").exists()


def test_cli_rejects_an_unknown_kernel_library(tmp_path, models, edgekit_cli):
    done = edgekit_cli("build", str(models["autoencoder"]), "--target", "cortex-m4", "--kernels", "cmsis-nn",
                       "-o", str(tmp_path / "out"))
    assert done.code == 2, done.stderr
    assert "--kernels 'cmsis-nn'" in done.stderr and "tvm" in done.stderr
    assert not (tmp_path / "out").exists()


def test_default_conv_schedule_tiles_untuned_kernels_and_can_be_turned_off(tmp_path, resnet8_m4, models):
    _, tiled = resnet8_m4
    plain = mcu_build(models["resnet8"], "cortex-m4", tmp_path / "plain", True, default_schedule=False)
    assert plain["run"]["max_abs_error"] <= 1e-4
    # Relax's own schedule copies the padded input and keeps whole-tensor accumulators
    assert plain["backend"]["workspace_bytes"] > 64 * 1024
    assert tiled["run"]["measurements"]["instructions"] < 0.7 * plain["run"]["measurements"]["instructions"]


def test_c_codegen_fallback_compiles_tvm_c_with_the_target_compiler(tmp_path, models):
    out = tmp_path / "ae-c"
    report = mcu_build(models["autoencoder"], "cortex-m4", out, True, tvm_codegen="c")
    assert report["backend"]["tvm_codegen"] == "c" and report["run"]["max_abs_error"] <= 1e-4
    assert "__tvm_ffi_fused_matmul" in (out / "model_kernels_tvm.c").read_text()
    assert (out / "model_kernels.o").is_file()


def test_mcu_c_options_tvm_kernels_do_not_offer_are_refused(tmp_path, models):
    with pytest.raises(edgekit.UsageError, match=r"--option static_arena=True.*--kernels tvm"):
        mcu_build(models["autoencoder"], "cortex-m4", tmp_path / "out", False, static_arena=True)
    assert not (tmp_path / "out").exists()


def test_unknown_codegen_is_a_usage_error(tmp_path, models):
    with pytest.raises(edgekit.UsageError, match="tvm_codegen=cuda"):
        mcu_build(models["autoencoder"], "cortex-m4", tmp_path / "out", False, tvm_codegen="cuda")
    assert not (tmp_path / "out").exists()
