"""A plugin whose pass silently scales the first weight tensor: verification must catch it."""

import numpy as np

import edgekit
from edgekit.model import initializer_array, set_initializer


@edgekit.model_pass("scale-weights", rtol=1e-5, atol=1e-5)
def scale_weights(model, context):
    """Multiply the first initializer by 1.01 (a subtly wrong 'optimisation')."""
    first = model.graph.initializer[0].name
    set_initializer(model, first, initializer_array(model, first) * np.float32(1.01))
    return model


@edgekit.hookimpl
def edgekit_register_passes():
    return [scale_weights]
