"""`gru-edge train` and `gru-edge export`: the TensorFlow-backed commands.

TensorFlow is imported inside each command, so the CLI starts fast and `--help` works on a bare
install. The command functions are long because Typer reads their parameters as the options;
each still only builds typed options and calls one library function.
"""

# No `from __future__ import annotations` here: Typer evaluates string annotations twice per
# parameter at every start (~8 ms before `sample` writes anything; docs/benchmarks.md).

from pathlib import Path
from typing import Annotated

import typer

from gru_edge.cli_common import call
from gru_edge.memory import peak_rss_mb
from gru_edge.trainer.config import DEFAULT_WORKER_TIMEOUT, TrainOptions

_TRAIN = "Training options (defaults: the original notebook's)"


# Long by declaration only: Typer reads each parameter as an option (see the module doc).
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
    layers: Annotated[
        int | None,
        typer.Option(help="Stacked GRUs, 1 to 8.", show_default="1", rich_help_panel=_TRAIN),
    ] = None,
    dropout: Annotated[
        float | None,
        typer.Option(
            help="Dropout after each GRU while training, 0 to below 1.",
            show_default="0",
            rich_help_panel=_TRAIN,
        ),
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
    patience: Annotated[
        int | None,
        typer.Option(
            help="Stop after this many epochs without a better validation loss (the best "
            "epoch's model is kept); 0 trains every epoch.",
            show_default="3",
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
    worker_timeout: Annotated[
        float,
        typer.Option(
            help="--strategy multi-worker: seconds a worker waits for the others (to join, "
            "and in any one exchange) before it stops with an error.",
        ),
    ] = DEFAULT_WORKER_TIMEOUT,
    allow_open_port: Annotated[
        bool,
        typer.Option(
            "--allow-open-port",
            help="--strategy multi-worker: go on although TensorFlow's port listens on every "
            "network interface and runs unauthenticated commands from anyone who reaches it "
            "(how to keep it private: several-machines.md in the docs).",
        ),
    ] = False,
) -> None:
    """Train a character-level GRU on CORPUS; the best model and its logs go to --out."""
    options = TrainOptions(
        seq_len=seq_len,
        step=step,
        units=units,
        layers=layers,
        dropout=dropout,
        lr=lr,
        batch_size=batch_size,
        epochs=epochs,
        patience=patience,
        val_fraction=val_fraction,
        seed=seed,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
        strategy=strategy,
        samples=samples,
    )

    def action():
        from gru_edge.trainer.train import train as run_training

        return run_training(
            corpus,
            out,
            options,
            resume=resume,
            force=force,
            quiet=quiet,
            tensorboard=tensorboard,
            log=typer.echo,
            worker_timeout=worker_timeout,
            allow_open_port=allow_open_port,
        )

    result = call(action)
    if not quiet and not result.chief:
        typer.echo(f"done; the chief saved the run; peak RSS {peak_rss_mb():.0f} MB")
    elif not quiet:
        typer.echo(result.stop_reason)
        typer.echo(
            f"best epoch {result.best_epoch} ({result.best_value:.4f}); "
            f"run saved in {result.run_dir}; peak RSS {peak_rss_mb():.0f} MB"
        )


def export(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by gru-edge train.")],
    # A string, not a Path: Path drops the trailing slash that export refuses (a folder name).
    out: Annotated[
        str, typer.Option("--out", "-o", metavar="<path>", help="The .onnx file to write.")
    ],
    opset: Annotated[
        int,
        typer.Option(
            help="ONNX opset: 7 up to the newest tf2onnx knows; the in-graph generator needs "
            "18 (below it the file is gru-edge/1, sampled by the host loop)."
        ),
    ] = 18,
    atol: Annotated[
        float | None,
        typer.Option(
            help="Largest allowed |Keras - ONNX| on probabilities and states.",
            show_default="1e-5; 5e-3 with --weights fp16",
        ),
    ] = None,
    weights: Annotated[
        str,
        typer.Option(
            metavar="[fp32|fp16]",
            help="fp16: store the weights as float16, half the file; inputs, outputs and "
            "arithmetic stay float32.",
        ),
    ] = "fp32",
    ort: Annotated[
        bool,
        typer.Option(
            "--ort",
            help="Also write the ORT-format file (.ort) and the operator config for "
            "onnxruntime's minimal mobile builds, checked against the .onnx.",
        ),
    ] = False,
    force: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Convert a run's best model to one self-contained ONNX file, validated against Keras."""

    def action():
        from gru_edge.exporter.export import export_run

        return export_run(
            run_dir,
            out,
            opset=opset,
            atol=atol,
            force=force,
            weights=weights,
            ort_format=ort,
            log=(lambda _m: None) if quiet else typer.echo,
        )

    call(action)
