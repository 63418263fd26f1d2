"""The naming and escaping authority: the one way text from a model reaches a generated file.

Model files are untrusted. Their names (tensors, nodes, graphs, ``--name``) are arbitrary Unicode:
carriage returns, ``\\`` (which splices a C line with the next one even inside a ``//`` comment),
trigraphs (``??/`` is a backslash), ``*/``, quotes, NUL. Every back end, kernel library, driver and
integration file turns such text into generated text only through this module:

- **Identifiers** (:func:`identifier`, :class:`SymbolTable`): characters from ``[A-Za-z0-9_]`` only,
  never a C keyword, never in a namespace edgekit or the toolchain uses (``ek_``/``EK_`` kernels,
  ``__`` and ``_X`` implementation names, ``tvm``/``TVM`` runtime names), and unique across every
  identifier of the translation unit *by construction*: a :class:`SymbolTable` hands out a base name
  together with every identifier made from it (``in_x``, ``OFFSET_x``, ``MODEL_INPUT_X_COUNT``...),
  compared case-insensitively (macros are upper-cased names), after the fixed ones were reserved.
- **Library prefixes** (:func:`library_prefix`): the ``--name`` of a library, which also names its
  files, so it cannot be a standard C header's name either.
- **Comments** (:func:`c_comment`): printable ASCII; ``\\``, ``?``, ``/*`` and ``*/`` neutralised;
  bounded length.
- **String literals** for each language a generated file is written in: C (:func:`c_string`), XML
  (:func:`xml_text`), JSON (``json.dumps``), Python (``repr``); CMake, Make, Kconfig and YAML files
  hold only identifiers made here (:func:`require_identifier` checks what a file is about to hold).
- **Array names** in a saved ``.npz`` (:func:`array_name`): the tensor's own name, checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from edgekit.errors import BuildError

C_KEYWORDS = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline
int long register restrict return short signed sizeof static struct switch typedef union unsigned
void volatile while _Bool _Complex _Imaginary _Alignas _Alignof _Atomic _Generic _Noreturn
_Static_assert _Thread_local asm typeof bool true false NULL main
""".split())

#: Names the C library and the toolchain define as macros or functions that generated code (or a
#: firmware that includes its header) may see: a model-derived identifier never takes one.
C_LIBRARY_NAMES = frozenset("""
errno assert offsetof size_t ptrdiff_t wchar_t uintptr_t intptr_t int8_t int16_t int32_t int64_t
uint8_t uint16_t uint32_t uint64_t NAN INFINITY HUGE_VAL EOF FILE stdin stdout stderr memcpy memset
memmove malloc free calloc realloc abort exit printf puts putchar fopen fclose fread fwrite expf logf
sqrtf tanhf fabsf floorf ceilf roundf powf sinf cosf exp log sqrt tanh fabs floor ceil round pow sin
cos fmaxf fminf isnan isinf system environ signal raise setjmp longjmp
""".split())

#: Standard C and CMSIS headers: a library prefix names ``<prefix>.h``, which an ``-I`` of the output
#: directory would put in front of the real header.
C_HEADER_NAMES = frozenset("""
assert complex ctype errno fenv float inttypes iso646 limits locale math setjmp signal stdalign stdarg
stdatomic stdbool stddef stdint stdio stdlib stdnoreturn string tgmath threads time uchar wchar wctype
arm_math arm_nnfunctions cmsis_compiler cmsis_gcc core_cm4 core_cm7 core_cm0plus example_main
""".split())

#: Identifier prefixes that belong to edgekit's kernels and harness (``ek_``), the C implementation
#: (``__``, ``_`` + capital) and TVM's runtime ABI: no model-derived identifier starts with one.
RESERVED_PREFIXES = ("ek_", "__", "tvm")
_IMPLEMENTATION = re.compile(r"_[A-Z]")

_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]+")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_IDENTIFIER = 48
MAX_COMMENT = 160


def _reserved(ident: str) -> bool:
    lowered = ident.lower()
    return (ident in C_KEYWORDS or ident in C_LIBRARY_NAMES or lowered.startswith(RESERVED_PREFIXES)
            or bool(_IMPLEMENTATION.match(ident)))


def identifier(text: str, fallback: str = "t") -> str:
    """A valid, non-reserved C identifier resembling ``text`` (not yet unique: see
    :class:`SymbolTable`). ``fallback`` (itself an identifier) prefixes names that start with a
    digit or are reserved, and replaces names with no usable character."""
    # Converters join fused op names with ';' (TFLite: "model/conv2d/Relu;model/conv2d/BiasAdd;...");
    # the first part names the layer best.
    head = text.split(";", 1)[0] if ";" in text else text
    ident = _NOT_IDENTIFIER.sub("_", head).strip("_") or fallback
    ident = re.sub(r"__+", "_", ident)
    if len(ident) > MAX_IDENTIFIER:
        # Keep the tail (names differ mostly at the end), cut at a word boundary.
        tail = ident[-MAX_IDENTIFIER:]
        cut = tail.find("_")
        ident = (tail[cut + 1:] if 0 <= cut < MAX_IDENTIFIER // 2 else tail).strip("_") or fallback
    if ident[0].isdigit() or _reserved(ident):
        ident = f"{fallback}_{ident}"
    return ident


def require_identifier(text: str, what: str) -> str:
    """``text`` itself when it is already an identifier; a build error naming ``what`` otherwise.
    For names that should have come from this module (or from a compiler) before a file holds them."""
    if not isinstance(text, str) or not _IDENTIFIER.match(text):
        raise BuildError(f"{what} {text!r} is not a C identifier; it cannot be written into generated code")
    return text


_PATH_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")


def require_relative_path(path: str, what: str) -> str:
    """``path`` itself when it is a relative path of plain file names (``[A-Za-z0-9_.-]``, no
    ``..``, no leading dot) that a build may write inside its output directory; a build error
    otherwise."""
    parts = str(path).split("/")
    if not all(part == "." or (_PATH_PART.match(part) and ".." not in part) for part in parts):
        raise BuildError(f"{what} {path!r} is not a plain relative file name; it cannot be written")
    return path


def library_prefix(name: str | None, default: str = "model") -> str:
    """The symbol and file prefix of a generated library (``--name``): an identifier outside the
    kernels' ``ek_`` namespace whose ``.h`` shadows no standard header."""
    prefix = identifier(str(name) if name else default, fallback="model")
    if prefix.lower() == "ek" or prefix.lower() in C_HEADER_NAMES or prefix in C_LIBRARY_NAMES:
        prefix = f"m_{prefix}"
    return prefix


class SymbolTable:
    """Unique identifiers for one generated library (every file that shares its header).

    Reserve the fixed identifiers first (:meth:`reserve`); then each entity :meth:`claim`\\ s a base
    with the *forms* it will be written as (``"in_{}"``, ``"OFFSET_{}"``, ``"{}_params"``). The base is
    the first of ``hint``, ``hint_2``, ``hint_3``... for which no form is taken or reserved, compared
    case-insensitively, so an upper-cased form (a macro) cannot collide either. The same key always
    gets the same base; allocation order is the caller's (deterministic) order."""

    def __init__(self, reserved: Iterable[str] = ()):
        self._taken: set[str] = set()
        self._prefixes: tuple[str, ...] = ()
        self._by_key: dict[object, str] = {}
        self.reserve(*reserved)

    def reserve(self, *idents: str) -> None:
        self._taken.update(i.lower() for i in idents)

    def reserve_prefix(self, *prefixes: str) -> None:
        """Every identifier starting with one of ``prefixes`` belongs to someone else (a
        sub-library whose header this translation unit includes)."""
        self._prefixes += tuple(p.lower() for p in prefixes)

    def taken(self, ident: str) -> bool:
        return ident.lower() in self._taken or self._owned(ident)

    def _owned(self, ident: str) -> bool:
        return ident.lower().startswith(self._prefixes)

    def claim(self, key: object, hint: str, forms: tuple[str, ...] = ("{}",), fallback: str = "t") -> str:
        if key in self._by_key:
            return self._by_key[key]
        wanted = identifier(hint, fallback)
        for attempt in range(len(self._prefixes) + 3):
            base = wanted if attempt == 0 else f"{fallback}{attempt if attempt > 1 else ''}_{wanted}"
            ident, n = base, 2
            while True:
                written = [form.format(ident) for form in forms]
                if any(_reserved(w) or self._owned(w) for w in written):
                    break  # the base is in a namespace that is not ours: move it under the fallback
                if not any(w.lower() in self._taken for w in written):
                    self.reserve(*written)
                    self._by_key[key] = ident
                    return ident
                ident, n = f"{base}_{n}", n + 1
        raise BuildError(f"no identifier for {hint!r} outside the reserved namespaces")


_COMMENT_SAFE = frozenset(chr(c) for c in range(0x20, 0x7F)) - set("\\?")


def c_comment(text: str, limit: int = MAX_COMMENT) -> str:
    """``text`` made safe inside a C ``/* */`` comment (and a GNU ld or assembler one): printable
    ASCII only (anything else, ``\\`` and ``?`` become ``_``), no ``/*`` or ``*/``, not starting or
    ending with ``/`` or ``*`` (the comment's own delimiters sit next to it), at most ``limit``
    characters."""
    text = "".join(ch if ch in _COMMENT_SAFE else "_" for ch in str(text))
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    text = re.sub(r"/(?=\*)|\*(?=/)", lambda m: m.group(0) + " ", text)
    text = re.sub(r"^[/*]|[/*]$", "_", text)
    return text


def c_string(text: str) -> str:
    """The body of a C string literal holding ``text``'s UTF-8 bytes: printable ASCII as itself,
    ``"`` ``\\`` and ``?`` (trigraphs) escaped, every other byte as a three-digit octal escape (an
    octal escape stops after three digits; a hex one would swallow the digits that follow)."""
    out = []
    for byte in str(text).encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 0x20 <= byte < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return "".join(out)


def terminal_text(text: str) -> str:
    """``text`` for one line of a terminal: every character that is not printable (line and
    paragraph separators, control characters such as ESC, bidirectional and other format
    characters) written as its Python escape, so a name cannot break a line or drive the terminal."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))


_XML_INVALID = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` as XML character data or an attribute value: markup characters escaped, and the
    characters XML 1.0 cannot hold at all (control characters, lone surrogates) replaced by ``?``."""
    from html import escape

    return escape(_XML_INVALID.sub("?", str(text)), quote=True)


def array_name(text: str) -> str:
    """A model tensor's name as the name of an array in a ``.npz`` edgekit writes (``edgekit run
    --save``): the name itself, which ``numpy.load`` gives back exactly (the archive member is the
    name + ``.npy``; a zip member name is data, nothing is extracted to a path). A NUL, where
    zipfile would cut the name short, is a BuildError."""
    if "\0" in text:
        raise BuildError(f"tensor name {terminal_text(text)!r} holds a NUL character, which an .npz "
                         f"array name cannot hold")
    return text
