"""The harness registers its runners through the plugin hook."""

from __future__ import annotations

import importlib.metadata

from edgekit.plugins.harness import plugin
from edgekit.registry import Registry


def test_runners_are_registered():
    installed = any(ep.value == plugin.__name__ for ep in importlib.metadata.entry_points(group="edgekit"))
    registry = Registry() if installed else Registry(extra_plugins=[plugin])
    runners = registry.runners
    for name in ("qemu", "host", "serial"):
        assert name in runners and runners[name].name == name
    assert not any(info.broken for info in registry.host.plugins.values() if "harness" in info.module)
