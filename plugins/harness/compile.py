"""Running a C compiler for the harness: parallel object builds, reused from the object cache, and
one-line errors that name the file."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import edgekit
from edgekit.plugins.harness.cache import cache_dir, object_cache_enabled, publish

WARNINGS = ("-std=c99", "-Wall", "-Wextra", "-Werror")


def require_tool(program: str, what: str) -> str:
    path = shutil.which(program)
    if not path:
        raise edgekit.BuildError(f"{program} not found on PATH; it is needed to {what}")
    return path


def sibling_tool(cc: str, tool: str) -> str:
    """The binutils program next to a cross compiler: ``arm-none-eabi-gcc`` → ``arm-none-eabi-nm``."""
    return cc[: -len("gcc")] + tool if cc.endswith("gcc") else tool


def run_tool(command: list[str], what: str, cwd: Path | None = None, timeout: float = 300) -> str:
    """Run a build tool; a failure is a BuildError with the first error line."""
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise edgekit.BuildError(f"{what}: {Path(command[0]).name} did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        raise edgekit.BuildError(f"{what} failed: {first_error(done.stderr or done.stdout)}")
    return done.stdout


def first_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower() or "overflowed" in line:
            return line
    return lines[0] if lines else "(no message)"


def compile_objects(cc: str, units: list[tuple[Path, list[str]]], obj_dir: Path, what: str) -> list[Path]:
    """Compile each (source, flags) to ``obj_dir/<index>_<stem>.o`` (the index keeps equal stems
    apart), in parallel."""
    obj_dir.mkdir(parents=True, exist_ok=True)
    objects = [obj_dir / f"{i:03d}_{src.stem}.o" for i, (src, _) in enumerate(units)]

    def one(index: int) -> None:
        src, flags = units[index]
        compile_cached(cc, src, flags, objects[index], f"{what}: compiling {src.name}")

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        list(pool.map(one, range(len(units))))
    return objects


@functools.lru_cache(maxsize=None)
def _compiler_identity(cc: str) -> str:
    path = shutil.which(cc) or cc
    return path + "\n" + run_tool([cc, "--version"], f"asking {cc} its version")


def compile_cached(cc: str, src: Path, flags: list[str], obj: Path, what: str) -> None:
    """Compile ``src`` to ``obj``, reusing an object compiled before from the same input.

    Technique (as ccache's preprocessor mode): the key hashes the compiler's identity, the flags
    that reach code generation (include paths and macros act through the preprocessor) and the
    preprocessed source without line markers. The compiler runs in the source's directory on its
    bare name, and debug info maps that directory to ".", so the object does not depend on where a
    temporary output directory happened to be (sanitizer reports then name files as "model.c")."""
    src = Path(src).resolve()
    local = [*flags, f"-fdebug-prefix-map={src.parent}=."]
    compile_command = [cc, *local, "-c", src.name, "-o", str(Path(obj).resolve())]
    if not object_cache_enabled():
        run_tool(compile_command, what, cwd=src.parent)
        return
    preprocessed = run_tool([cc, *local, "-E", "-P", src.name], what, cwd=src.parent)
    codegen_flags = [f for f in flags if not f.startswith(("-I", "-D"))]
    key = hashlib.sha256("\0".join([_compiler_identity(cc), *codegen_flags, src.name, preprocessed]).encode()
                         ).hexdigest()
    cached = cache_dir() / "objects" / key[:2] / f"{key[2:34]}.o"
    if cached.is_file():
        shutil.copyfile(cached, obj)
        return
    run_tool(compile_command, what, cwd=src.parent)
    publish(Path(obj), cached)
