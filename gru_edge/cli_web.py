"""`gru-edge web`: write (or serve) the static page that generates text in the browser.

onnxruntime is imported inside the command (through gru_edge.web's model check), so `--help`
and the other commands start without it.
"""

# No `from __future__ import annotations` here: Typer evaluates string annotations twice per
# parameter at every start (~8 ms before `sample` writes anything; docs/benchmarks.md).

import re
import signal
from pathlib import Path
from typing import Annotated

import typer

from gru_edge.cli_common import call, err

_SERVE = "Serving"


def _ort_web_version() -> str:
    """The onnxruntime-web version the page loads from the CDN: its one pin, in app.js. Read
    at every start of the CLI (it is in --help), so from the file beside this module rather
    than through importlib.resources, which costs ~3 ms (gru_edge.web copies the page with it)."""
    app_js = (Path(__file__).with_name("webpage") / "app.js").read_text(encoding="utf-8")
    found = re.search(r"^const ORT_VERSION = '([^']+)';", app_js, re.MULTILINE)
    return found.group(1) if found else "pinned in app.js"


# Long by declaration only: Typer reads each parameter as an option.
def web(
    model: Annotated[
        Path, typer.Argument(help="The gru-edge/2 .onnx file written by gru-edge export.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Write the site to this new folder.", show_default=False),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(help="Replace --out if it holds a site gru-edge web wrote before."),
    ] = False,
    ort_dist: Annotated[
        Path | None,
        typer.Option(
            help="onnxruntime-web's dist/ folder (npm install onnxruntime-web): its files are "
            "copied into the site, which then works offline.",
            show_default=f"the public CDN, onnxruntime-web {_ort_web_version()}",
        ),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option(
            help="Write the site to a temporary folder and serve it (GET/HEAD only) until Ctrl-C.",
            rich_help_panel=_SERVE,
        ),
    ] = False,
    host: Annotated[
        str,
        typer.Option(help="Address to serve on with --serve.", rich_help_panel=_SERVE),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            help="Port to serve on with --serve; 0 = any free port.", rich_help_panel=_SERVE
        ),
    ] = 8000,
) -> None:
    """Write a web page that generates text from MODEL in the browser with onnxruntime-web.

    The page writes what gru-edge sample writes for the same settings.

    Give --out DIR to write the site, or --serve to try it at once.
    """

    def action() -> None:
        from gru_edge import web as site
        from gru_edge.runtime.errors import UsageError

        if serve == (out is not None):
            raise UsageError(
                "give either --out DIR (write the site) or --serve (serve it), not both"
            )
        if out is not None:
            written = site.write_site(model, out, ort_dist=ort_dist, force=force, note=err)
            err(f"Wrote the site to {written}; serve that folder over HTTP and open index.html")
            return
        if force:
            raise UsageError("--force goes with --out; --serve writes to a temporary folder")
        if not 0 <= port <= 65535:
            raise UsageError(f"--port must be in 0..65535, got {port}")

        def announce(url: str) -> None:
            typer.echo(f"Serving {model} at {url} (Ctrl-C stops)")

        try:
            site.serve(model, host=host, port=port, ort_dist=ort_dist, announce=announce)
        except site.Terminated as stop:
            err(f"Stopped by {signal.Signals(stop.signum).name}.")
            raise typer.Exit(128 + stop.signum) from None  # as a shell reports the signal
        except KeyboardInterrupt:
            err("Stopped.")

    call(action)
