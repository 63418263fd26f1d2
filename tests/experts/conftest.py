"""The MoE example models (examples/moe/moe_models.py), exported once per test session through
edgekit's own PyTorch front end and constant folding, as a build sees them."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from tests.conftest import REPO

MOE_EXAMPLES = REPO / "examples" / "moe" / "moe_models.py"
SHAPES = {"make_moe_mlp": "1,16", "make_gather_moe_mlp": "1,16", "make_moe_block": "1,8,32",
          "make_skewed_moe_mlp": "1,16", "make_averaged_moe_mlp": "1,16"}


def export(factory: str, module: Path = MOE_EXAMPLES, shape: str | None = None) -> onnx.ModelProto:
    """``module:factory`` exported (input shape ``shape``, by default the example's) and folded."""
    from edgekit.context import BuildContext
    from edgekit.frontends import ModelSource, export_to_onnx
    from edgekit.model import fix_input_shapes
    from edgekit.registry import default_registry

    registry = default_registry()
    shape = shape or SHAPES[factory]
    context = BuildContext(target=None, registry=registry, options={"input_shapes": [shape]})
    source = ModelSource.parse(f"{module}:{factory}")
    _, model = export_to_onnx(source, context)
    model = fix_input_shapes(model, [shape], source.text)
    return registry.passes["fold-constants"](model, context)


@pytest.fixture(scope="session")
def moe_onnx(tmp_path_factory):
    """``moe_onnx("make_moe_mlp")``: the path of that factory's exported ONNX file (cached)."""
    directory: Path = tmp_path_factory.mktemp("moe_models")

    def get(factory: str) -> Path:
        path = directory / f"{factory}.onnx"
        if not path.exists():
            onnx.save(export(factory), path)
        return path

    return get
