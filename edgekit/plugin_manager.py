"""A small plugin manager: loads ``edgekit`` entry points and calls hooks one plugin at a time, so
that a failure is always reported with the plugin's name and a one-line reason."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from edgekit import hookspecs
from edgekit.errors import EdgekitError, PluginError, one_line

ENTRY_POINT_GROUP = "edgekit"
# Extra plugin modules to load without installing a package, comma-separated (as PYTEST_PLUGINS).
PLUGINS_ENV = "EDGEKIT_PLUGINS"
# Installed plugins to leave unloaded, comma-separated entry-point names (e.g. a broken third-party one).
DISABLE_ENV = "EDGEKIT_DISABLE_PLUGINS"


@dataclass
class PluginInfo:
    name: str
    module: str
    version: str
    distribution: str
    broken: str = ""  # one-line reason when the plugin could not be loaded
    hooks: list[str] = field(default_factory=list)


class PluginHost:
    """The pluggy manager plus what we learnt while loading plugins."""

    def __init__(self, extra_plugins: Iterable[ModuleType | object] = ()):
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        disabled = {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",")}
        for entry_point in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                                  key=lambda ep: ep.name):
            if entry_point.name in disabled:
                continue
            dist = entry_point.dist
            self._load(entry_point.name, entry_point.value, entry_point.load,
                       dist.version if dist else "", dist.name if dist else "")
        for module_name in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
            self._load(module_name, module_name, lambda m=module_name: importlib.import_module(m), "", "")
        for plugin in extra_plugins:
            name = getattr(plugin, "__name__", type(plugin).__name__)
            self._load(name, name, lambda p=plugin: p, "", "")

    def _load(self, name: str, target: str, load, version: str, distribution: str) -> None:
        info = PluginInfo(name=name, module=target, version=version, distribution=distribution)
        self.plugins[name] = info
        try:
            module = load()
        except BaseException as exc:  # an import of third-party code can raise anything, even SystemExit
            if isinstance(exc, KeyboardInterrupt):
                raise
            info.broken = f"failed to import {target}: {type(exc).__name__}: {one_line(exc)}"
            return
        unknown = sorted(attr for attr in dir(module)
                         if attr.startswith("edgekit_") and not hasattr(hookspecs, attr))
        if unknown:
            info.broken = f"implements unknown hook(s) {', '.join(unknown)}"
            return
        try:
            self.pm.register(module, name=name)
        except Exception as exc:  # pluggy validates argument names against the hook specs
            info.broken = f"does not fit the plugin contract: {one_line(exc)}"
            return
        info.hooks = sorted(caller.name for caller in self.pm.get_hookcallers(module) or ())

    def broken(self) -> list[PluginInfo]:
        return [info for info in self.plugins.values() if info.broken]

    def mark_broken(self, plugin: str, reason: str) -> None:
        self.plugins.setdefault(plugin, PluginInfo(plugin, plugin, "", "")).broken = reason
        self.pm.unregister(name=plugin)

    def call_each(self, hook_name: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """Yield ``(plugin name, result)`` for every implementation of a hook, in pluggy's call order.

        An ``EdgekitError`` raised on purpose by a plugin passes through; anything else becomes a
        :class:`PluginError` naming the plugin and the hook."""
        impls = reversed(getattr(self.pm.hook, hook_name).get_hookimpls())
        yield from self.call_each_from(hook_name, impls, **kwargs)

    def call_each_from(self, hook_name: str, impls: Iterable[Any], **kwargs: Any) -> Iterator[tuple[str, Any]]:
        for impl in impls:
            try:
                result = impl.function(*(kwargs[arg] for arg in impl.argnames))
            except EdgekitError:
                raise
            except Exception as exc:
                raise PluginError(impl.plugin_name,
                                  f"{hook_name} raised {type(exc).__name__}: {one_line(exc)}") from exc
            yield impl.plugin_name, result

    def call_each_guarded(self, hook_name: str, warnings: list[str], left_out: str,
                          kwargs_for: Callable[[], dict[str, Any]]) -> Iterator[tuple[str, Any]]:
        """Yield ``(plugin name, result)`` for every implementation, each called with a fresh
        ``kwargs_for()``; a plugin that raises (even an ``EdgekitError``) is named in a line added to
        ``warnings`` ("...; its <left_out> is left out") and skipped: the others are unaffected."""
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            try:
                _, result = next(iter(self.call_each_from(hook_name, [impl], **kwargs_for())))
            except PluginError as exc:
                warnings.append(f"{exc}; its {left_out} is left out")
                continue
            except EdgekitError as exc:
                warnings.append(f"plugin '{impl.plugin_name}': {hook_name} failed: {one_line(exc)}; "
                                f"its {left_out} is left out")
                continue
            yield impl.plugin_name, result

    def call_first(self, hook_name: str, **kwargs: Any) -> tuple[str, Any] | None:
        """The first non-None result of a ``firstresult`` hook, with the plugin that gave it."""
        for plugin, result in self.call_each(hook_name, **kwargs):
            if result is not None:
                return plugin, result
        return None

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call an observer hook on every plugin."""
        for _ in self.call_each(hook_name, **kwargs):
            pass
