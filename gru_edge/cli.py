"""The gru-edge command line: the Typer app, its one-line errors, --version, and its commands
(gru_edge.cli_training, gru_edge.cli_runtime, gru_edge.cli_web and gru_edge.cli_serve), each
module imported when one of its commands runs or the commands are listed.
"""

# No `from __future__ import annotations` here: Typer evaluates string annotations twice per
# parameter at every start (~8 ms before `sample` writes anything; docs/benchmarks.md).

import importlib
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from gru_edge.cli_common import error
from gru_edge.runtime.version import __version__


def _tidy_help(command: Any) -> None:
    """Help screens in plain words. Typer's Rich screens would read "{model}" in the usage line,
    "<path>" without "..." for an argument of several files, and a descriptive default in
    parentheses ("[default: (all)]"). Set on each parameter: the attributes Typer 0.27-0.28
    render from (a Typer that renames them only brings an artefact back, which
    tests/test_cli_help.py catches). Help texts are escaped when help is shown (_escape_help)."""
    for param in command.params:
        if param.param_type_name == "argument":
            if param.metavar is None:
                param.metavar = param.name.upper()
            if param.nargs != 1:  # an option's type reads "<path>..." already; an argument's not
                _several(param.type)
        if isinstance(getattr(param, "show_default", None), str):
            text = param.show_default
            param._get_default_string = lambda *args, text=text, **kwargs: text


def _several(kind: Any) -> None:
    """An argument's type (Typer makes one per parameter) shown as "<path>...": the type column
    of an argument is the type's metavar, or its name in angle brackets."""
    one = kind.get_metavar
    kind.get_metavar = lambda param, ctx: (one(param=param, ctx=ctx) or f"<{kind.name}>") + "..."


def _escape_help(command: Any) -> None:
    """A command's help texts with Rich markup escaped, once: Rich takes brackets for markup,
    so a help that says "(needs [train])" would read "(needs )". Done when help is shown, not
    when the command is built: rich.markup costs `sample` ~10 ms before its first character."""
    if getattr(command, "_help_escaped", False):
        return
    from rich.markup import escape

    command._help_escaped = True
    if command.help:
        command.help = escape(command.help)
    for param in command.params:
        if getattr(param, "help", None):
            param.help = escape(param.help)


class _TidyHelp:
    """Commands and the group: help without Typer's artefacts (see _tidy_help)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tidy_help(self)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        # The group's help shows every command's first line too.
        for command in [self, *getattr(self, "commands", {}).values()]:
            _escape_help(command)
        super().format_help(ctx, formatter)  # type: ignore[misc]


class _Command(_TidyHelp, TyperCommand):
    """A command whose usage line names its arguments as its help text does:
    `gru-edge sample [OPTIONS] MODEL`."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = param.metavar + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
        return pieces


# Each command and the module that defines it, in the order `--help` lists them. A module is
# imported only when one of its commands runs or the commands are listed: `sample` starts
# without the training, web and serve modules and their Typer commands (~9 ms before its first
# character; docs/benchmarks.md).
COMMANDS = {
    "train": "gru_edge.cli_training",
    "export": "gru_edge.cli_training",
    "sample": "gru_edge.cli_runtime",
    "info": "gru_edge.cli_runtime",
    "bench": "gru_edge.cli_runtime",
    "web": "gru_edge.cli_web",
    "serve": "gru_edge.cli_serve",
}


class _OneLineErrors(_TidyHelp, TyperGroup):
    """Values the option parser rejects (`--units abc`, a missing argument) get the same
    one-line `Error: ...` as the library's errors, instead of a usage box. Its commands are
    built when first asked for (COMMANDS)."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            one = _App(add_completion=False, pretty_exceptions_enable=False)
            one.command()(getattr(importlib.import_module(COMMANDS[cmd_name]), cmd_name))
            self.add_command(typer.main.get_command(one), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for name in self.list_commands(ctx):  # all built, so that their help is escaped too
            self.get_command(ctx, name)
        super().format_help(ctx, formatter)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.Abort:
            typer.echo("Interrupted.", err=True)
            sys.exit(130)
        except typer.TyperException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `gru-edge`: the help, once
                shown = exc.format_message().strip()  # empty where Rich printed it already
                if shown:
                    typer.echo(shown)
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            hint = f"; see '{ctx.command_path} --help'" if ctx is not None else ""
            message = getattr(exc, "format_message", exc.__str__)().strip().rstrip(".")
            error(f"{message}{hint}")
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


class _App(typer.Typer):
    """The Typer app whose commands are _Command unless a registration says otherwise."""

    def command(self, *args: Any, cls: Any = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or _Command, **kwargs)


app = _App(
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
