"""A plugin implementing a misspelt hook."""

import edgekit


@edgekit.hookimpl
def edgekit_register_pases():
    return []
