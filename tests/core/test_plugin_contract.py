"""The plugin contract: third-party failures are caught and named; numerics are verified per pass."""

from __future__ import annotations

import json
import re

from tests.conftest import REPO, run_edgekit
from tests.core.onnx_factory import conv_relu_model, save

FAKE = "tests.core.fake_plugins"


def _with_plugins(*modules: str) -> dict[str, str]:
    return {"EDGEKIT_PLUGINS": ",".join(f"{FAKE}.{m}" for m in modules), "PYTHONPATH": str(REPO)}


def _model(tmp_path):
    return save(conv_relu_model(), tmp_path / "m.onnx")


def test_pass_that_breaks_numerics_fails_the_build_naming_it(tmp_path):
    out = tmp_path / "out"
    result = run_edgekit("build", _model(tmp_path), "-t", "x86-64", "-o", str(out), "-q",
                         "--passes", "fold-constants,scale-weights", env=_with_plugins("breaks_numerics"))
    assert result.code == 1
    line = result.stderr.strip().splitlines()[-1]
    assert "pass 'scale-weights'" in line and "output 'y'" in line and "max abs error" in line
    assert not out.exists()


def test_broken_plugin_is_listed_by_name_and_others_keep_working(tmp_path):
    env = _with_plugins("fails_import")
    listing = run_edgekit("plugins", env=env)
    assert listing.code == 0
    broken = next(line for line in listing.stdout.splitlines() if "fails_import" in line)
    assert "BROKEN" in broken and "ModuleNotFoundError" in broken
    result = run_edgekit("build", _model(tmp_path), "-t", "x86-64", "-o", str(tmp_path / "o"), "-q", env=env)
    assert result.code == 0
    assert f"warning: plugin '{FAKE}.fails_import' not loaded" in result.stderr
    assert "Traceback" not in result.stderr


def test_plugin_raising_in_hook_is_named_and_the_others_still_build(tmp_path):
    env = _with_plugins("raises_in_hook")
    result = run_edgekit("build", _model(tmp_path), "-t", "x86-64", "-o", str(tmp_path / "o"), "-q", env=env)
    assert result.code == 0
    assert result.stderr.strip() == (f"warning: plugin '{FAKE}.raises_in_hook' not loaded: edgekit_register_passes "
                                     "raised RuntimeError: database of passes is locked")
    listing = run_edgekit("plugins", env=env)
    line = next(line for line in listing.stdout.splitlines() if "raises_in_hook" in line)
    assert "BROKEN" in line and "database of passes is locked" in line


def test_plugin_returning_wrong_type_is_named(tmp_path):
    result = run_edgekit("build", _model(tmp_path), "-t", "x86-64", "-o", str(tmp_path / "o"), "-q",
                         env=_with_plugins("wrong_type"))
    assert result.code == 0
    assert f"plugin '{FAKE}.wrong_type' not loaded" in result.stderr
    assert "edgekit_register_backends returned str, expected Backend" in result.stderr


def test_misspelt_hook_marks_plugin_broken():
    listing = run_edgekit("plugins", env=_with_plugins("unknown_hook"))
    line = next(line for line in listing.stdout.splitlines() if "unknown_hook" in line)
    assert "edgekit_register_pases" in line


def test_pass_raising_or_returning_wrong_type_is_named(tmp_path):
    env = _with_plugins("raising_pass")
    result = run_edgekit("build", _model(tmp_path), "-t", "x86-64", "-o", str(tmp_path / "o"),
                         "--passes", "explode", env=env)
    assert result.code == 1
    assert "pass 'explode' raised ValueError: cannot handle node 'conv'" in result.stderr
    assert f"plugin '{FAKE}.raising_pass'" in result.stderr
    result = run_edgekit("build", _model(tmp_path), "-t", "x86-64", "-o", str(tmp_path / "o"),
                         "--passes", "return-none", env=env)
    assert result.code == 1 and "returned NoneType, expected onnx.ModelProto" in result.stderr


def test_pass_that_corrupts_the_model_is_named_and_nothing_is_written(tmp_path):
    env = _with_plugins("raising_pass")
    for name, says in [("dangle-input", "produced an invalid model: .*'nowhere'.* is not output of any previous nodes"),
                       ("break-shapes", "produced a model whose shape inference failed: .*differ in rank")]:
        out = tmp_path / name
        result = run_edgekit("build", _model(tmp_path), "-t", "x86-64", "-o", str(out), "--passes", name, env=env)
        assert result.code == 1, result.stderr
        line = result.stderr.strip().splitlines()[-1]
        assert re.search(f"^error: pass '{name}' {says}", line) and "Traceback" not in result.stderr
        assert not out.exists()


def test_observer_hooks_see_every_pass(tmp_path):
    log = tmp_path / "log.txt"
    env = {**_with_plugins("observer"), "EDGEKIT_OBSERVER_LOG": str(log)}
    result = run_edgekit("build", _model(tmp_path), "-t", "x86-64", "-o", str(tmp_path / "o"), "-q",
                         "--passes", "fold-constants,eliminate-dead-code", env=env)
    assert result.code == 0, result.stderr
    assert log.read_text().splitlines() == [
        "started 2", "before fold-constants", "after fold-constants 0.0",
        "before eliminate-dead-code", "after eliminate-dead-code 0.0", "finished"]


def test_pass_notes_reach_the_report(tmp_path):
    """A pass's context.note() lands in its report entry (here: dead code the pass removed)."""
    from onnx import helper

    model = conv_relu_model()
    model.graph.node.append(helper.make_node("Relu", ["y"], ["unused"], name="dead"))
    model.graph.node.append(helper.make_node("Identity", ["x"], ["x2"], name="dead_identity"))
    path = save(model, tmp_path / "dead.onnx")
    out = tmp_path / "o"
    assert run_edgekit("build", path, "-t", "x86-64", "-o", str(out), "-q", "--passes", "eliminate-dead-code").code == 0
    record = json.loads((out / "report.json").read_text())["passes"][0]
    assert record["name"] == "eliminate-dead-code"
    assert record["before"]["nodes"] == 4 and record["after"]["nodes"] == 2
    assert record["notes"] == [{"message": "removed dead code", "nodes": 2, "initializers": 0}]


def test_disabling_an_installed_plugin(tmp_path):
    env = {"EDGEKIT_DISABLE_PLUGINS": "cleanup"}
    listing = run_edgekit("plugins", env=env)
    assert "│ cleanup" not in listing.stdout and "│ onnx " in listing.stdout
    result = run_edgekit("build", _model(tmp_path), "-t", "x86-64", "-o", str(tmp_path / "o"), env=env)
    assert result.code == 2 and "unknown pass 'fold-constants'" in result.stderr


def test_plugin_adds_a_cli_command():
    env = _with_plugins("adds_command")
    assert "hello" in run_edgekit("--help", env=env).stdout
    result = run_edgekit("hello", "--who", "edge", env=env)
    assert result.code == 0 and result.stdout.strip() == "hello edge"


def _run_with_reference(tmp_path, mode: str):
    env = {**_with_plugins("outside_reference"), "EDGEKIT_FAKE_REFERENCE": mode}
    out = tmp_path / mode
    result = run_edgekit("build", _model(tmp_path), "-t", "x86-64", "-o", str(out), "--run", "--samples", "2",
                         env=env)
    return result, out


def test_outside_reference_compares_the_run_and_can_rerun_the_model(tmp_path):
    result, out = _run_with_reference(tmp_path, "agree")
    assert result.code == 0, result.stderr
    run = json.loads((out / "report.json").read_text())["run"]
    reference = run["references"][f"{FAKE}.outside_reference"]
    assert reference == {"reference": "a second build", "agrees": True, "summary": "2 run(s) again, same=True",
                         "source_suffix": ".onnx"}
    assert run["judged_against"] in ("onnxruntime", "float64")
    assert "vs a second build: 2 run(s) again, same=True" in result.stdout


def test_outside_reference_that_raises_or_is_malformed_is_a_warning(tmp_path):
    for mode, reason in (("raise", "edgekit_compare_run raised RuntimeError: reference oracle crashed"),
                         ("malformed", "edgekit_compare_run returned a result whose 'summary' is missing")):
        result, out = _run_with_reference(tmp_path, mode)
        assert result.code == 0, result.stderr
        run = json.loads((out / "report.json").read_text())["run"]
        assert "references" not in run
        (warning,) = run["reference_warnings"]
        assert f"{FAKE}.outside_reference" in warning and reason in warning, warning


def test_outside_reference_that_judges_and_disagrees_fails_the_run(tmp_path):
    result, out = _run_with_reference(tmp_path, "judge-disagree")
    assert result.code == 1
    assert result.stderr.strip().splitlines()[-1].endswith(
        "does not match Fake Oracle: output y differs at index 3")
    assert not out.exists()
