"""Export every re-parameterization example, and its plain architecture, with both torch exporters:
the dynamo exporter (opset 18) and the legacy TorchScript exporter (``dynamo=False``, opset 17).

    python examples/repparam/export.py OUTDIR   # writes NAME[.plain].{dynamo,legacy}.onnx
"""

from __future__ import annotations

import importlib.util
import io
import logging
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = ("ssf_cnn", "ssf_transformer", "repvgg", "acnet", "deconv", "lora", "batchnorm_cnn")
EXPORTERS = ("dynamo", "legacy")


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"repparam_example_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def export(name: str, exporter: str, plain: bool = False):
    """The ONNX ModelProto of one example (``plain``: its plain architecture) from one exporter."""
    import onnx
    import torch

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    module = load(name)
    model = (module.make_plain_model if plain else module.make_model)()
    args = (torch.randn(*module.INPUT_SHAPE, generator=torch.Generator().manual_seed(0)),)
    keep_bn = getattr(module, "KEEPS_BATCHNORM", False)
    with torch.no_grad():
        if exporter == "dynamo":
            program = torch.onnx.export(model, args, dynamo=True, opset_version=18, external_data=False,
                                        optimize=not keep_bn, verbose=False)
            return program.model_proto
        buffer = io.BytesIO()
        extra = {"training": torch.onnx.TrainingMode.PRESERVE, "do_constant_folding": False} if keep_bn else {}
        torch.onnx.export(model, args, buffer, dynamo=False, opset_version=17, **extra)
        return onnx.load_from_string(buffer.getvalue())


def export_all(out_dir: Path) -> list[Path]:
    import onnx

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in EXAMPLES:
        for exporter in EXPORTERS:
            for plain in (False, True):
                path = out_dir / f"{name}{'.plain' if plain else ''}.{exporter}.onnx"
                onnx.save(export(name, exporter, plain), str(path))
                written.append(path)
    return written


if __name__ == "__main__":
    for path in export_all(Path(sys.argv[1] if len(sys.argv) > 1 else "repparam-onnx")):
        print(path)
