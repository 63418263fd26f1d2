"""PyTorch front end: ``torch.export`` programs (``.pt2``) and ``file.py:function`` module factories,
exported with ``torch.onnx.export`` (dynamo exporter, single-file ONNX).

Security: a ``.pt2`` is loaded with ``torch.export.load`` under :func:`no_arbitrary_unpickling`,
which forces ``weights_only=True`` on every ``torch.load`` and refuses the archive's pickled opaque
objects: edgekit never unpickles arbitrary objects. Pickled ``.pt``/``.pth`` modules are
refused with a message saying how to save a program instead. A factory file is Python the user asked
us to run, like a build script.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import edgekit
from edgekit.errors import UsageError, one_line
from edgekit.frontends import ModelSource

PICKLE_SUFFIXES = (".pt", ".pth", ".pkl")
#: how to make what the .pt2 front end reads
SAVE_PROGRAM = "save a program with torch.export.save(torch.export.export(model, args), 'model.pt2')"


@edgekit.hookimpl
def edgekit_export_model(source: ModelSource, context: edgekit.BuildContext):
    if source.function is not None:
        module = _call_factory(source)
        return _export_module(module, _example_inputs(source, context), source)
    if source.suffix == ".pt2":
        return _export_program(source)
    if source.suffix in PICKLE_SUFFIXES:
        raise UsageError(f"{source.path}: pickled PyTorch files are not loaded (unpickling runs arbitrary code); "
                         f"{SAVE_PROGRAM} or pass a factory as file.py:function")
    return None


def _torch():
    try:
        import torch
    except ImportError:
        raise UsageError("the PyTorch front end needs torch: pip install 'edgekit[torch]'") from None
    import logging
    import warnings

    # The exporter logs a warning per optional torchvision op it skips, and torch.export.load a
    # traceback for a file that is not a pt2 archive before it raises: noise beside edgekit's message.
    for name in ("torch.onnx", "torch.export"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="torch")
    return torch


def _call_factory(source: ModelSource):
    torch = _torch()
    path = source.path.resolve()
    module_name = f"edgekit_factory_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{source.path}: cannot import as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise UsageError(f"{source.path}: importing failed: {type(exc).__name__}: {one_line(exc)}") from None
    factory = getattr(module, source.function, None)
    if not callable(factory):
        raise UsageError(f"{source.path}: no function '{source.function}'")
    try:
        result = factory()
    except Exception as exc:
        raise UsageError(f"{source.text}: the factory raised {type(exc).__name__}: {one_line(exc)}") from None
    if not isinstance(result, torch.nn.Module):
        raise UsageError(f"{source.text}: the factory returned {type(result).__name__}, expected torch.nn.Module")
    return result.eval()


def _example_inputs(source: ModelSource, context: edgekit.BuildContext) -> tuple:
    from edgekit.model import parse_shape

    torch = _torch()
    shapes = context.option("input_shapes") or []
    if not shapes:
        raise UsageError(f"{source.text}: a module factory needs --input-shape for its example input "
                         f"(for example --input-shape 1,3,32,32; repeat for several inputs)")
    generator = torch.Generator().manual_seed(0)
    return tuple(torch.randn(*parse_shape(text)[1], generator=generator) for text in shapes)


def _export_module(module, args: tuple, source: ModelSource):
    torch = _torch()
    try:
        with torch.no_grad():
            program = torch.onnx.export(module, args, dynamo=True, external_data=False, verbose=False)
    except Exception as exc:
        raise UsageError(f"{source.text}: torch.onnx.export failed: {type(exc).__name__}: {one_line(exc)}") from None
    return _model_proto(program)


@contextlib.contextmanager
def no_arbitrary_unpickling() -> Iterator[None]:
    """While active, ``torch.load`` only accepts tensors and plain data (``weights_only=True``), and
    the pt2 archive reader's ``pickle.loads`` (opaque objects) and pickled constants are refused."""
    import torch
    import torch.export.pt2_archive._package as package

    def refuse(*args, **kwargs):
        raise UsageError("the .pt2 file holds pickled Python objects, which edgekit does not load; "
                         "export a program whose constants are tensors")

    real_load = torch.load

    def weights_only_load(*args, **kwargs):
        kwargs["weights_only"] = True
        return real_load(*args, **kwargs)

    class _NoPickle:
        loads = staticmethod(refuse)
        load = staticmethod(refuse)

    patches = [(torch, "load", weights_only_load), (package, "pickle", _NoPickle),
               (torch._C, "_pickle_load_obj", refuse)]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, value in patches:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def _export_program(source: ModelSource):
    if not zipfile.is_zipfile(source.path):  # told before importing torch, which takes seconds
        raise UsageError(f"{source.path}: not a torch.export program (not a zip archive); {SAVE_PROGRAM}")
    torch = _torch()
    try:
        with no_arbitrary_unpickling():
            program = torch.export.load(str(Path(source.path)))
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"{source.path}: not a torch.export program ({type(exc).__name__}: {one_line(exc)}); "
                         f"{SAVE_PROGRAM}") from None
    try:
        onnx_program = torch.onnx.export(program, dynamo=True, external_data=False, verbose=False)
    except Exception as exc:
        raise UsageError(f"{source.path}: torch.onnx.export failed: {type(exc).__name__}: {one_line(exc)}") from None
    return _model_proto(onnx_program)


def _model_proto(onnx_program):
    # external_data=False keeps the weights inside the proto: one self-contained model.
    return onnx_program.model_proto
