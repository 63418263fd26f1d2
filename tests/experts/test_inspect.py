"""``edgekit inspect`` and the ``edgekit_describe_model`` hook: the experts plugin's table of MoE
layers, checked against parameter counts taken straight from the ONNX initializers, and a plugin
whose hook fails never breaks the inspection."""

from __future__ import annotations

import os
import textwrap

import numpy as np
import onnx
import pytest

from tests.conftest import REPO, run_edgekit
from tests.experts.conftest import SHAPES

TITLE = "mixture-of-experts layers"


def moe_table(stdout: str) -> tuple[str, list[dict[str, str]]]:
    """The MoE table of ``edgekit inspect``'s output: its title line and its rows by column."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(TITLE))
    header = next(line for line in lines[start:] if line.startswith("┃"))
    columns = [c.strip() for c in header.strip("┃").split("┃")]
    rows = []
    for line in lines[lines.index(header, start) + 1:]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            rows.append(dict(zip(columns, (c.strip() for c in line.strip("│").split("│")))))
    return lines[start], rows


def expert_parameters(model: onnx.ModelProto, experts: int = 8) -> list[int]:
    """Parameters per expert from the initializers alone, by the exporter's names and shapes: the
    dense form keeps ``moe.experts.<e>.*`` names (the block's transposed weights lose them and are
    the only [32, 128]/[128, 32] matrices), the gather form stacks them as ``W[experts, ...]``."""
    sizes = {t.name: (tuple(t.dims), int(np.prod(t.dims, dtype=np.int64))) for t in model.graph.initializer}
    named = [sum(n for name, (_, n) in sizes.items() if f"experts.{e}." in name) for e in range(experts)]
    stacked = sum(n for name, (dims, n) in sizes.items()
                  if len(dims) >= 2 and dims[0] == experts and "router" not in name)
    matrices = sum(n for name, (dims, n) in sizes.items()
                   if "experts." not in name and sorted(dims) == [32, 128])
    assert stacked % experts == 0 and matrices % experts == 0
    return [p + stacked // experts + matrices // experts for p in named]


@pytest.mark.parametrize("factory,form", [("make_moe_mlp", "dense"), ("make_gather_moe_mlp", "gather"),
                                          ("make_moe_block", "dense")])
def test_inspect_lists_each_moe_layer(moe_onnx, factory, form):
    path = moe_onnx(factory)
    parameters = expert_parameters(onnx.load(path))
    assert parameters == [32 * 128 + 128 + 128 * 32 + 32] * 8  # the independent count is itself right
    result = run_edgekit("inspect", str(path))
    assert result.code == 0, result.stderr
    assert "warning" not in result.stderr
    title, rows = moe_table(result.stdout)
    assert "recognised" in title and "(plugin experts)" in title
    [row] = rows
    assert row["layer"] == "moe0" and row["form"] == form
    assert (row["experts"], row["k"], row["renormalize"]) == ("8", "2", "yes")
    assert row["parameters per expert"] == f"{parameters[0]:,}"
    assert row["router node"]  # the router's name as the exporter wrote it


def test_a_partitioned_model_is_described_from_its_metadata(moe_onnx, tmp_path):
    from edgekit.context import BuildContext
    from edgekit.moe import moe_layers
    from edgekit.registry import default_registry

    registry = default_registry()
    model = registry.passes["experts-partition"](onnx.load(moe_onnx("make_gather_moe_mlp")),
                                                 BuildContext(target=None, registry=registry))
    [layer] = moe_layers(model)
    path = tmp_path / "partitioned.onnx"
    onnx.save(model, path)
    result = run_edgekit("inspect", str(path))
    assert result.code == 0, result.stderr
    title, [row] = moe_table(result.stdout)
    assert "partitioned" in title
    assert (row["form"], row["experts"], row["k"], row["router node"]) == ("gather", "8", "2", layer.router_node)
    assert row["parameters per expert"] == f"{layer.experts[0].parameters:,}" == "8,352"


def test_a_model_without_moe_has_no_moe_table(resnet8):
    from edgekit.inspection import inspect_model
    from edgekit.registry import default_registry

    result = run_edgekit("inspect", str(resnet8))
    assert result.code == 0 and not result.stderr
    assert TITLE not in result.stdout and "│ Conv " in result.stdout
    info = inspect_model(str(resnet8), default_registry(), None, [])
    assert info["descriptions"] == [] and info["warnings"] == []


def test_inspect_from_a_python_factory(tmp_path):
    """The example's own instructions: inspect the factory directly (PyTorch export, not folded)."""
    factory = f"{REPO / 'examples' / 'moe' / 'moe_models.py'}:make_moe_block"
    result = run_edgekit("inspect", factory, "--input-shape", SHAPES["make_moe_block"])
    assert result.code == 0, result.stderr
    _, [row] = moe_table(result.stdout)
    assert (row["experts"], row["k"], row["parameters per expert"]) == ("8", "2", "8,352")


def test_a_failing_describe_hook_does_not_break_inspect(moe_onnx, tmp_path):
    (tmp_path / "describe_raises.py").write_text(textwrap.dedent('''
        import edgekit

        @edgekit.hookimpl
        def edgekit_describe_model(model, context):
            raise RuntimeError("cannot read the model today")
    '''))
    (tmp_path / "describe_malformed.py").write_text(textwrap.dedent('''
        import edgekit

        @edgekit.hookimpl
        def edgekit_describe_model(model, context):
            return {"title": "broken", "columns": ["a", "b"], "rows": [[1]]}
    '''))
    (tmp_path / "describe_ok.py").write_text(textwrap.dedent('''
        import edgekit

        @edgekit.hookimpl
        def edgekit_describe_model(model, context):
            return {"title": "node count", "columns": ["graph", "nodes"],
                    "rows": [[model.graph.name or "main", len(model.graph.node)]]}
    '''))
    env = {"EDGEKIT_PLUGINS": "describe_raises,describe_malformed,describe_ok",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    result = run_edgekit("inspect", str(moe_onnx("make_moe_mlp")), env=env)
    assert result.code == 0, result.stderr
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 2
    raised = next(w for w in warnings if "describe_raises" in w)
    assert raised.startswith("warning: plugin 'describe_raises': edgekit_describe_model raised RuntimeError: "
                             "cannot read the model today")
    malformed = next(w for w in warnings if "describe_malformed" in w)
    assert "row 0 with 1 cells for 2 columns" in malformed
    assert "│ TopK " in result.stdout  # the op table
    _, [row] = moe_table(result.stdout)  # the other plugins' tables
    assert row["experts"] == "8"
    assert "node count (plugin describe_ok)" in result.stdout and "broken" not in result.stdout
