"""`gru-edge sample`, `info` and `bench`: the commands of the bare (edge) install.

onnxruntime is imported inside each command, so `--help` and the other commands start without it.
The command functions are long because Typer reads their parameters as the options; each still
only builds typed options and calls one library function.
"""

# No `from __future__ import annotations` here: Typer evaluates string annotations twice per
# parameter at every start (~8 ms before `sample` writes anything; docs/benchmarks.md).

from pathlib import Path
from typing import Annotated

import typer

from gru_edge.cli_common import call, err
from gru_edge.runtime.options import GenerationOptions
from gru_edge.sampling import SampleRequest, run_sample

_SAMPLING = "Sampling"
_RUNTIME = "Runtime"
_SERVE = "Service (--serve)"


# Long by declaration only: Typer reads each parameter as an option (see the module doc).
def sample(
    model: Annotated[Path, typer.Argument(help="The .onnx file written by gru-edge export.")],
    prime: Annotated[
        str | None,
        typer.Option(
            help="Text to continue; printed before the generated text.", show_default=False
        ),
    ] = None,
    prime_file: Annotated[
        Path | None,
        typer.Option(help="Read the prime from this UTF-8 file instead.", show_default=False),
    ] = None,
    length: Annotated[
        int, typer.Option("--length", "-l", help="Characters to generate; 0 prints the prime only.")
    ] = 400,
    temperature: Annotated[
        float | None,
        typer.Option(
            "--temperature",
            "-t",
            help="Randomness: 0 = always the likeliest character, 1 = the model's odds "
            "(--diversity, the notebook's name, is the same option).",
            show_default="1.0",
            rich_help_panel=_SAMPLING,
        ),
    ] = None,
    # The notebook's name, hidden: listed beside --temperature it made the option column too
    # wide for an 80-column terminal.
    diversity: Annotated[float | None, typer.Option("--diversity", hidden=True)] = None,
    top_k: Annotated[
        int | None,
        typer.Option(help="Keep only the K likeliest characters.", rich_help_panel=_SAMPLING),
    ] = None,
    top_p: Annotated[
        float | None,
        typer.Option(
            help="Keep the likeliest characters whose odds add up to P, in (0, 1].",
            rich_help_panel=_SAMPLING,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Seed: the same seed gives the same text.",
            show_default="drawn, shown by --verbose",
            rich_help_panel=_SAMPLING,
        ),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            metavar="[stateful|window]",
            help="stateful: carry the GRU state, one step per character. window: re-read the "
            "last seq_len characters for every character, like the original notebook.",
            rich_help_panel=_SAMPLING,
        ),
    ] = "stateful",
    unknown: Annotated[
        str,
        typer.Option(
            metavar="[error|skip]",
            help="Prime characters the model does not know: refuse, or drop them with a warning.",
            rich_help_panel=_SAMPLING,
        ),
    ] = "error",
    engine: Annotated[
        str,
        typer.Option(
            metavar="[auto|graph|host]",
            help="graph: the model file's own generator, many characters per onnxruntime call. "
            "host: a Python loop, one call per character. Same text for the same seed. auto: "
            "graph when the file has one (gru-edge/2) and --mode is stateful.",
            rich_help_panel=_RUNTIME,
        ),
    ] = "auto",
    stop: Annotated[
        list[str] | None,
        typer.Option(
            "--stop",
            metavar="STRING",
            help="End the text before the first occurrence of STRING (not printed); "
            "repeat for several.",
            show_default=False,
            rich_help_panel=_SAMPLING,
        ),
    ] = None,
    num_samples: Annotated[
        int,
        typer.Option(
            "--num-samples",
            "-n",
            help="Independent samples, run as one batch and held in memory until it ends "
            "(one sample streams any length).",
        ),
    ] = 1,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file (atomically; a symlink is written through) instead of stdout.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object: texts, seed, settings.")
    ] = False,
    device: Annotated[
        str,
        typer.Option(
            metavar="[auto|cpu|cuda]",
            help="auto = CUDA when onnxruntime offers it, else the CPU.",
            rich_help_panel=_RUNTIME,
        ),
    ] = "auto",
    threads: Annotated[
        int | None,
        typer.Option(
            help="onnxruntime intra-op threads, 1 to 256; unset: 1 for a stream, the idle cores "
            "for -n 64 or more.",
            show_default="chosen",
            rich_help_panel=_RUNTIME,
        ),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Report seed, provider and speed on stderr.",
            rich_help_panel=_RUNTIME,
        ),
    ] = False,
) -> None:
    """Generate text from MODEL without TensorFlow.

    The prime is printed first, then each generated character as it comes.

    Without a prime the text starts after a newline, which is not printed.

    With --num-samples N above 1, each sample follows a '----- sample i/N' line.

    Warnings, and with --verbose the seed and provider, go to stderr.
    """

    def action() -> None:
        from gru_edge.runtime.errors import UsageError

        if temperature is not None and diversity is not None:
            raise UsageError("--diversity is --temperature under another name; give one of them")
        options = GenerationOptions(
            length=length,
            temperature=next((t for t in (temperature, diversity) if t is not None), 1.0),
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            mode=mode,  # type: ignore[arg-type]  # checked by GenerationOptions
            unknown=unknown,  # type: ignore[arg-type]
            engine=engine,  # type: ignore[arg-type]
            stop=tuple(stop or ()),
        )
        request = SampleRequest(
            model=model,
            options=options,
            prime=prime,
            prime_file=prime_file,
            num_samples=num_samples,
            output=output,
            as_json=as_json,
            device=device,
            threads=threads,
            verbose=verbose,
        )
        run_sample(request)

    call(action)


def info(
    model: Annotated[
        Path,
        typer.Argument(
            metavar="MODEL_OR_RUN_DIR",
            help="The .onnx file to describe, or a run directory written by gru-edge train.",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show what MODEL holds (metadata, vocabulary, inputs and outputs, opset, providers), or
    a run directory's facts (config, epochs, best epoch, bits/char, why it stopped, curves)."""

    def action() -> str:
        import json

        if model.is_dir():
            from gru_edge.trainer.facts import format_facts, read_facts

            facts = read_facts(model)
            if as_json:
                return json.dumps(facts.to_dict(), ensure_ascii=False, indent=2)
            return format_facts(facts)

        from gru_edge.runtime.loader import available_providers, load_model
        from gru_edge.runtime.report import format_info, model_info

        details = model_info(load_model(model), available_providers())
        if as_json:
            return json.dumps(details, ensure_ascii=False, indent=2)
        return format_info(details)

    typer.echo(call(action))


def bench(
    models: Annotated[
        list[Path],
        typer.Argument(
            metavar="MODEL",
            help="The .onnx (or .ort) file to measure; several (say fp32 and fp16 exports of "
            "one run) are measured one after the other and compared side by side.",
        ),
    ],
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="Its run directory: adds the notebook's Keras loop and, on the same weights, "
            "a numpy GRU loop and LiteRT (needs [train]); LiteRT also needs [bench]."
        ),
    ] = None,
    device: Annotated[str, typer.Option(metavar="[auto|cpu|cuda]")] = "cpu",
    threads: Annotated[int, typer.Option(help="onnxruntime intra-op threads.")] = 1,
    repeats: Annotated[int, typer.Option(help="Measurements per figure; the median is shown.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Measure `gru-edge serve MODEL` instead: concurrent streaming clients over "
            "loopback (needs [serve]).",
            rich_help_panel=_SERVE,
        ),
    ] = False,
    clients: Annotated[
        str,
        typer.Option(
            help="Numbers of concurrent clients, comma-separated.", rich_help_panel=_SERVE
        ),
    ] = "1,8,64",
    chars: Annotated[
        int, typer.Option(help="Characters each request asks for.", rich_help_panel=_SERVE)
    ] = 2000,
    seconds: Annotated[
        float, typer.Option(help="Seconds each number of clients runs.", rich_help_panel=_SERVE)
    ] = 10.0,
) -> None:
    """Measure chars/s of the notebook's loop, the ONNX runtime and its peers, side by side.

    Also: each contender's first character and peak RSS, and thread settings idle and loaded.

    With --serve: `gru-edge serve MODEL` under 1, 8 and 64 concurrent streaming clients.
    """
    if serve:
        _bench_serve(models, clients, chars, seconds, as_json)
        return

    def action():
        from gru_edge.bench import run_bench

        return [
            run_bench(model, run_dir, device=device, threads=threads, repeats=repeats, log=err)
            for model in models
        ]

    reports = call(action)
    if as_json:
        import json

        documents = [report.to_dict() for report in reports]
        typer.echo(json.dumps(documents[0] if len(documents) == 1 else documents, indent=2))
    else:
        from gru_edge.bench import format_comparison, format_report

        texts = [format_report(report) for report in reports]
        if len(reports) > 1:
            texts.append(format_comparison(reports))
        typer.echo("\n\n".join(texts))


def _bench_serve(models: list[Path], clients: str, chars: int, seconds: float, as_json: bool):
    """`bench --serve`: gru_edge.serve.load for the first model."""

    def action():
        from gru_edge.runtime.errors import UsageError
        from gru_edge.serve.load import run_load

        if len(models) != 1:
            raise UsageError(f"bench --serve measures one model file, got {len(models)}")
        try:
            counts = [int(c) for c in clients.split(",")]
        except ValueError:
            raise UsageError(f"--clients takes numbers like 1,8,64, got {clients!r}") from None
        return run_load(models[0], counts, chars=chars, seconds=seconds, log=err)

    report = call(action)
    if as_json:
        import json

        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        from gru_edge.serve.load import format_load

        typer.echo(format_load(report))
