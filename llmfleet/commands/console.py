"""The console every command prints to, and small formatting helpers they share."""

from __future__ import annotations

from rich.console import Console

# Wide enough for the tables when output goes to a file or CI log (rich assumes 80 there).
console = Console(width=None if Console().is_terminal else 140)


def yes(flag: object) -> str:
    """A green yes or a red no."""
    return "[green]yes[/green]" if flag else "[red]no[/red]"
