"""What every command shares: calling the library with its errors turned into one line."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer

from gru_edge.runtime.errors import GruEdgeError

T = TypeVar("T")


def call(action: Callable[[], T]) -> T:
    """Call the library; turn its domain errors into a one-line message and an exit code."""
    try:
        return action()
    except GruEdgeError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        raise typer.Exit(130) from None


def err(message: str) -> None:
    """A line on stderr."""
    typer.echo(message, err=True)
