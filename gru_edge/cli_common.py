"""What every command shares: calling the library with its errors turned into one line."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import TypeVar

import typer

from gru_edge.runtime.errors import GruEdgeError

T = TypeVar("T")


def one_line(message: str) -> str:
    """``message`` with its control characters escaped as repr() escapes them (a newline in a
    path becomes ``\\n``, an escape ``\\x1b``): an error stays one line and prints no
    terminal commands, whatever path or value it quotes."""
    return "".join(
        repr(char)[1:-1] if unicodedata.category(char) in _CONTROL else char for char in message
    )


_CONTROL = {"Cc", "Cf", "Zl", "Zp"}  # control, format (bidi overrides), line/paragraph separators


def error(message: str) -> None:
    """The one-line ``Error: ...`` on stderr."""
    typer.echo(f"Error: {one_line(message)}", err=True)


def call(action: Callable[[], T]) -> T:
    """Call the library; turn its domain errors into a one-line message and an exit code."""
    try:
        return action()
    except GruEdgeError as exc:
        error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        raise typer.Exit(130) from None


def err(message: str) -> None:
    """A line on stderr."""
    typer.echo(message, err=True)
