"""Where the CLI writes: results to stdout, problems to stderr; long lines are not wrapped, so they stay greppable."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `message` on stderr and exit with `code` (1: the operation failed, 2: it could not run)."""
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)
