"""Registers the target profiles shipped in ``targets/`` (package ``edgekit.targets``)."""

from importlib.resources import files

import edgekit


@edgekit.hookimpl
def edgekit_register_targets():
    profiles = files("edgekit.targets")
    return sorted(str(p) for p in profiles.iterdir() if p.name.endswith(".toml"))
