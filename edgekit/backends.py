"""Back ends turn the final ONNX model into an artifact for a target (C library, shared object...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.passes import Tolerance

if TYPE_CHECKING:
    import onnx

    from edgekit.context import BuildContext
    from edgekit.target import Target


@dataclass
class Artifact:
    """What a back end wrote. ``files`` are relative to the output directory; ``metadata`` goes into
    ``report.json`` under ``backend`` and is what a runner reads to run the artifact later."""

    backend: str
    files: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


class Backend:
    """Base class for back ends. Subclasses set ``name`` and implement ``supported_ops`` and ``build``."""

    name: str = ""
    description: str = ""
    plugin: str = ""  # set by the registry
    # How close a run of the artifact must come to onnxruntime on the reference model.
    tolerance: Tolerance = Tolerance(atol=1e-4, rtol=1e-3)
    #: Outputs a model dequantizes from int8 are compared in quantization steps. Integer kernels
    #: are exact per layer, but onnxruntime computes the QDQ reference in float: its round-off
    #: moves about 1 value in 10^5 per layer to the neighbouring step, and those differences
    #: spread through the following layers (a Softmax output moves several steps for one step
    #: of its logits). The report gives the exact-match ratio; this bounds the worst value.
    quantized_tolerance_steps: float = 3.0

    def supported_ops(self, target: Target) -> set[str]:
        """ONNX op types (``"Conv"``, or ``"domain::Op"`` outside the default domain) this back end
        runs on ``target``. ``edgekit inspect`` reports these; ``check`` refuses anything else."""
        raise NotImplementedError

    def check(self, model: onnx.ModelProto, context: BuildContext) -> None:
        """Raise ``edgekit.BuildError`` before anything is written when the model cannot be built.
        The default refuses the first node whose op is not in ``supported_ops``."""
        from edgekit.model import op_key

        supported = self.supported_ops(context.target)
        for node in model.graph.node:
            if op_key(node) not in supported:
                from edgekit.errors import BuildError

                raise BuildError(
                    f"node '{node.name}' (op {op_key(node)}) is not supported by back end '{self.name}' "
                    f"on target '{context.target.name}'; supported ops: {', '.join(sorted(supported))}")

    def runner_for(self, target: Target) -> str | None:
        """The runner that executes this back end's artifacts on ``target``, when it is not the
        profile's default (e.g. onnxruntime's model on a host target); None: use ``target.runner``."""
        return None

    def build(self, model: onnx.ModelProto, context: BuildContext, out_dir: Path) -> Artifact:
        """Write the artifact into ``out_dir`` (a fresh temporary directory) and describe it."""
        raise NotImplementedError


class KernelLibrary:
    """Kernels a back end can generate code over instead of its own (``--kernels NAME``).

    The back end ``backend`` keeps its contract (API, memory plan, harness metadata); the library
    compiles the model's compute and returns that back end's library metadata. For ``mcu-c``:
    ``header``, ``sources`` (C files in ``out_dir``), ``objects`` (prebuilt objects to link),
    ``include_dirs``, ``run_function`` (``<name>_run_io(inputs, outputs, arena)``), ``arena_bytes``,
    ``arena_lower_bound_bytes``, ``inputs``/``outputs`` (name, c_name, shape, dtype, count, bytes),
    ``layers`` (one entry per call, in order), ``files`` (everything written), plus any figures of
    its own."""

    name: str = ""
    description: str = ""
    backend: str = ""  # the back end whose artifacts these kernels go into
    plugin: str = ""   # set by the registry

    def supported_ops(self, target: Target) -> set[str]:
        raise NotImplementedError

    def check(self, model: onnx.ModelProto, context: BuildContext) -> None:
        """Raise before anything is written when the model cannot be built with these kernels."""

    def build(self, model: onnx.ModelProto, context: BuildContext, out_dir: Path) -> dict[str, Any]:
        raise NotImplementedError
