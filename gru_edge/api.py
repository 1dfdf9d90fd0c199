"""The Python API for notebooks and scripts: ``train`` and ``export``, the CLI's commands as
calls, with the same option names, the same checks and the same GruEdgeError subclasses.

    from gru_edge import train, export, Generator
    run = train("poems.txt", "runs/poems", epochs=5)      # -> RunFacts
    path = export(run.run_dir, "poems.onnx", force=True)  # -> Path
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gru_edge.runtime.errors import UsageError
from gru_edge.trainer.config import DEFAULT_WORKER_TIMEOUT, TrainOptions
from gru_edge.trainer.facts import RunFacts, read_facts

_OPTION_TYPES = typing.get_type_hints(TrainOptions)


def train(
    corpus: str | Path,
    out: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
    tensorboard: bool = False,
    worker_timeout: float = DEFAULT_WORKER_TIMEOUT,
    log: Callable[[str], None] = print,
    **options: Any,
) -> RunFacts | None:
    """Train a character-level GRU on ``corpus`` into the run directory ``out``, like
    `gru-edge train`; ``options`` are its training options by their Python names (``epochs=5``,
    ``patience=0``, ``seq_len=100``, ...). Returns the run's facts (None on a non-chief worker
    of a multi-worker cluster, which keeps no run)."""
    from gru_edge.trainer.train import train as run_training

    result = run_training(
        Path(corpus),
        Path(out),
        train_options(options),
        resume=resume,
        force=force,
        quiet=quiet,
        tensorboard=tensorboard,
        log=log,
        worker_timeout=worker_timeout,
    )
    return read_facts(result.run_dir) if result.chief else None


def export(
    run_dir: str | Path,
    out: str | Path,
    *,
    opset: int = 18,
    atol: float | None = None,
    weights: str = "fp32",
    ort: bool = False,
    force: bool = False,
    quiet: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Convert a run's best model to one validated ONNX file, like `gru-edge export`; returns
    the path written."""
    from gru_edge.exporter.export import export_run

    report = export_run(
        Path(run_dir),
        out if isinstance(out, str) else Path(out),
        opset=opset,
        atol=atol,
        force=force,
        weights=weights,
        ort_format=ort,
        log=(lambda _m: None) if quiet else log,
    )
    return report.path


def train_options(options: dict[str, Any]) -> TrainOptions:
    """``options`` as TrainOptions, each name and type checked (the CLI's parser does that
    for the command line): UsageError names the first bad one."""
    names = [f.name for f in dataclasses.fields(TrainOptions)]
    for name, value in options.items():
        if name not in names:
            raise UsageError(f"train() has no option {name!r}; the options are {', '.join(names)}")
        if value is not None and not _fits(value, _OPTION_TYPES[name]):
            raise UsageError(
                f"train() option {name} must be {_plain(_OPTION_TYPES[name])}, got {value!r}"
            )
    if isinstance(options.get("temperatures"), list):
        options = {**options, "temperatures": tuple(options["temperatures"])}
    return TrainOptions(**options)


def _fits(value: Any, hint: Any) -> bool:
    kinds = [k for k in typing.get_args(hint) if k is not type(None)] or [hint]
    for kind in kinds:
        origin = typing.get_origin(kind)
        if origin is tuple:
            return isinstance(value, (tuple, list)) and all(_fits(v, float) for v in value)
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if kind in (bool, str) and isinstance(value, kind):
            return True
    return False


def _plain(hint: Any) -> str:
    kinds = [k for k in typing.get_args(hint) if k is not type(None)] or [hint]
    kind = kinds[0]
    if typing.get_origin(kind) is tuple:
        return "a sequence of numbers"
    return {int: "a whole number", float: "a number", bool: "True or False", str: "a string"}.get(
        kind, str(kind)
    )
