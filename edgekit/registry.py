"""What the installed plugins provide, collected once per process and checked for type and clashes."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from edgekit.backends import Backend, KernelLibrary
from edgekit.errors import PluginError, UsageError
from edgekit.hookspecs import REGISTRATION_HOOKS
from edgekit.passes import Pass
from edgekit.plugin_manager import PluginHost
from edgekit.runners import Runner
from edgekit.target import Target, unknown_name_error

_KINDS: dict[str, type] = {"passes": Pass, "backends": Backend, "runners": Runner, "targets": Target,
                           "kernel_libraries": KernelLibrary}


_SINGULAR = {"passes": "pass", "kernel_libraries": "kernel library"}


class Registry:
    """Passes, targets, back ends and runners by name, each remembering its plugin."""

    def __init__(self, extra_plugins: Iterable[ModuleType | object] = ()):
        self.host = PluginHost(extra_plugins)
        self._items: dict[str, dict[str, Any]] = {}
        self.provided: dict[str, dict[str, list[str]]] = {}  # plugin -> kind -> names

    def _collect(self, kind: str) -> dict[str, Any]:
        """Everything of one kind. A plugin whose hook raises or returns the wrong thing is marked
        broken (named, with the reason) and contributes nothing; the other plugins are unaffected."""
        if kind in self._items:
            return self._items[kind]
        hook = next(h for h, k in REGISTRATION_HOOKS.items() if k == kind)
        items: dict[str, Any] = {}
        caller = getattr(self.host.pm.hook, hook)
        for impl in reversed(caller.get_hookimpls()):
            plugin = impl.plugin_name
            try:
                _, result = next(iter(self.host.call_each_from(hook, [impl])))
                entries = self._validate(plugin, hook, kind, result or [])
                clash = next((e.name for e in entries if e.name in items), None)
                if clash:
                    raise PluginError(plugin, f"{_SINGULAR.get(kind, kind[:-1])} '{clash}' is already "
                                              f"registered by plugin '{_origin(items[clash])}'")
            except (PluginError, UsageError) as exc:
                self.host.mark_broken(plugin, str(exc).removeprefix(f"plugin '{plugin}': "))
                continue
            for item in entries:
                items[item.name] = item
                self.provided.setdefault(plugin, {}).setdefault(kind, []).append(item.name)
        self._items[kind] = items
        return items

    def load_all(self) -> None:
        """Collect every kind now, so broken plugins are known before a command starts."""
        for kind in _KINDS:
            self._collect(kind)

    def _validate(self, plugin: str, hook: str, kind: str, result: Any) -> list[Any]:
        expected = _KINDS[kind]
        if not isinstance(result, (list, tuple)):
            raise PluginError(plugin, f"{hook} must return a list of {expected.__name__}, "
                                      f"got {type(result).__name__}")
        items = []
        for entry in result:
            if kind == "targets" and isinstance(entry, (str, Path)):
                entry = Target.from_toml(entry)
            if not isinstance(entry, expected):
                raise PluginError(plugin, f"{hook} returned {type(entry).__name__}, "
                                          f"expected {expected.__name__}")
            if not getattr(entry, "name", ""):
                raise PluginError(plugin, f"{hook} returned a {expected.__name__} without a name")
            if kind == "passes":
                entry = Pass(**{**entry.__dict__, "plugin": plugin})
            elif kind == "targets":
                entry = Target(**{**entry.__dict__, "source": entry.source or f"plugin {plugin}"})
            else:
                entry.plugin = plugin
            items.append(entry)
        return items

    @property
    def passes(self) -> dict[str, Pass]:
        return self._collect("passes")

    @property
    def targets(self) -> dict[str, Target]:
        return self._collect("targets")

    @property
    def backends(self) -> dict[str, Backend]:
        return self._collect("backends")

    @property
    def runners(self) -> dict[str, Runner]:
        return self._collect("runners")

    @property
    def kernel_libraries(self) -> dict[str, KernelLibrary]:
        return self._collect("kernel_libraries")

    def target(self, name_or_path: str) -> Target:
        """A registered profile by name, or a profile file given by path (``*.toml``)."""
        if name_or_path.endswith(".toml") or "/" in name_or_path:
            return Target.from_toml(name_or_path)
        targets = self.targets
        if name_or_path not in targets:
            raise unknown_name_error("target", name_or_path, list(targets),
                                     "; `edgekit targets` lists them, or pass a profile file path")
        return targets[name_or_path]

    def get(self, kind: str, name: str) -> Any:
        items = self._collect(kind)
        if name not in items:
            raise unknown_name_error(_SINGULAR.get(kind, kind[:-1]), name, list(items))
        return items[name]

    def resolve_passes(self, names: Iterable[str]) -> list[Pass]:
        return [self.get("passes", name) for name in names]


def _origin(item: Any) -> str:
    return getattr(item, "plugin", "") or getattr(item, "source", "")


@functools.lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The registry of the installed plugins, loaded once per process."""
    return Registry()
