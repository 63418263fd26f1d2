"""C identifiers for ONNX names: sanitizing, reserved words and uniqueness.

ONNX tensor and node names are arbitrary strings (``model/conv2d/Conv2D;...``). A name becomes a
C identifier by replacing every run of characters outside ``[A-Za-z0-9_]`` with ``_``, prefixing
``t_`` when it starts with a digit or collides with a C keyword, truncating long names, and adding
``_2``, ``_3``... when two ONNX names map to the same identifier. Allocation order is the caller's
(deterministic) order, so the same model always gets the same identifiers.
"""

from __future__ import annotations

import re

C_KEYWORDS = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline
int long register restrict return short signed sizeof static struct switch typedef union unsigned
void volatile while _Bool _Complex _Imaginary NULL
""".split())

_INVALID = re.compile(r"[^A-Za-z0-9_]+")
MAX_IDENTIFIER = 48


def sanitize(name: str, fallback: str = "t") -> str:
    """A valid C identifier resembling ``name`` (not yet unique)."""
    # Converters join fused op names with ';' (TFLite: "model/conv2d/Relu;model/conv2d/BiasAdd;...");
    # the first part names the layer best.
    head = name.split(";", 1)[0] if ";" in name else name
    ident = _INVALID.sub("_", head).strip("_") or fallback
    if len(ident) > MAX_IDENTIFIER:
        # Keep the tail (names differ mostly at the end), cut at a word boundary.
        tail = ident[-MAX_IDENTIFIER:]
        cut = tail.find("_")
        ident = (tail[cut + 1:] if 0 <= cut < MAX_IDENTIFIER // 2 else tail).strip("_") or fallback
    if ident[0].isdigit() or ident in C_KEYWORDS or ident.startswith("__"):
        ident = f"{fallback}_{ident}"
    return ident


class NameTable:
    """Hands out unique C identifiers; the same key always gets the same identifier."""

    def __init__(self, reserved: tuple[str, ...] = ()):
        self._taken: set[str] = {r.lower() for r in reserved}
        self._by_key: dict[str, str] = {}

    def get(self, key: str, fallback: str = "t", hint: str | None = None) -> str:
        """The identifier of ``key``, made from ``hint`` (default: the key) on first use."""
        if key in self._by_key:
            return self._by_key[key]
        base = sanitize(key if hint is None else hint, fallback)
        ident, n = base, 2
        # Case-insensitive uniqueness: the upper-cased offset macros must not collide either.
        while ident.lower() in self._taken:
            ident = f"{base}_{n}"
            n += 1
        self._taken.add(ident.lower())
        self._by_key[key] = ident
        return ident


def model_prefix(name: str | None) -> str:
    """The symbol prefix from the ``name`` option: a valid C identifier outside the kernel
    library's ``ek_``/``EK_`` namespace (``<NAME>_ARENA_ALIGN`` must not redefine a kernel macro)."""
    prefix = sanitize(name or "model", fallback="model")
    if prefix.lower() == "ek" or prefix.lower().startswith("ek_"):
        prefix = f"m_{prefix}"
    return prefix
