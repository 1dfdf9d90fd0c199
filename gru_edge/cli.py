"""The gru-edge command line: the Typer app, its one-line errors, --version, and its commands
(gru_edge.cli_training, gru_edge.cli_runtime, gru_edge.cli_web and gru_edge.cli_serve).
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from gru_edge import cli_runtime, cli_serve, cli_training, cli_web
from gru_edge.runtime.version import __version__


class _OneLineErrors(TyperGroup):
    """Values the option parser rejects (`--units abc`, a missing argument) get the same
    one-line `Error: ...` as the library's errors, instead of a usage box."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.Abort:
            typer.echo("Interrupted.", err=True)
            sys.exit(130)
        except typer.TyperException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                return super().main(*args, **kwargs)  # bare `gru-edge`: the help, as usual
            ctx = getattr(exc, "ctx", None)
            hint = f"; see '{ctx.command_path} --help'" if ctx is not None else ""
            message = " ".join(getattr(exc, "format_message", exc.__str__)().split()).rstrip(".")
            typer.echo(f"Error: {message}{hint}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gru-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Train a character-level GRU, export it to ONNX, and sample it anywhere."""


# Registered here, in the order `--help` lists them.
app.command()(cli_training.train)
app.command()(cli_training.export)
app.command()(cli_runtime.sample)
app.command()(cli_runtime.info)
app.command()(cli_runtime.bench)
app.command()(cli_web.web)
app.command()(cli_serve.serve)
