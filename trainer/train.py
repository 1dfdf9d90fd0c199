"""The training loop: one Keras ``fit`` per epoch, with our own checkpointing around it.

Running the epochs ourselves (rather than one ``fit`` with callbacks) keeps every piece of state
that --resume needs in plain files: the epoch counter, the learning-rate schedule's counters, the
best value, and a checkpoint with the optimizer's slots (see trainer/resume.py).
"""

from __future__ import annotations

import math
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gru_edge.runtime.errors import TrainingInterrupted, UsageError
from gru_edge.runtime.files import atomic_path
from gru_edge.trainer import rundir
from gru_edge.trainer.config import TrainConfig, TrainOptions
from gru_edge.trainer.corpus import Corpus, check_length, load_corpus, split_point, window_starts
from gru_edge.trainer.data import make_dataset
from gru_edge.trainer.model import build_model
from gru_edge.trainer.resume import TrainState, load_for_resume
from gru_edge.trainer.runinfo import LN2, initial_info, record_progress
from gru_edge.trainer.samples import epoch_samples
from gru_edge.trainer.tf_env import load_tf


@dataclass
class TrainResult:
    """What a finished training call reports."""

    run_dir: Path
    epochs_completed: int
    best_epoch: int
    best_value: float  # val_loss, or loss without a validation split
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class _Split:
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
    def of(cls, corpus: Corpus, config: TrainConfig) -> _Split:
        cut = split_point(len(corpus.ids), config.val_fraction)
        train_ids, val_ids = corpus.ids[:cut], corpus.ids[cut:]
        return cls(
            train_ids,
            window_starts(len(train_ids), config.seq_len, config.step),
            val_ids,
            window_starts(len(val_ids), config.seq_len, config.step),
            len(corpus.vocab),
        )


def train(
    corpus_path: Path,
    out: Path,
    options: TrainOptions | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
    tensorboard: bool = False,
    log: Callable[[str], None] = print,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train (or resume) a run on ``corpus_path`` into the run directory ``out``.

    ``options`` are the settings the user gave; the rest keep their defaults (or, with
    ``resume``, the run's saved values). ``callbacks`` are extra Keras callbacks (tests use one
    to interrupt a run).
    """
    options, out = options or TrainOptions(), Path(out)
    say = (lambda _msg: None) if quiet else log
    if resume and force:
        raise UsageError("--resume and --force contradict each other; pick one")
    corpus = load_corpus(Path(corpus_path))
    tf, keras = load_tf("gru-edge train")  # before anything touches the run directory
    if resume:
        config, state, info = load_for_resume(out, corpus, options)
    else:
        config, state, info = _fresh_run(out, corpus, options, force)
    if state.epoch >= config.epochs:
        raise UsageError(
            f"the run in {out} already completed {state.epoch} epochs; "
            f"pass a larger --epochs to train further"
        )
    keras.utils.set_random_seed(config.seed)
    strategy = _strategy(tf, config.strategy)
    chief = _is_chief(strategy)
    info = info or initial_info(config, corpus)
    if chief and not resume:
        rundir.write_vocab(out, corpus.vocab)
        rundir.write_json(out / rundir.CONFIG, info)
    with strategy.scope():
        # The checkpoint brings the optimizer's slots; the learning rate is state.json's.
        model = keras.models.load_model(out / state.checkpoint) if resume else None
        model = model or build_model(len(corpus.vocab), config)
    model.optimizer.learning_rate.assign(state.lr)
    fit_callbacks = [*(callbacks or []), _one_epoch(keras)]
    if tensorboard:
        fit_callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out / rundir.TENSORBOARD)))

    split = _Split.of(corpus, config)
    say(f"training on {corpus.path} ({split.describe()}), seed {config.seed}")
    # The progress bar with ETA on a terminal; in a log file, Keras' one line per epoch instead of
    # hundreds of carriage-return updates.
    verbose = 0 if quiet else (1 if sys.stdout.isatty() else 2)
    run = _Run(out, corpus, config, state, info, model, split, chief, say)
    try:
        for epoch in range(state.epoch, config.epochs):
            run.epoch(epoch, fit_callbacks, verbose)
    except KeyboardInterrupt:
        raise TrainingInterrupted(
            f"interrupted during epoch {state.epoch + 1}; {out} keeps the {state.epoch} "
            f"completed epoch(s); continue with: gru-edge train {corpus_path} --out {out} "
            "--resume"
        ) from None
    return TrainResult(out, state.epoch, state.best_epoch, state.best, state.history)


def _fresh_run(
    out: Path, corpus: Corpus, options: TrainOptions, force: bool
) -> tuple[TrainConfig, TrainState, None]:
    """Check the options against the corpus, then make ``out`` ready for a new run."""
    config = options.apply(TrainConfig())
    config.validate()
    check_length(len(corpus.text), config.seq_len, config.val_fraction)
    if config.seed is None:
        config.seed = secrets.randbelow(2**31)
    rundir.prepare_fresh(out, force)
    return config, TrainState(lr=config.lr), None


@dataclass
class _Run:
    """A training run between setup and the end: what each epoch reads and updates."""

    out: Path
    corpus: Corpus
    config: TrainConfig
    state: TrainState
    info: dict[str, Any]  # config.json
    model: Any
    split: _Split
    chief: bool  # only the chief writes the run directory
    say: Callable[[str], None]

    def epoch(self, epoch: int, callbacks: list[Any], verbose: int) -> None:
        """Train one epoch, update the counters, and (the chief) save and write samples."""
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
        if self.chief:
            _save_epoch(self.out, self.model, state, improved, self.info, config)
        self.say(_summary(row, config.epochs, improved, state.lr))
        if self.chief and config.samples:
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
            # The run's real epoch count (so Keras prints "Epoch 3/20"); _one_epoch stops it.
            epochs=config.epochs,
            initial_epoch=epoch,
            verbose=verbose,
            callbacks=callbacks,
            shuffle=False,
        )
        return {k: float(v[-1]) for k, v in fit.history.items()}


def _one_epoch(keras):
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
    """Best model, then checkpoint, then state.json (the commit point), then the logs."""
    if improved:
        with atomic_path(out / rundir.MODEL) as tmp:
            model.save(tmp)
    previous = state.checkpoint
    state.checkpoint = rundir.checkpoint_name(state.epoch)
    with atomic_path(out / state.checkpoint) as tmp:
        model.save(tmp)
    rundir.write_json(out / rundir.STATE, state.to_json())
    if previous and previous != state.checkpoint:
        (out / previous).unlink(missing_ok=True)
    record_progress(info, state, config)
    rundir.write_json(out / rundir.CONFIG, info)
    rundir.write_history(out, state.history)


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


def _strategy(tf, name: str):
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy(devices=None if gpus else ["/cpu:0"])
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _is_chief(strategy) -> bool:
    """Only the chief writes the run directory under multi-worker training."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not os.environ.get("TF_CONFIG"):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0)
