"""Apache TVM is an optional dependency (``pip install 'edgekit[tvm]'``): every entry point of the TVM
back end, its kernels for mcu-c, its runners and ``edgekit tune`` asks for it here first, so that a
missing or broken install is one usage error that says what to install, as the torch and tflite front
ends do, not an import error from deep inside a build."""

from __future__ import annotations

import functools

from edgekit.errors import UsageError

INSTALL_HINT = "pip install 'edgekit[tvm]'"
TUNE_INSTALL_HINT = "pip install 'edgekit[tune]'"


@functools.cache
def require_tvm(what: str = "the TVM back end") -> None:
    """Import TVM once; a UsageError (exit 2) naming ``what`` needs it and the extra to install."""
    try:
        import tvm  # noqa: F401
        from tvm import relax  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"{what} needs Apache TVM ({_reason(exc)}): {INSTALL_HINT}") from None


def require_tuning() -> None:
    """MetaSchedule's cost model and workers need the ``tune`` extra's packages too."""
    require_tvm("edgekit tune")
    missing = [name for name in ("xgboost", "cloudpickle", "psutil", "tornado") if not _importable(name)]
    if missing:
        raise UsageError(f"edgekit tune needs {', '.join(missing)}: {TUNE_INSTALL_HINT}")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _reason(exc: ImportError) -> str:
    return f"no module '{exc.name}'" if exc.name else "it does not import"
