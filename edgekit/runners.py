"""Runners execute a built artifact somewhere (host, emulator, board) and measure it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from edgekit.context import BuildContext


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
