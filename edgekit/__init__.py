"""edgekit: take a trained model to an edge device.

``edgekit.build``, ``edgekit.run`` and ``edgekit.inspect`` are the commands as functions
(:mod:`edgekit.api`); the public API for plugin authors is re-exported here too. Heavy modules
(onnx, torch, tvm) are only imported where they are used, so ``edgekit --help`` stays fast."""

from __future__ import annotations

import os as _os
import sys as _sys

if _os.path.basename((getattr(_sys, "argv", None) or [""])[0]) == "edgekit":
    # the edgekit program: Ctrl-C while it imports is one line too (a library user keeps its handler)
    from edgekit.startup import exit_on_interrupt as _exit_on_interrupt

    _exit_on_interrupt()

import pluggy

from edgekit.backends import Artifact, Backend, KernelLibrary
from edgekit.context import BuildContext
from edgekit.errors import BuildError, EdgekitError, PluginError, UsageError
from edgekit.passes import Pass, PassRecord, Tolerance, model_pass
from edgekit.runners import Runner, RunResult
from edgekit.target import Target

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("edgekit")

# The Python API (edgekit/api.py, light: it imports onnx and the rest only when called). No module
# of the package is named build, run or inspect, so importing a submodule never replaces these.
from edgekit.api import Report, RunReport, build, inspect, run  # noqa: E402

__all__ = [
    "Artifact", "Backend", "BuildContext", "BuildError", "EdgekitError", "KernelLibrary", "Pass",
    "PassRecord", "PluginError", "Report", "RunReport", "RunResult", "Runner", "Target", "Tolerance",
    "UsageError", "build", "hookimpl", "inspect", "model_pass", "run", "__version__",
]
