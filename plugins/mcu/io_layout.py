"""What the dimensions of a rank-4 graph input or output mean: NCHW, NHWC, or not known.

Every tensor a library takes or gives is dense and row-major over the shape its header states; this
names the dimensions when the graph says so, for a firmware engineer who feeds camera frames (HWC)
or reads feature maps. The graph says so through the ops the tensor meets: ONNX's image ops (Conv,
pools, BatchNormalization...) take NCHW, so an input that reaches one through ops that keep every
dimension's meaning (elementwise, Q/DQ, casts) is NCHW, and one that reaches it through a
Transpose(0, 3, 1, 2) is NHWC, as a TFLite model's input is. Outputs likewise, walking back to the
op that produced them. Anything else (vectors, sequences, a shape no image op sees) is not named.
"""

from __future__ import annotations

import onnx

NCHW, NHWC, UNKNOWN = "NCHW", "NHWC", ""

#: ONNX ops whose first input and output are NCHW
IMAGE_OPS = frozenset("""Conv ConvTranspose ConvInteger QLinearConv MaxPool AveragePool LpPool GlobalAveragePool
GlobalMaxPool GlobalLpPool QLinearAveragePool QLinearGlobalAveragePool BatchNormalization InstanceNormalization
LRN SpaceToDepth DepthToSpace MaxUnpool""".split())
#: ops whose (first) data input and output have the same dimensions, each with the same meaning
KEEP_LAYOUT = frozenset("""Identity Cast QuantizeLinear DequantizeLinear Relu LeakyRelu PRelu Clip Sigmoid
HardSigmoid HardSwish Tanh Elu Selu Celu Softplus Softsign Abs Neg Exp Log Sqrt Reciprocal Floor Ceil Round Erf
Gelu Mish Add Sub Mul Div Pow Max Min Sum Mean Pad Dropout""".split())
TO_NCHW, TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]
_DEPTH = 16  # ops followed from a tensor before giving up


def _perm(node: onnx.NodeProto) -> list[int]:
    for a in node.attribute:
        if a.name == "perm":
            return list(a.ints)
    return []


class _Graph:
    def __init__(self, model: onnx.ModelProto):
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.constants = {i.name for i in model.graph.initializer}
        for node in model.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
            for name in node.output:
                self.producer[name] = node
            if node.op_type == "Constant":
                self.constants.update(node.output)

    def forward(self, name: str, depth: int = _DEPTH) -> set[str]:
        """The layouts ``name``'s image-op consumers see it in (NCHW; NHWC through a transpose)."""
        found: set[str] = set()
        for node in self.consumers.get(name, []) if depth else []:
            if node.op_type in IMAGE_OPS and node.input[0] == name:
                found.add(NCHW)
            elif node.op_type in KEEP_LAYOUT:
                found |= self.forward(node.output[0], depth - 1)
            elif node.op_type == "Transpose" and _perm(node) == TO_NCHW:
                if NCHW in self.forward(node.output[0], depth - 1):
                    found.add(NHWC)
        return found

    def backward(self, name: str, depth: int = _DEPTH) -> str:
        node = self.producer.get(name)
        if node is None or not depth:
            return UNKNOWN
        if node.op_type in IMAGE_OPS:
            return NCHW
        if node.op_type in KEEP_LAYOUT:
            # the data input: the first one that is computed (a constant operand is a parameter)
            data = [i for i in node.input if i and i not in self.constants]
            return self.backward(data[0], depth - 1) if data else UNKNOWN
        if node.op_type == "Transpose" and _perm(node) == TO_NHWC:
            return NHWC if self.backward(node.input[0], depth - 1) == NCHW else UNKNOWN
        return UNKNOWN


def io_layouts(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    """The layout of each graph input (initializers excluded) and output, in graph order: NCHW,
    NHWC or UNKNOWN (also for every tensor that is not rank 4, and when the ops disagree)."""
    from edgekit.model import graph_inputs

    graph = _Graph(model)

    def rank(value: onnx.ValueInfoProto) -> int:
        return len(value.type.tensor_type.shape.dim) if value.type.tensor_type.HasField("shape") else -1

    inputs = []
    for value in graph_inputs(model):
        seen = graph.forward(value.name) if rank(value) == 4 else set()
        inputs.append(seen.pop() if len(seen) == 1 else UNKNOWN)
    outputs = [graph.backward(value.name) if rank(value) == 4 else UNKNOWN for value in model.graph.output]
    return inputs, outputs
