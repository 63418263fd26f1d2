"""Small ONNX graphs for the repparam property tests, and the check every test applies: run the pass,
validate the result as the pipeline does, and compare with onnxruntime on the unmerged graph under
the pass's declared tolerance."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekit.context import BuildContext
from edgekit.model import infer_shapes
from edgekit.verify import compare, random_inputs, run_onnxruntime


@dataclass
class GraphBuilder:
    """Collects nodes and seeded float32 initializers; ``model()`` makes an opset-18 model."""

    seed: int = 0
    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    inputs: list = field(default_factory=list)

    def __post_init__(self):
        self.rng = np.random.default_rng(self.seed)

    def input(self, name: str, shape) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        return name

    def const(self, name: str, array) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def weight(self, name: str, shape, fan_in: int | None = None) -> str:
        fan_in = fan_in or int(np.prod(shape[1:])) or 1
        return self.const(name, self.rng.standard_normal(shape) / np.sqrt(fan_in))

    def vector(self, name: str, shape, around: float = 0.0, spread: float = 0.5) -> str:
        return self.const(name, around + spread * self.rng.standard_normal(shape))

    def node(self, op: str, inputs, output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=f"{op}_{len(self.nodes)}", **attrs))
        return output

    def model(self, *outputs: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "g", self.inputs,
                                  [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                                  self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        model.ir_version = 9
        model = infer_shapes(model, strict=True)  # also gives the outputs their shapes
        onnx.checker.check_model(model)
        return model


def ops(model: onnx.ModelProto) -> Counter:
    return Counter(n.op_type for n in model.graph.node)


def parameters(model: onnx.ModelProto) -> int:
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)


def apply(pass_, model: onnx.ModelProto, seed: int = 0) -> tuple[onnx.ModelProto, list]:
    """Run ``pass_`` as the pipeline does and check the result computes the same function."""
    context = BuildContext(target=None, registry=None)
    working = onnx.ModelProto()
    working.CopyFrom(model)
    result = pass_(working, context)
    onnx.checker.check_model(result)
    infer_shapes(result, strict=True)
    inputs = random_inputs(model, 2, seed)
    comparison = compare(run_onnxruntime(model, inputs), run_onnxruntime(result, inputs), pass_.tolerance)
    assert comparison.within(), (f"{pass_.name}: {comparison.mismatch or comparison.worst_output} "
                                 f"abs {comparison.max_abs:.3g} rel {comparison.max_rel:.3g}")
    return result, context.take_notes()


def unchanged(before: onnx.ModelProto, after: onnx.ModelProto) -> bool:
    return before.graph.SerializeToString() == after.graph.SerializeToString()


def note_text(notes) -> str:
    return "\n".join(n["message"] if isinstance(n, dict) else str(n) for n in notes)
