"""The training configuration, saved in the run directory's config.json."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from gru_edge.runtime.errors import UsageError

STRATEGIES = ("default", "mirrored", "multi-worker")
# Upper bounds, checked before any work: far past what a character model needs (the notebook
# uses 128 units, 100 characters, 128 windows), well before TensorFlow fails with a traceback.
MAX_UNITS = 4096
MAX_SEQ_LEN = 10_000
MAX_BATCH_SIZE = 65_536
MAX_LAYERS = 8  # char-rnn stacks 2-3; deeper GRUs train poorly without residual links
# How long a worker waits for the others: to join at the start, and in any one collective
# operation (a step's gradient all-reduce, a broadcast). Long enough for a slow first start
# (importing TensorFlow, reading the corpus) and a slow epoch end on the chief (saving, samples).
DEFAULT_WORKER_TIMEOUT = 120.0


@dataclass
class TrainConfig:
    """Every hyperparameter of a run. Defaults reproduce the original notebook."""

    seq_len: int = 100  # characters per training window (the notebook's maxlen)
    step: int = 5  # characters between the starts of consecutive windows
    units: int = 128  # GRU units (in each layer)
    layers: int = 1  # stacked GRUs; the notebook has one
    dropout: float = 0.0  # after each GRU, training only; the notebook has none
    lr: float = 0.01  # RMSprop learning rate
    batch_size: int = 128
    epochs: int = 20
    # Early stopping: stop after this many epochs without a better monitored loss; 0 = never.
    # 3 stops the quickstart (best epochs 6, 6, 7 of 20, the loss rising every epoch after)
    # three epochs past its best, and leaves room for the epoch right after a learning-rate cut.
    patience: int = 3
    val_fraction: float = 0.1  # the corpus' last fraction, held out and never trained on
    seed: int | None = None  # None: drawn at the start and recorded, so every run can be redone
    lr_factor: float = 0.2  # ReduceLROnPlateau, as in the notebook
    lr_patience: int = 1
    min_lr: float = 0.001
    samples: bool = True  # write generated text after each epoch
    sample_length: int = 400
    temperatures: tuple[float, ...] = (0.2, 0.5, 1.0, 1.2)
    steps_per_epoch: int | None = None  # None: every training window once per epoch
    validation_steps: int | None = None  # None: every validation window
    strategy: str = "default"  # tf.distribute: default | mirrored | multi-worker

    def validate(self) -> None:
        """Raise UsageError for values that make no sense."""
        _in_range("--seq-len", self.seq_len, 2, MAX_SEQ_LEN)
        _at_least("--step", self.step, 1)
        _in_range("--units", self.units, 1, MAX_UNITS)
        _in_range("--layers", self.layers, 1, MAX_LAYERS)
        if not (0 <= self.dropout < 1):
            raise UsageError(
                f"--dropout must be at least 0 and below 1, got {self.dropout}; try 0.2"
            )
        _in_range("--batch-size", self.batch_size, 1, MAX_BATCH_SIZE)
        _at_least("--epochs", self.epochs, 1)
        _at_least("--patience", self.patience, 0)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UsageError(f"--lr must be a positive number, got {self.lr}; try 0.01")
        if not (0 <= self.val_fraction <= 0.5):
            raise UsageError(
                f"--val-fraction must be between 0 and 0.5, got {self.val_fraction}; try 0.1"
            )
        if self.steps_per_epoch is not None:
            _at_least("--steps-per-epoch", self.steps_per_epoch, 1)
        if self.validation_steps is not None:
            _at_least("--validation-steps", self.validation_steps, 1)
        _at_least("sample length", self.sample_length, 1)
        if self.strategy not in STRATEGIES:
            raise UsageError(
                f"--strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        if self.seed is not None and not (0 <= self.seed < 2**32):
            raise UsageError(f"--seed must be between 0 and 2**32 - 1, got {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["temperatures"] = list(self.temperatures)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "temperatures" in values:
            values["temperatures"] = tuple(values["temperatures"])
        return cls(**values)


@dataclass(frozen=True)
class TrainOptions:
    """The TrainConfig fields a user set (None = not set), as the CLI or a caller gives them.

    A fresh run applies them to the defaults; --resume applies them to the run's saved config,
    where only RESUMABLE ones may differ. Every field here is a TrainConfig field (a test keeps
    it so), so an option cannot be misspelt on its way to the config.
    """

    seq_len: int | None = None
    step: int | None = None
    units: int | None = None
    layers: int | None = None
    dropout: float | None = None
    lr: float | None = None
    batch_size: int | None = None
    epochs: int | None = None
    patience: int | None = None
    val_fraction: float | None = None
    seed: int | None = None
    lr_factor: float | None = None
    lr_patience: int | None = None
    min_lr: float | None = None
    samples: bool | None = None
    sample_length: int | None = None
    temperatures: tuple[float, ...] | None = None
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    strategy: str | None = None

    def given(self) -> dict[str, Any]:
        """The options that were set, by TrainConfig field name."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    def apply(self, config: TrainConfig) -> TrainConfig:
        """``config`` with the given options replaced (not validated: call validate())."""
        return dataclasses.replace(config, **self.given())


def check_memory(config: TrainConfig, vocab_size: int, available: int | None = None) -> None:
    """Refuse settings whose training cannot fit in this machine's memory (``available``
    bytes; default: the physical memory). The estimate is a lower bound (weights with their
    gradients and RMSprop slots, one one-hot batch, the GRU's input projections that backprop
    keeps), so nothing that would fit is refused."""
    available = available if available is not None else _physical_memory()
    if available is None:
        return
    units, windows = config.units, config.batch_size * config.seq_len
    layers = config.layers
    grus = 3 * (vocab_size + units + 2) * units + (layers - 1) * 3 * (2 * units + 2) * units
    weights = 3 * (grus + (units + 1) * vocab_size)
    needed = 4 * (weights + windows * (vocab_size + 3 * units * layers))
    if needed > available:
        raise UsageError(
            f"--batch-size {config.batch_size}, --seq-len {config.seq_len} and --units {units} "
            f"with a {vocab_size}-character vocabulary need at least {needed / 2**30:.1f} GiB, "
            f"more than this machine's {available / 2**30:.1f} GiB of memory; "
            "lower --batch-size, --seq-len or --units"
        )


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not on this system (Windows)
        return None


def _in_range(option: str, value: int, minimum: int, maximum: int) -> None:
    if not (minimum <= value <= maximum):
        raise UsageError(f"{option} must be between {minimum} and {maximum}, got {value}")


def _at_least(option: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise UsageError(f"{option} must be at least {minimum}, got {value}")
