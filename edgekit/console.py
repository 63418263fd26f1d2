"""How the ``edgekit`` program meets the terminal, beyond each command's ``handle_errors``: click's
own errors (an unknown option, a bad value) as edgekit's one line, and ``-q``'s silence."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from collections.abc import Iterator

import click

from edgekit.errors import EXIT_USAGE
from edgekit.naming import terminal_text

#: exit code of a usage error: click's own (an unknown option, a bad value) as edgekit's UsageError
USAGE_EXIT = EXIT_USAGE


class OneLineErrors(click.Group):
    """A group whose parse errors are one line, ``error: ...`` and exit 2, instead of click's three
    (``Usage:``, ``Try ... --help``, ``Error:``): the contract of every edgekit error."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except getattr(click.exceptions, "NoArgsIsHelpError", ()) as exc:  # `edgekit` alone: the help
            exc.show()
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {terminal_text(click_message(exc))}", err=True)
            sys.exit(USAGE_EXIT if isinstance(exc, click.UsageError) else exc.exit_code)
        except click.Abort:  # end of input at a prompt
            click.echo("error: aborted", err=True)
            sys.exit(1)
        # without standalone mode, click returns the exit code of --help/--version (ctx.exit)
        sys.exit(result if isinstance(result, int) else 0)


def click_message(exc: click.ClickException) -> str:
    """``edgekit build: No such option: --frobnicate (see edgekit build --help)``."""
    ctx = getattr(exc, "ctx", None)
    message = " ".join(exc.format_message().split())
    return f"{ctx.command_path}: {message} (see {ctx.command_path} --help)" if ctx else message


@contextlib.contextmanager
def silent_stderr() -> Iterator[None]:
    """``-q`` promises errors only. Over the block, what the build's libraries and plugins write to
    stderr goes nowhere: Python warnings (torch's FutureWarning, numpy's RuntimeWarning), lines
    written to ``sys.stderr``, and what native code writes to file descriptor 2 itself (TVM's LLVM
    "vector bits" warning). Errors are exceptions: the CLI prints them after the block."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
