"""Front ends: the user's MODEL argument, and the dispatch to the plugin that turns it into ONNX."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.errors import UsageError

if TYPE_CHECKING:
    import onnx

    from edgekit.context import BuildContext


#: what MODEL names (front-end plugins may read more kinds of file)
MODEL_FILES = "a model file (.onnx, .tflite, .pt2) or file.py:function"


@dataclass(frozen=True)
class ModelSource:
    """What the user named: a file (``path``), or a Python factory ``path.py:function``."""

    text: str
    path: Path
    function: str | None = None

    @property
    def suffix(self) -> str:
        return self.path.suffix.lower()

    @classmethod
    def parse(cls, text: str) -> ModelSource:
        file_part, sep, function = text.rpartition(":")
        if sep and file_part.endswith(".py") and function.isidentifier():
            return cls(text=text, path=Path(file_part), function=function)
        return cls(text=text, path=Path(text))


def export_to_onnx(source: ModelSource, context: BuildContext) -> tuple[str, onnx.ModelProto]:
    """Ask the front-end plugins in turn; the first that returns a model wins."""
    from edgekit.userfiles import regular_file

    regular_file(source.path, expected=MODEL_FILES)
    found = context.registry.host.call_first("edgekit_export_model", source=source, context=context)
    if found is None:
        raise UsageError(f"{source.text}: no front end reads this file; give {MODEL_FILES} "
                         f"(plugins may add more: see `edgekit plugins`)")
    plugin, model = found
    import onnx

    if not isinstance(model, onnx.ModelProto):
        from edgekit.errors import PluginError

        raise PluginError(plugin, f"edgekit_export_model returned {type(model).__name__}, expected onnx.ModelProto")
    from edgekit.model import raise_ir_version

    # every pass may then add initializers or drop inputs without breaking an old (IR 3) model
    return plugin, raise_ir_version(model)
