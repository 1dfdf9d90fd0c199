"""The gru-edge command line: parse options, call one library function, map errors to exit codes.

TensorFlow-backed modules are imported inside the commands that need them, so `sample` and
`info` start fast and work on a bare install.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from runtime.errors import GruEdgeError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Train a character-level GRU, export it to ONNX, and sample it anywhere.",
)

T = TypeVar("T")


def _run(action: Callable[[], T]) -> T:
    """Call the library; turn its domain errors into a one-line message and an exit code."""
    try:
        return action()
    except GruEdgeError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        raise typer.Exit(130) from None


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _peak_rss_mb() -> float:
    """This process' peak resident memory in MB (0 where unknown).

    Linux: VmHWM, the high-water mark of this program's own memory. getrusage's ru_maxrss would
    also count the memory of the process we were forked from before exec.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# --- train / export (TensorFlow-backed) -------------------------------------------------------

_TRAIN = "Training options (defaults: the original notebook's)"


@app.command()
def train(
    corpus: Annotated[Path, typer.Argument(help="UTF-8 text file to learn from.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to create.")],
    seq_len: Annotated[
        int | None,
        typer.Option(
            help="Characters per training window.", show_default="100", rich_help_panel=_TRAIN
        ),
    ] = None,
    step: Annotated[
        int | None,
        typer.Option(
            help="Characters between window starts.", show_default="5", rich_help_panel=_TRAIN
        ),
    ] = None,
    units: Annotated[
        int | None, typer.Option(help="GRU units.", show_default="128", rich_help_panel=_TRAIN)
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(help="RMSprop learning rate.", show_default="0.01", rich_help_panel=_TRAIN),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Windows per batch.", show_default="128", rich_help_panel=_TRAIN),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            help="Epochs in total (with --resume: train up to this many).",
            show_default="20",
            rich_help_panel=_TRAIN,
        ),
    ] = None,
    val_fraction: Annotated[
        float | None,
        typer.Option(
            help="Last fraction of the corpus held out for validation, 0 to 0.5.",
            show_default="0.1",
            rich_help_panel=_TRAIN,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Seed for weights and batch order; the same seed gives the same weights.",
            show_default="drawn and recorded",
            rich_help_panel=_TRAIN,
        ),
    ] = None,
    steps_per_epoch: Annotated[
        int | None,
        typer.Option(
            help="At most this many batches per epoch.", show_default="all", rich_help_panel=_TRAIN
        ),
    ] = None,
    validation_steps: Annotated[
        int | None,
        typer.Option(
            help="At most this many validation batches.", show_default="all", rich_help_panel=_TRAIN
        ),
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            help="tf.distribute strategy: default, mirrored (local GPUs, "
            "else the CPU) or multi-worker (TF_CONFIG).",
            show_default="default",
            rich_help_panel=_TRAIN,
        ),
    ] = None,
    samples: Annotated[
        bool | None,
        typer.Option(
            "--samples/--no-samples",
            help="Write 400 characters at temperatures 0.2, 0.5, 1.0, 1.2 after each epoch. ",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out from its last completed epoch.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Replace the run already in --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
    tensorboard: Annotated[
        bool, typer.Option(help="Also write TensorBoard logs to RUN_DIR/tensorboard.")
    ] = False,
) -> None:
    """Train a character-level GRU on CORPUS; the best model and its logs go to --out."""
    options = {
        "seq_len": seq_len,
        "step": step,
        "units": units,
        "lr": lr,
        "batch_size": batch_size,
        "epochs": epochs,
        "val_fraction": val_fraction,
        "seed": seed,
        "steps_per_epoch": steps_per_epoch,
        "validation_steps": validation_steps,
        "strategy": strategy,
        "samples": samples,
    }

    def action():
        from trainer.train import train as run_training

        return run_training(
            corpus,
            out,
            options,
            resume=resume,
            force=force,
            quiet=quiet,
            tensorboard=tensorboard,
            log=typer.echo,
        )

    result = _run(action)
    if not quiet:
        typer.echo(
            f"best epoch {result.best_epoch} ({result.best_value:.4f}); "
            f"run saved in {result.run_dir}; peak RSS {_peak_rss_mb():.0f} MB"
        )


@app.command("export")
def export_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by gru-edge train.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The .onnx file to write.")],
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 17,
    atol: Annotated[
        float, typer.Option(help="Largest allowed |Keras - ONNX| on probabilities and states.")
    ] = 1e-5,
    force: Annotated[bool, typer.Option(help="Replace an existing --out file.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Convert a run's best model to one self-contained ONNX file, validated against Keras."""

    def action():
        from exporter.export import export_run

        return export_run(
            run_dir,
            out,
            opset=opset,
            atol=atol,
            force=force,
            log=(lambda _m: None) if quiet else typer.echo,
        )

    _run(action)


# --- sample / info / bench (runtime) ----------------------------------------------------------

_SAMPLING = "Sampling"
_RUNTIME = "Runtime"


@app.command()
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
    length: Annotated[int, typer.Option("--length", "-l", help="Characters to generate.")] = 400,
    temperature: Annotated[
        float,
        typer.Option(
            "--temperature",
            "--diversity",
            "-t",
            help="Randomness: 0 = always the likeliest character, 1 = the model's odds.",
            rich_help_panel=_SAMPLING,
        ),
    ] = 1.0,
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
            show_default="drawn (shown by --verbose)",
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
    num_samples: Annotated[
        int,
        typer.Option("--num-samples", "-n", help="Independent samples, run as one batch."),
    ] = 1,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file (atomically) instead of stdout.",
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
            help="onnxruntime intra-op threads.",
            show_default="onnxruntime's",
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
    _run(
        lambda: _sample(
            model,
            prime,
            prime_file,
            length,
            temperature,
            top_k,
            top_p,
            seed,
            mode,
            unknown,
            num_samples,
            output,
            as_json,
            device,
            threads,
            verbose,
        )
    )


def _sample(
    model: Path,
    prime: str | None,
    prime_file: Path | None,
    length: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    seed: int | None,
    mode: str,
    unknown: str,
    num_samples: int,
    output: Path | None,
    as_json: bool,
    device: str,
    threads: int | None,
    verbose: bool,
) -> None:
    import json
    import time

    from runtime.errors import UsageError
    from runtime.files import atomic_write
    from runtime.generator import Generator
    from runtime.text import read_text_file

    if prime is not None and prime_file is not None:
        raise UsageError("pass --prime or --prime-file, not both")
    for name, value in (("--length", length), ("--num-samples", num_samples)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}; omit it for the default")
    if output is not None and (output.is_dir() or not output.parent.is_dir()):
        what = "is a directory" if output.is_dir() else "is in a folder that does not exist"
        raise UsageError(f"--output {output} {what}; pass a file path in an existing folder")
    if prime_file is not None:
        prime = read_text_file(prime_file, "prime file")

    started = time.perf_counter()
    generator = Generator.load(model, device=device, threads=threads)
    options = {
        "length": length,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "seed": seed,
        "mode": mode,
        "unknown": unknown,
    }
    for warning in generator.model.warnings:
        _err(f"Warning: {warning}")
    streaming = num_samples == 1 and output is None and not as_json
    if num_samples == 1:
        chars = generator.stream(prime, **options)
    else:
        texts = generator.generate_batch(num_samples, prime, **options)
    fed = generator.last_prime
    if generator.last_skipped:
        skipped = ", ".join(repr(c) for c in generator.last_skipped[:20])
        note = "" if fed else "; nothing is left, so sampling starts after a newline"
        _err(f"Warning: skipped prime characters the model lacks: {skipped}{note}")
    if verbose:
        _err(
            f"model {model}: {generator.units} units, {len(generator.vocab)} characters, "
            f"on {generator.provider}; seed {generator.last_seed}"
        )
    if streaming:
        _stream_stdout(fed, chars)
    else:
        if num_samples == 1:
            texts = ["".join(chars)]
        if as_json:
            result = (
                json.dumps(
                    {
                        "model": str(model),
                        "provider": generator.provider,
                        "seed": generator.last_seed,
                        "prime": fed,
                        "skipped": generator.last_skipped,
                        "settings": {
                            **options,
                            "seed": generator.last_seed,
                            "num_samples": num_samples,
                        },
                        "texts": texts,
                    },
                    ensure_ascii=False,
                    indent=2,
                )
                + "\n"
            )
        else:
            result = _join_samples(fed, texts)
        if output is None:
            typer.echo(result, nl=False)
        else:
            try:
                atomic_write(output, result)
            except OSError as exc:
                raise UsageError(f"cannot write --output {output}: {exc.strerror or exc}") from None
    if verbose:
        seconds = time.perf_counter() - started
        _err(
            f"{length * num_samples:,} characters in {seconds:.2f} s since loading the model; "
            f"peak RSS {_peak_rss_mb():.0f} MB"
        )


def _join_samples(fed: str, texts: list[str]) -> str:
    if len(texts) == 1:
        return fed + texts[0] + "\n"
    return "".join(
        f"----- sample {i}/{len(texts)}\n{fed}{text}\n" for i, text in enumerate(texts, 1)
    )


def _stream_stdout(fed: str, chars: Iterator[str]) -> None:
    """Write the prime, then each character as it is generated."""
    import os

    out = sys.stdout
    if hasattr(out, "reconfigure"):
        # A console that cannot show a character gets '?' rather than a traceback mid-text.
        out.reconfigure(errors="replace")
    write, flush = out.write, out.flush
    try:
        write(fed)
        for char in chars:
            write(char)
            flush()
        write("\n")
        flush()
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, and keep Python's exit-time flush quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())


@app.command()
def info(
    model: Annotated[Path, typer.Argument(help="The .onnx file to describe.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show what MODEL holds: metadata, vocabulary, inputs and outputs, opset, providers."""

    def action() -> str:
        import json

        from runtime.loader import available_providers, load_model
        from runtime.report import format_info, model_info

        details = model_info(load_model(model), available_providers())
        if as_json:
            return json.dumps(details, ensure_ascii=False, indent=2)
        return format_info(details)

    typer.echo(_run(action))


@app.command()
def bench(
    model: Annotated[Path, typer.Argument(help="The .onnx file to measure.")],
    run_dir: Annotated[
        Path | None,
        typer.Option(help="Its run directory: adds the notebook's Keras loop (needs [train])."),
    ] = None,
    device: Annotated[str, typer.Option(metavar="[auto|cpu|cuda]")] = "cpu",
    threads: Annotated[int, typer.Option(help="onnxruntime intra-op threads.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Measure chars/s of the notebook's loop and of the ONNX runtime, side by side."""

    def action():
        from gru_edge.bench import run_bench

        return run_bench(model, run_dir, device=device, threads=threads, log=_err)

    report = _run(action)
    if as_json:
        import json

        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        from gru_edge.bench import format_report

        typer.echo(format_report(report))
