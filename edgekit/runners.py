"""Runners execute a built artifact somewhere (host, emulator, board) and measure it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from edgekit.context import BuildContext

#: Runner options that ask one run for a file of its own: ``save_firmware`` (``edgekit run OUT
#: --save-firmware PATH``, ``--option save_firmware=PATH``) asks for a firmware image that runs the
#: model on the run's inputs by itself. The run the user started gets them; report.json does not
#: keep them (a later ``edgekit run`` would write the file again), and the scratch reruns of a
#: reference do not get them (they would write over it). A runner that writes the image names it in
#: its measurements as ``standalone_firmware`` (the path) and ``standalone_firmware_command`` (how
#: to run it); a runner that cannot raises a UsageError.
PER_RUN_OPTIONS = ("save_firmware",)


def lasting_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` without :data:`PER_RUN_OPTIONS`: what a report keeps and a rerun gets."""
    return {key: value for key, value in options.items() if key not in PER_RUN_OPTIONS}


@dataclass
class RunResult:
    """Outputs by ONNX output name, and measurements (``instructions``, ``flash_bytes``...) for the
    report. Emulators count instructions: never call them cycles or milliseconds."""

    outputs: dict[str, np.ndarray]
    measurements: dict[str, Any] = field(default_factory=dict)


class Runner:
    """Base class for runners. ``name`` is what a target profile's ``runner`` field names."""

    name: str = ""
    description: str = ""
    plugin: str = ""  # set by the registry

    def run(self, artifact_dir: Path, inputs: list[dict[str, np.ndarray]],
            context: BuildContext) -> list[RunResult]:
        """Run the artifact in ``artifact_dir`` once per input set; one result per input set."""
        raise NotImplementedError
