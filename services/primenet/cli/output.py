"""Where the CLI writes: results to stdout, problems to stderr; long lines are not wrapped, so they stay greppable."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `message` on stderr and exit with `code` (1: the operation failed, 2: it could not run).

    The message is printed as it is: brackets in it (a URL, a pydantic error) are text, not markup.
    """
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def progress(step: str) -> None:
    """One line per step of a long operation, on stderr so that --json output stays clean."""
    err_console.print(f"[dim]•[/dim] {step}", highlight=False)
