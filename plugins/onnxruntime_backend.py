"""The host back end and runner: the verified ONNX model, executed by onnxruntime.

This is what the ``x86-64`` target uses: the pipeline's output, checked and verified, written as
``model.onnx`` beside the report; ``edgekit run`` executes it with onnxruntime's CPU provider.
"""

from __future__ import annotations

from pathlib import Path

import edgekit

MODEL_FILE = "model.onnx"


class OnnxruntimeBackend(edgekit.Backend):
    name = "onnxruntime"
    description = "verified ONNX model run by onnxruntime (CPU)"

    def supported_ops(self, target: edgekit.Target) -> set[str]:
        from edgekit.verify import onnxruntime_ops

        return set(onnxruntime_ops())

    def runner_for(self, target: edgekit.Target) -> str:
        return OnnxruntimeRunner.name  # the model runs here, whatever device the profile describes

    def build(self, model, context: edgekit.BuildContext, out_dir: Path) -> edgekit.Artifact:
        from edgekit.model import for_runtime, graph_inputs, numpy_dtype, tensor_dims

        (out_dir / MODEL_FILE).write_bytes(for_runtime(model).SerializeToString())
        values = {"inputs": graph_inputs(model), "outputs": list(model.graph.output)}
        metadata = {
            "model": MODEL_FILE,
            **{kind: [{"name": v.name, "shape": tensor_dims(v), "dtype": numpy_dtype(v).name} for v in vs]
               for kind, vs in values.items()},
            "model_bytes": (out_dir / MODEL_FILE).stat().st_size,
        }
        return edgekit.Artifact(backend=self.name, files=[MODEL_FILE], metadata=metadata)


class OnnxruntimeRunner(edgekit.Runner):
    name = "onnxruntime"
    description = "runs model.onnx with onnxruntime on this host"

    def run(self, artifact_dir: Path, inputs, context):
        import onnx

        from edgekit.verify import run_onnxruntime

        model = onnx.load(str(Path(artifact_dir) / MODEL_FILE))
        return [edgekit.RunResult(outputs=o) for o in run_onnxruntime(model, inputs, "built model")]


@edgekit.hookimpl
def edgekit_register_backends():
    return [OnnxruntimeBackend()]


@edgekit.hookimpl
def edgekit_register_runners():
    return [OnnxruntimeRunner()]
