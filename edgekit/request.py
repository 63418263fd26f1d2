"""The one way from a user's build flags to a :class:`~edgekit.building.BuildRequest`, shared by
``edgekit build`` (:mod:`edgekit.cli`) and ``edgekit.build()`` (:mod:`edgekit.api`): the settings
file (``edgekit.toml`` or ``[tool.edgekit]``, :mod:`edgekit.config`), the defaults, and the checks.

Flags are named by their Python names (``input_shape``, ``verify_samples``...). On the command line
click has already checked each value's type; from Python they are checked here, with errors that
name the keyword (``edgekit.build(seed=-1)``) instead of the flag (``--seed``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.config import OPTION_VALUE, Kind, find_config, load_config, merge
from edgekit.errors import UsageError

if TYPE_CHECKING:
    from edgekit.building import BuildRequest


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def _is_texts(value: Any) -> bool:
    """One string, or a list or tuple of them (``--input-shape`` repeated)."""
    return isinstance(value, str) or (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value))


def _is_integer(minimum: int | None) -> Callable[[Any], bool]:
    # bool is an int in Python, but True is not a seed
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and (minimum is None or v >= minimum)


TEXT = Kind(_is_text, "a string")
PATH = Kind(_is_path, "a path (str or os.PathLike)")
TEXTS = Kind(_is_texts, "a string or a list of strings")
FLAG = Kind(lambda v: isinstance(v, bool), "True or False")
OPTIONS = Kind(lambda v: isinstance(v, Mapping), "a dict of option name -> value")


@dataclass(frozen=True)
class Flag:
    """A build flag: the command line's spelling (named in errors), what its value must be, and
    where it goes: a setting of edgekit.toml it overrides, or a key of ``BuildRequest.options``."""

    cli: str
    kind: Kind
    option: bool = False  # a back-end/plugin option (``BuildRequest.options``), not a setting


#: every build flag by its Python name (the ``edgekit build`` parameters, and ``edgekit.build()``'s keywords)
BUILD_FLAGS: dict[str, Flag] = {
    "target": Flag("--target", PATH),
    "output": Flag("--output", PATH),
    "run": Flag("--run", FLAG),
    "passes": Flag("--passes", TEXTS),
    "input_shape": Flag("--input-shape", TEXTS),
    "inputs": Flag("--inputs", PATH),
    "name": Flag("--name", TEXT),
    "seed": Flag("--seed", Kind(_is_integer(0), "an integer of at least 0")),
    "verify_samples": Flag("--samples", Kind(_is_integer(1), "an integer of at least 1")),
    "backend": Flag("--backend", TEXT),
    "quantize": Flag("--quantize", TEXT),
    "force": Flag("--force", FLAG),
    "config": Flag("--config", PATH),
    "kernels": Flag("--kernels", TEXT, option=True),
    "group_size": Flag("--group-size", Kind(_is_integer(None), "an integer"), option=True),
    "calibration": Flag("--calibration", PATH, option=True),
    "calibration_method": Flag("--calibration-method", TEXT, option=True),
    "validation": Flag("--validation", PATH, option=True),
    "accuracy_floor": Flag("--accuracy-floor",
                           Kind(lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool),
                                "a string like '30dB' or 'top1=0.99'"), option=True),
    "options": Flag("--option", OPTIONS),
}
#: other Python names a flag is known by: the plural of a repeatable flag, the CLI's own spelling
ALIASES = {"input_shapes": "input_shape", "samples": "verify_samples", "config_file": "config"}
#: the settings (edgekit.toml keys) a flag of the same name overrides
SETTINGS = ("target", "output", "passes", "input_shape", "inputs", "run", "name", "seed", "verify_samples",
            "backend", "quantize", "force")


def valid_keywords() -> list[str]:
    return sorted([*BUILD_FLAGS, *ALIASES])


def build_request(model: str | os.PathLike[str], flags: Mapping[str, Any], *, cli: bool,
                  cwd: Path | None = None) -> BuildRequest:
    """The request ``edgekit build MODEL`` makes from ``flags`` (Python names; None: not given),
    the settings file (``flags['config']``, else ./edgekit.toml or [tool.edgekit] in
    ./pyproject.toml) and the defaults. ``cli`` says how errors name a flag: ``--seed`` or
    ``edgekit.build(seed=...)``. Every problem is a UsageError."""
    from edgekit.building import BuildRequest
    from edgekit.frontends import ModelSource

    given = _canonical(flags, cli)
    if not isinstance(model, (str, os.PathLike)):
        raise UsageError(f"{_shown('model', model, cli)}: expected a path (str or os.PathLike)")
    model_text = os.fspath(model)
    cwd = cwd or Path.cwd()
    config_path = Path(given["config"]) if "config" in given else find_config(cwd)
    settings = merge(load_config(config_path), {key: _setting(key, given[key]) for key in SETTINGS if key in given})
    if not settings.get("target"):
        raise UsageError(f"no target: give {_label('target', cli)} (see `edgekit targets`) or set target in "
                         f"edgekit.toml")
    stem = ModelSource.parse(model_text).path.stem
    options = {**settings.get("options", {}),
               **{key: _setting(key, given[key]) for key, flag in BUILD_FLAGS.items() if flag.option and key in given},
               **option_values(given.get("options", {}), cli)}
    return BuildRequest(
        model=model_text, target=settings["target"],
        output=Path(settings.get("output") or f"build/{stem}-{settings['target']}"),
        passes=settings.get("passes"), input_shapes=list(settings.get("input_shape", [])),
        inputs_file=settings.get("inputs"), run=bool(settings.get("run")), name=settings.get("name", "model"),
        seed=settings.get("seed", 0), verify_samples=settings.get("verify_samples", 1),
        backend=settings.get("backend"), quantize=settings.get("quantize"),
        force=bool(settings.get("force")), config_file=config_path, options=options)


def option_values(options: Mapping[str, Any], cli: bool) -> dict[str, Any]:
    """Back-end/plugin options (``--option key=value``, an ``options=`` dict) as the build reads them:
    ``-`` in a key read as ``_``, paths as strings; a value that is not a string, number or
    true/false (what edgekit.toml's [options] holds) is a UsageError naming the key."""
    found: dict[str, Any] = {}
    for key, value in options.items():
        if not isinstance(key, str) or not key.strip():
            raise UsageError(f"{_label('options', cli)}: option names must be non-empty strings, got {key!r}")
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not OPTION_VALUE.accepts(value):
            shown = f"--option {key}={value!r}" if cli else f"options={{{key!r}: {value!r}}}"
            raise UsageError(f"{shown}: expected {OPTION_VALUE.described}")
        found[key.strip().replace("-", "_")] = value
    return found


def _canonical(flags: Mapping[str, Any], cli: bool) -> dict[str, Any]:
    """The flags that were given (not None, not empty), under their canonical names, their values
    checked; an unknown name, a value of the wrong type, or a flag given under two names is a
    UsageError (naming the flag as the user did)."""
    given: dict[str, Any] = {}
    for name, value in flags.items():
        key = ALIASES.get(name, name)
        if key not in BUILD_FLAGS:
            raise UsageError(f"edgekit.build(): unknown keyword argument '{name}'; valid: "
                             f"{', '.join(valid_keywords())}")
        if value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        if key in given:
            raise UsageError(f"edgekit.build(): '{name}' and '{key}' name the same flag; give one")
        if not BUILD_FLAGS[key].kind.accepts(value):
            raise UsageError(f"{_shown(name, value, cli)}: expected {BUILD_FLAGS[key].kind.described}")
        given[key] = value
    return given


def _setting(key: str, value: Any) -> Any:
    """A flag's value as edgekit.toml would hold it: paths as strings, ``--passes a,b`` and a
    single ``input_shape`` as lists."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if key == "passes" and isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if key == "input_shape" and isinstance(value, str):
        return [value]
    return list(value) if isinstance(value, tuple) else value


def _label(key: str, cli: bool) -> str:
    return BUILD_FLAGS[key].cli if cli else f"{key}="


#: how much of a wrong value a message quotes
SHOWN_CHARS = 60


def _shown(key: str, value: Any, cli: bool) -> str:
    text = repr(value) if len(repr(value)) <= SHOWN_CHARS else repr(value)[:SHOWN_CHARS] + "..."
    canonical = ALIASES.get(key, key)
    flag = BUILD_FLAGS[canonical].cli if canonical in BUILD_FLAGS else key.upper()
    return f"{flag} {value}" if cli else f"edgekit.build({key}={text})"
