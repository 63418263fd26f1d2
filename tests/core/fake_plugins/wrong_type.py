"""A plugin whose hook returns the wrong type."""

import edgekit


@edgekit.hookimpl
def edgekit_register_backends():
    return ["not a backend"]
