"""Settings from ``edgekit.toml`` or ``[tool.edgekit]`` in ``pyproject.toml``; flags override them.

    # edgekit.toml
    target = "cortex-m4"
    output = "build/model"
    passes = ["fold-constants", "eliminate-dead-code"]
    input_shape = ["1,3,32,32"]
    name = "kws"
    run = true

Unknown keys are errors that name them: a misspelt setting must not be silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.errors import UsageError, read_toml

# Key -> expected type. Plugins read further options from BuildContext.options; they are set with
# [tool.edgekit.options] (free-form) so that core keys stay checked.
KNOWN_KEYS: dict[str, type | tuple[type, ...]] = {
    "target": str, "output": str, "passes": list, "input_shape": list, "name": str, "run": bool,
    "inputs": str, "seed": int, "verify_samples": int, "options": dict, "backend": str, "quantize": str,
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
        data = data.get("tool", {}).get("edgekit", {})
    unknown = sorted(set(data) - set(KNOWN_KEYS))
    if unknown:
        raise UsageError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_KEYS))}")
    for key, value in data.items():
        if not isinstance(value, KNOWN_KEYS[key]):
            raise UsageError(f"{path}: setting '{key}' must be a {KNOWN_KEYS[key].__name__}, "
                             f"got {type(value).__name__}")
    return data


def merge(config: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """Flags given on the command line (not None, not empty) override the config file."""
    merged = dict(config)
    for key, value in flags.items():
        if value is not None and value != () and value != []:
            merged[key] = list(value) if isinstance(value, tuple) else value
    return merged
