"""The context a front end, pass, back end or runner may read: target, options, data, report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from edgekit.registry import Registry
    from edgekit.target import Target


@dataclass
class BuildContext:
    """Shared state of one build.

    ``options`` are the user's settings after config files and flags are merged (``name``,
    ``input_shapes``, ``kernels``...; plugins may read their own keys). ``inputs`` are the
    verification inputs every stage is compared on. ``report`` is the report under construction:
    stages add their own top-level section with :meth:`section`.
    """

    target: Target
    registry: Registry
    options: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, np.ndarray]] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    work_dir: Path | None = None
    # sha256 (hex) of the model file the user gave (the .py file for a factory): what report.json,
    # and generated headers, name as the build's source
    model_sha256: str = ""
    # files a stage adds to the output directory (pictures), by relative path
    attachments: dict[str, str] = field(default_factory=dict)
    _notes: list[Any] = field(default_factory=list)

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)

    def flag(self, key: str, default: bool) -> bool:
        """A true/false option (the CLI and TOML already give them as bools); anything else is a
        usage error naming the option."""
        value = self.options.get(key, default)
        if not isinstance(value, bool):
            from edgekit.errors import UsageError

            raise UsageError(f"--option {key}={value}: expected {key}=true or {key}=false")
        return value

    def number(self, key: str, default: float | None, *, low: float = 0.0, high: float | None = None,
               integer: bool = False) -> float | None:
        """A number option in [``low``, ``high``] (a whole number when ``integer``); anything else
        is a usage error naming the option and the range expected."""
        value = self.options.get(key, default)
        if value is None:
            return None
        try:
            number = float(value) if not isinstance(value, bool) else float("nan")
        except (TypeError, ValueError):
            number = float("nan")
        if not (low <= number and (high is None or number <= high)) or (integer and not number.is_integer()):
            from edgekit.errors import UsageError

            kind = "a whole number" if integer else "a number"
            limits = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
            raise UsageError(f"--option {key}={value}: expected {kind} {limits}")
        return int(number) if integer else number

    def section(self, name: str) -> dict[str, Any]:
        """The report section ``name`` (created empty on first use)."""
        return self.report.setdefault(name, {})

    def attach(self, path: str, text: str) -> str:
        """Add a text file (a picture, a table) to the build's output directory; returns ``path``
        for the report to name it. A later stage attaching the same path replaces it. ``path`` is
        relative, made of file-name characters (checked: it may be built from a model's text)."""
        from edgekit.naming import require_relative_path

        self.attachments[require_relative_path(path, "attached file")] = text
        return path

    def note(self, message: str, **data: Any) -> None:
        """Record a finding of the running pass (a match, a skipped rewrite and why) in its report entry."""
        self._notes.append({"message": message, **data} if data else message)

    def take_notes(self) -> list[Any]:
        notes, self._notes = self._notes, []
        return notes
