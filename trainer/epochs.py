"""The epoch loop's body: one Keras ``fit`` per epoch, with our own checkpointing around it.

Running the epochs ourselves (rather than one ``fit`` with callbacks) keeps every piece of state
that --resume needs in plain files: the epoch counter, the learning-rate schedule's counters, the
best value, and a checkpoint with the optimizer's slots (see trainer/resume.py).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gru_edge.runtime.errors import UsageError
from gru_edge.runtime.files import atomic_path
from gru_edge.trainer import rundir
from gru_edge.trainer.cluster import Sync
from gru_edge.trainer.config import TrainConfig
from gru_edge.trainer.corpus import Corpus, split_point, window_starts
from gru_edge.trainer.curves import write_curves
from gru_edge.trainer.data import make_dataset
from gru_edge.trainer.resume import TrainState
from gru_edge.trainer.runinfo import LN2, record_progress
from gru_edge.trainer.samples import epoch_samples


@dataclass(frozen=True)
class Split:
    """The corpus cut into training and held-out ids, with their window starts."""

    train_ids: np.ndarray
    train_starts: np.ndarray
    val_ids: np.ndarray
    val_starts: np.ndarray
    vocab_size: int

    def describe(self) -> str:
        return (
            f"{len(self.train_ids):,} chars, {len(self.train_starts):,} windows; held out "
            f"{len(self.val_ids):,} chars; vocabulary {self.vocab_size}"
        )

    @classmethod
    def of(cls, corpus: Corpus, config: TrainConfig) -> Split:
        cut = split_point(len(corpus.ids), config.val_fraction)
        train_ids, val_ids = corpus.ids[:cut], corpus.ids[cut:]
        return cls(
            train_ids,
            window_starts(len(train_ids), config.seq_len, config.step),
            val_ids,
            window_starts(len(val_ids), config.seq_len, config.step),
            len(corpus.vocab),
        )


@dataclass
class EpochRunner:
    """A training run between setup and the end: what each epoch reads and updates."""

    out: Path
    corpus: Corpus
    config: TrainConfig
    state: TrainState
    info: dict[str, Any]  # config.json
    model: Any
    split: Split
    say: Callable[[str], None]
    callbacks: list[Any]  # ours: one epoch per fit, TensorBoard
    # Multi-worker: the chief's broadcasts. Every worker then runs this same code into its own
    # ``out`` (a non-chief's is a private temporary folder), so that every worker issues the same
    # collectives (model.save reads distributed variables) in the same order.
    sync: Sync | None = None
    whole_batches: bool = False  # leave out each epoch's last, partial batch (trainer/data.py)

    def epoch(self, epoch: int, callbacks: list[Any], verbose: int) -> None:
        """Train one epoch, update the counters, save, and write samples."""
        config, state = self.config, self.state
        started = time.perf_counter()
        metrics = self._fit(epoch, callbacks, verbose)
        row = {
            "epoch": epoch + 1,
            "loss": metrics["loss"],
            "val_loss": metrics.get("val_loss", math.nan),
            "val_bpc": metrics.get("val_loss", math.nan) / LN2,
            "lr": state.lr,
            "seconds": round(time.perf_counter() - started, 3),
        }
        improved = _end_of_epoch(self.model, state, row, metrics[self.info["monitor"]], config)
        _save_epoch(self.out, self.model, state, improved, self.info, config)
        self.say(_summary(row, config.epochs, improved, state.lr))
        if config.samples:
            block = epoch_samples(self.model, self.corpus, config, epoch)
            self.say(block.rstrip("\n"))
            rundir.append_samples(self.out, block + "\n")

    def _fit(self, epoch: int, callbacks: list[Any], verbose: int) -> dict[str, float]:
        """One epoch of ``fit`` (and validation); its final metrics."""
        config, split = self.config, self.split
        data_args = {
            "seq_len": config.seq_len,
            "vocab_size": split.vocab_size,
            "batch_size": config.batch_size,
            "whole_batches": self.whole_batches,
        }
        train_ds = make_dataset(
            split.train_ids,
            split.train_starts,
            order_seed=[config.seed, epoch],
            max_batches=config.steps_per_epoch,
            **data_args,
        )
        val_ds = None
        if config.val_fraction > 0:
            val_ds = make_dataset(
                split.val_ids, split.val_starts, max_batches=config.validation_steps, **data_args
            )
        fit = self.model.fit(
            train_ds,
            validation_data=val_ds,
            # The real epoch count (Keras prints "Epoch 3/20"); one_epoch_callback stops it.
            epochs=config.epochs,
            initial_epoch=epoch,
            verbose=verbose,
            callbacks=callbacks,
            shuffle=False,
        )
        metrics = {k: float(v[-1]) for k, v in fit.history.items()}
        # Keras reduces the metrics over the workers already; the chief's, broadcast, make the
        # best-epoch and learning-rate decisions the same on every worker by construction.
        return metrics if self.sync is None else self.sync.metrics(metrics)


def one_epoch_callback(keras: Any) -> Any:
    """A callback that ends ``fit`` after one epoch: our loop saves between epochs."""

    class OneEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    return OneEpoch()


def _end_of_epoch(model, state: TrainState, row: dict, value: float, config: TrainConfig) -> bool:
    """Update the counters like ModelCheckpoint(save_best_only) and ReduceLROnPlateau would."""
    state.epoch = row["epoch"]
    state.history.append(row)
    improved = value < state.best
    if improved:
        state.best, state.best_epoch = value, row["epoch"]
    # Early stopping counts like Keras' EarlyStopping (min_delta 0): any better value resets it.
    state.stale = 0 if improved else state.stale + 1
    # Keras' ReduceLROnPlateau: mode min, min_delta 1e-4, cooldown 0.
    if value < state.plateau_best - 1e-4:
        state.plateau_best, state.wait = value, 0
    else:
        state.wait += 1
        if state.wait >= config.lr_patience and state.lr > config.min_lr:
            state.lr = max(state.lr * config.lr_factor, config.min_lr)
            model.optimizer.learning_rate.assign(state.lr)
            state.wait = 0
    return improved


def _save_epoch(
    out: Path, model, state: TrainState, improved: bool, info: dict, config: TrainConfig
) -> None:
    """Checkpoint, then the best model, then state.json (the commit point), then the logs."""
    previous = state.checkpoint
    state.checkpoint = rundir.checkpoint_name(state.epoch)
    with atomic_path(out / state.checkpoint) as tmp:
        model.save(tmp)
    if improved:
        # The same model, optimizer slots included: a copy costs less than a second save.
        with atomic_path(out / rundir.MODEL) as tmp:
            shutil.copyfile(out / state.checkpoint, tmp)
    rundir.write_json(out / rundir.STATE, state.to_json())
    if previous and previous != state.checkpoint:
        (out / previous).unlink(missing_ok=True)
    record_progress(info, state, config)
    rundir.write_json(out / rundir.CONFIG, info)
    rundir.write_history(out, state.history)
    write_curves(out, state.history, state.best_epoch)


def _summary(row: dict, epochs: int, improved: bool, lr: float) -> str:
    val = (
        ""
        if math.isnan(row["val_loss"])
        else (f"  val_loss {row['val_loss']:.4f}  val_bpc {row['val_bpc']:.3f}")
    )
    best = "  (best, saved)" if improved else ""
    return (
        f"epoch {row['epoch']}/{epochs}  loss {row['loss']:.4f}{val}  "
        f"lr {row['lr']:g}  {row['seconds']:.1f}s{best}  next lr {lr:g}"
    )


def check_whole_batches(split: Split, config: TrainConfig) -> None:
    """Multi-worker training uses whole batches only (trainer/data.py): there must be one."""
    for what, starts in (("training", split.train_starts), ("validation", split.val_starts)):
        if 0 < len(starts) < config.batch_size or (what == "training" and not len(starts)):
            raise UsageError(
                f"--strategy multi-worker trains on whole batches only, and the {what} part "
                f"has {len(starts)} windows, fewer than --batch-size {config.batch_size}; "
                "pass a smaller --batch-size"
            )
