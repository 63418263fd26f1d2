"""Errors a user can act on. The CLI prints ``str(error)`` as one line and exits with ``exit_code``;
the Python API (:mod:`edgekit.api`) raises them, carrying the same ``exit_code``.

The exit codes of the ``edgekit`` program (README, "Exit codes") are defined here, once:
:func:`exit_code` maps any exception to the code the program ends with after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: the build (or run) failed, or edgekit hit a bug
EXIT_FAILED = 1
#: a usage or input error: a bad flag, model, config, target or output path
EXIT_USAGE = 2


class EdgekitError(Exception):
    """Base of every error edgekit reports to a user as one line; ``exit_code`` is the ``edgekit``
    program's exit code for it."""

    exit_code = EXIT_FAILED


class UsageError(EdgekitError):
    """Bad input: a missing or malformed model, flag, config or target. Exit code 2."""

    exit_code = EXIT_USAGE


class BuildError(EdgekitError):
    """The build ran and failed: a pass broke numerics, a back end failed, a run mismatched. Exit 1."""

    exit_code = EXIT_FAILED


class PluginError(BuildError):
    """A plugin failed to import, raised in a hook, or returned something of the wrong type."""

    def __init__(self, plugin: str, message: str):
        super().__init__(f"plugin '{plugin}': {message}")
        self.plugin = plugin


def exit_code(exc: BaseException) -> int:
    """The ``edgekit`` program's exit code after ``exc``: an :class:`EdgekitError`'s own
    ``exit_code`` (2 usage or input, 1 failed build), 128 + the signal number after Ctrl-C
    (SIGINT, 130) or SIGTERM (143), and 1 for anything else (a bug in edgekit or a plugin)."""
    if isinstance(exc, EdgekitError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        from edgekit.interrupts import exit_status

        return exit_status(exc)[1]
    return EXIT_FAILED


#: a message of at most this many lines and characters is one sentence wrapped (onnx's checker
#: breaks "input 'x' of node:" / the node / "is not output of any previous nodes." over three)
SHORT_MESSAGE_LINES, SHORT_MESSAGE_CHARS = 4, 320


def one_line(exc: BaseException) -> str:
    """An exception's message on one line: a short wrapped message joined, a long one (a trace, a
    dump) cut to its first line; the exception's type when the message is empty."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    joined = " ".join(lines)
    return joined if len(lines) <= SHORT_MESSAGE_LINES and len(joined) <= SHORT_MESSAGE_CHARS else lines[0]


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """Parse a TOML file; a missing, unreadable or malformed file is a UsageError naming it."""
    import tomllib

    from edgekit.userfiles import regular_file

    regular_file(path, expected=f"a {what} (.toml)")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read {what} ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
