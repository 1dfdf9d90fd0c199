"""The gru-edge command line: parse options, call one library function, map errors to exit codes.

TensorFlow-backed modules are imported inside the commands that need them, so `sample` and
`info` start fast and work on a bare install.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from gru_edge.memory import peak_rss_mb
from gru_edge.sampling import run_sample
from runtime.errors import GruEdgeError


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
            f"run saved in {result.run_dir}; peak RSS {peak_rss_mb():.0f} MB"
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
        lambda: run_sample(
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
    repeats: Annotated[int, typer.Option(help="Measurements per figure; the median is shown.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Measure chars/s of the notebook's loop and of the ONNX runtime, side by side."""

    def action():
        from gru_edge.bench import run_bench

        return run_bench(model, run_dir, device=device, threads=threads, repeats=repeats, log=_err)

    report = _run(action)
    if as_json:
        import json

        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        from gru_edge.bench import format_report

        typer.echo(format_report(report))
