"""A plugin whose pass raises while running, and one that returns the wrong type."""

import edgekit


@edgekit.model_pass("explode")
def explode(model, context):
    """Always fails."""
    raise ValueError("cannot handle node 'conv'")


@edgekit.model_pass("return-none")
def return_none(model, context):
    """Forgets to return the model."""
    model.graph.name = "changed"


@edgekit.hookimpl
def edgekit_register_passes():
    return [explode, return_none]
