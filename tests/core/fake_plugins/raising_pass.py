"""Passes that fail in each way the pipeline must catch: raising, returning the wrong type, and
returning a model that is no longer valid ONNX or whose shapes no longer agree."""

import edgekit


@edgekit.model_pass("explode")
def explode(model, context):
    """Always fails."""
    raise ValueError("cannot handle node 'conv'")


@edgekit.model_pass("return-none")
def return_none(model, context):
    """Forgets to return the model."""
    model.graph.name = "changed"


@edgekit.model_pass("dangle-input")
def dangle_input(model, context):
    """Renames the first node's input to a tensor nothing produces."""
    model.graph.node[0].input[0] = "nowhere"
    return model


@edgekit.model_pass("break-shapes")
def break_shapes(model, context):
    """Declares the graph output with a rank the graph does not produce."""
    dims = model.graph.output[0].type.tensor_type.shape.dim
    dims.add().dim_value = 7
    return model


@edgekit.hookimpl
def edgekit_register_passes():
    return [explode, return_none, dangle_input, break_shapes]
