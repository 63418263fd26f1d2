"""A plugin whose registration hook raises."""

import edgekit


@edgekit.hookimpl
def edgekit_register_passes():
    raise RuntimeError("database of passes is locked")
