"""Settings from ``edgekit.toml`` or ``[tool.edgekit]`` in ``pyproject.toml``; flags override them.

    # edgekit.toml
    target = "cortex-m4"
    output = "build/model"
    passes = ["fold-constants", "eliminate-dead-code"]
    input_shape = ["1,3,32,32"]
    name = "kws"
    run = true
    force = true      # replace an output directory edgekit did not write

Unknown keys are errors that name them: a misspelt setting must not be silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import UsageError, read_toml


@dataclass(frozen=True)
class Kind:
    """What a setting's value must be: ``accepts`` says whether it is; ``described`` says what, to
    the user."""

    accepts: Callable[[Any], bool]
    described: str


def _text(what: str) -> Kind:
    return Kind(lambda v: isinstance(v, str), f"a string ({what})")


def _strings(example: str) -> Kind:
    return Kind(lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
                f"a list of strings like {example}")


def _integer(minimum: int) -> Kind:
    # TOML's true is not an integer here, though Python's bool is an int
    return Kind(lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum,
                f"an integer of at least {minimum}")


FLAG = Kind(lambda v: isinstance(v, bool), "true or false")
#: [options] is free-form (plugins read it from BuildContext.options) but holds what --option can
#: give: a table of scalars, not nested tables or arrays no option reads
OPTIONS = Kind(lambda v: isinstance(v, dict), "a table ([options] key = value)")
OPTION_VALUE = Kind(lambda v: isinstance(v, (str, int, float, bool)), "a string, number or true/false")

# Key -> what its value must be. Plugins read further options from BuildContext.options; they are
# set with [tool.edgekit.options] (free-form) so that core keys stay checked.
KNOWN_KEYS: dict[str, Kind] = {
    "target": _text("a target name, or a profile .toml"), "output": _text("a directory"),
    "passes": _strings('["fold-constants", "eliminate-dead-code"]'),
    "input_shape": _strings('["1,2,4,4"], one per input ("name=1,2,4,4" for a model with several)'),
    "name": _text("the C name prefix"), "run": FLAG, "inputs": _text("a .npy or .npz file"),
    "seed": _integer(0), "verify_samples": _integer(1), "options": OPTIONS,
    "backend": _text("a back end name"), "quantize": _text("int8 or int4"), "force": FLAG,
}
CONFIG_FILE = "edgekit.toml"


def find_config(start: Path) -> Path | None:
    """``edgekit.toml`` in ``start``, else a pyproject.toml there with a ``[tool.edgekit]`` table."""
    candidate = start / CONFIG_FILE
    if candidate.is_file():
        return candidate
    pyproject = start / "pyproject.toml"
    if pyproject.is_file() and "[tool.edgekit" in pyproject.read_text(encoding="utf-8", errors="replace"):
        return pyproject
    return None


def load_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    data = read_toml(path, "config file")
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        data = tool.get("edgekit", {}) if isinstance(tool, dict) else None
        if not isinstance(data, dict):
            raise UsageError(f"{path}: tool.edgekit must be a table ([tool.edgekit] key = value)")
    unknown = sorted(set(data) - set(KNOWN_KEYS))
    if unknown:
        raise UsageError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_KEYS))}")
    for key, value in data.items():
        _check(path, key, value, KNOWN_KEYS[key])
    for key, value in data.get("options", {}).items():
        _check(path, f"options.{key}", value, OPTION_VALUE)
    return data


#: how much of a wrong value a message quotes
SHOWN_CHARS = 60


def _check(path: Path, key: str, value: Any, kind: Kind) -> None:
    if not kind.accepts(value):
        shown = repr(value) if len(repr(value)) <= SHOWN_CHARS else repr(value)[:SHOWN_CHARS] + "..."
        raise UsageError(f"{path}: setting '{key}' must be {kind.described}, got {shown}")


def merge(config: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """Flags given on the command line (not None, not empty) override the config file."""
    merged = dict(config)
    for key, value in flags.items():
        if value is not None and value != () and value != []:
            merged[key] = list(value) if isinstance(value, tuple) else value
    return merged
