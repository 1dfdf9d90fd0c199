"""`gru-edge serve`: the OpenAI-compatible local service (gru_edge.serve; needs [serve])."""

# No `from __future__ import annotations` here: Typer evaluates string annotations twice per
# parameter at every start (~8 ms before `sample` writes anything; docs/benchmarks.md).

from pathlib import Path
from typing import Annotated

import typer

from gru_edge.cli_common import call, err

_LIMITS = "Limits"


# Long by declaration only: Typer reads each parameter as an option.
def serve(
    models: Annotated[
        list[Path],
        typer.Argument(
            help="The .onnx (or .ort) files to serve; clients name one by its file "
            "name without the extension."
        ),
    ],
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on; anything but loopback is reachable from other machines."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            help="Require 'Authorization: Bearer KEY' on /v1/*.",
            envvar="GRU_EDGE_API_KEY",
            show_default=False,
        ),
    ] = None,
    max_tokens: Annotated[
        int, typer.Option(help="Most characters one choice may ask for.", rich_help_panel=_LIMITS)
    ] = 4096,
    max_n: Annotated[
        int, typer.Option(help="Most choices (n) one request may ask for.", rich_help_panel=_LIMITS)
    ] = 16,
    max_prime: Annotated[
        int, typer.Option(help="Most characters of a prompt.", rich_help_panel=_LIMITS)
    ] = 8192,
    max_body: Annotated[
        int, typer.Option(help="Most bytes of a request body.", rich_help_panel=_LIMITS)
    ] = 1 << 20,
    max_batch: Annotated[
        int, typer.Option(help="Most rows a model generates together.", rich_help_panel=_LIMITS)
    ] = 256,
    max_queue: Annotated[
        int,
        typer.Option(
            help="Most rows waiting to join a full batch; more get 429.", rich_help_panel=_LIMITS
        ),
    ] = 256,
    grace: Annotated[
        float,
        typer.Option(help="Seconds open requests get to finish after SIGTERM or Ctrl-C."),
    ] = 10.0,
    threads: Annotated[int, typer.Option(help="onnxruntime intra-op threads per model.")] = 1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every request.")] = False,
) -> None:
    """Serve MODELS over HTTP with OpenAI's completions API, batching concurrent requests.

    POST /v1/completions, GET /v1/models and GET /health: see docs/serve.md.

    Any OpenAI client works with its base URL set to http://HOST:PORT/v1.
    """

    def action() -> None:
        from gru_edge.serve.requests import ServeLimits
        from gru_edge.serve.server import ServeConfig
        from gru_edge.serve.server import serve as run

        if not grace >= 0:
            from gru_edge.runtime.errors import UsageError

            raise UsageError(f"--grace must be a number of seconds >= 0, got {grace}")
        limits = ServeLimits(
            max_body=max_body,
            max_tokens=max_tokens,
            max_n=max_n,
            max_prime=max_prime,
            max_batch=max_batch,
            max_queue=max_queue,
            api_key=api_key,
        )
        config = ServeConfig(
            tuple(models), host, port, limits, threads=threads, grace=grace, verbose=verbose
        )
        run(config, err)

    call(action)
