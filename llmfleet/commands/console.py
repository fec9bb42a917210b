"""The console every command prints to, and small formatting helpers and options they share."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

# Wide enough for the tables when output goes to a file or CI log (rich assumes 80 there).
console = Console(width=None if Console().is_terminal else 140)


class Output(StrEnum):
    """What `-o/--output` accepts: anything else is a usage error (exit code 2), not a silent table."""

    table = "table"
    json = "json"


OutputOption = Annotated[Output, typer.Option("-o", "--output", help="table or json", case_sensitive=False)]


def yes(flag: object) -> str:
    """A green yes or a red no."""
    return "[green]yes[/green]" if flag else "[red]no[/red]"
