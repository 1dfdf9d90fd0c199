"""The training loop: one Keras ``fit`` per epoch, with our own checkpointing around it.

Running the epochs ourselves (rather than one ``fit`` with callbacks) keeps every piece of state
that --resume needs in plain files: the epoch counter, the learning-rate schedule's counters, the
best value, and a checkpoint with the optimizer's slots.
"""

from __future__ import annotations

import csv
import io
import math
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

import gru_edge
from runtime.errors import RunDirError, TrainingInterrupted, UsageError
from runtime.files import atomic_path, atomic_write
from runtime.generation import generate_ids
from runtime.sampler import SamplingSettings
from runtime.text import TEXT_POLICY
from trainer import rundir
from trainer.config import TrainConfig
from trainer.corpus import Corpus, check_length, load_corpus, split_point, window_starts
from trainer.data import make_dataset
from trainer.model import build_model, build_stepper, step_function
from trainer.tf_env import load_tf

# Options that --resume may change; every other one must match the run's config.
RESUMABLE = {"epochs", "samples"}
HISTORY_FIELDS = ("epoch", "loss", "val_loss", "val_bpc", "lr", "seconds")
LN2 = math.log(2)


@dataclass
class TrainResult:
    """What a finished training call reports."""

    run_dir: Path
    epochs_completed: int
    best_epoch: int
    best_value: float  # val_loss, or loss without a validation split
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class _State:
    """state.json: everything --resume needs besides the checkpoint's weights and slots."""

    epoch: int = 0  # completed epochs
    checkpoint: str | None = None
    lr: float = 0.0
    best: float = math.inf  # best monitored value, for model.keras
    best_epoch: int = 0
    plateau_best: float = math.inf  # ReduceLROnPlateau's own reference (min_delta applies)
    wait: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def train(
    corpus_path: Path,
    out: Path,
    options: dict[str, Any] | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
    tensorboard: bool = False,
    log: Callable[[str], None] = print,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train (or resume) a run on ``corpus_path`` into the run directory ``out``.

    ``options`` holds the TrainConfig fields the user set; the rest keep their defaults (or, with
    ``resume``, the run's saved values). ``callbacks`` are extra Keras callbacks (tests use one to
    interrupt a run).
    """
    options = {k: v for k, v in (options or {}).items() if v is not None}
    out = Path(out)
    say = (lambda _msg: None) if quiet else log
    if resume and force:
        raise UsageError("--resume and --force contradict each other; pick one")
    corpus = load_corpus(Path(corpus_path))
    tf, keras = load_tf("gru-edge train")  # before anything touches the run directory
    if resume:
        config, state, info = _load_for_resume(out, corpus, options)
        config.validate()
    else:
        config, info = TrainConfig(**options), None
        config.validate()
        check_length(len(corpus.text), config.seq_len, config.val_fraction)
        if config.seed is None:
            config.seed = secrets.randbelow(2**31)
        rundir.prepare_fresh(out, force)
        state = _State(lr=config.lr)
    if state.epoch >= config.epochs:
        raise UsageError(
            f"the run in {out} already completed {state.epoch} epochs; "
            f"pass a larger --epochs to train further"
        )

    keras.utils.set_random_seed(config.seed)
    strategy = _strategy(tf, config.strategy)
    chief = _is_chief(strategy)
    info = info or _initial_info(config, corpus)
    if chief and not resume:
        rundir.write_json(out / rundir.VOCAB, corpus.vocab)
        rundir.write_json(out / rundir.CONFIG, info)

    cut = split_point(len(corpus.ids), config.val_fraction)
    train_ids, val_ids = corpus.ids[:cut], corpus.ids[cut:]
    train_starts = window_starts(len(train_ids), config.seq_len, config.step)
    val_starts = window_starts(len(val_ids), config.seq_len, config.step)
    monitor = "val_loss" if config.val_fraction > 0 else "loss"
    data_args = {
        "seq_len": config.seq_len,
        "vocab_size": corpus.vocab_size,
        "batch_size": config.batch_size,
    }

    with strategy.scope():
        if resume:
            model = keras.models.load_model(out / state.checkpoint)
        else:
            model = build_model(corpus.vocab_size, config)
    model.optimizer.learning_rate.assign(state.lr)
    fit_callbacks = [*(callbacks or []), _one_epoch(keras)]
    if tensorboard:
        fit_callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out / rundir.TENSORBOARD)))

    say(
        f"training on {corpus.path} ({len(train_ids):,} chars, {len(train_starts):,} windows; "
        f"held out {len(val_ids):,} chars), vocabulary {corpus.vocab_size}, seed {config.seed}"
    )
    # The progress bar with ETA on a terminal; in a log file, Keras' one line per epoch instead of
    # hundreds of carriage-return updates.
    progress = 1 if sys.stdout.isatty() else 2
    epoch = state.epoch
    try:
        for epoch in range(state.epoch, config.epochs):
            started = time.perf_counter()
            train_ds = make_dataset(
                train_ids,
                train_starts,
                order_seed=[config.seed, epoch],
                max_batches=config.steps_per_epoch,
                **data_args,
            )
            val_ds = None
            if monitor == "val_loss":
                val_ds = make_dataset(
                    val_ids, val_starts, max_batches=config.validation_steps, **data_args
                )
            fit = model.fit(
                train_ds,
                validation_data=val_ds,
                # The run's real epoch count (so Keras prints "Epoch 3/20"); _one_epoch stops it.
                epochs=config.epochs,
                initial_epoch=epoch,
                verbose=0 if quiet else progress,
                callbacks=fit_callbacks,
                shuffle=False,
            )
            metrics = {k: float(v[-1]) for k, v in fit.history.items()}
            row = {
                "epoch": epoch + 1,
                "loss": metrics["loss"],
                "val_loss": metrics.get("val_loss", math.nan),
                "val_bpc": metrics.get("val_loss", math.nan) / LN2,
                "lr": state.lr,
                "seconds": round(time.perf_counter() - started, 3),
            }
            improved = _end_of_epoch(model, state, row, metrics[monitor], config)
            if chief:
                _save_epoch(out, model, state, improved, info, config)
            say(_summary(row, config.epochs, improved, state.lr))
            if chief and config.samples:
                _write_samples(out, model, corpus, config, epoch, say)
    except KeyboardInterrupt:
        raise TrainingInterrupted(
            f"interrupted during epoch {epoch + 1}; {out} keeps the {state.epoch} completed "
            f"epoch(s); continue with: gru-edge train {corpus_path} --out {out} --resume"
        ) from None
    return TrainResult(out, state.epoch, state.best_epoch, state.best, state.history)


def _one_epoch(keras):
    """A callback that ends ``fit`` after one epoch: our loop saves between epochs."""

    class OneEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    return OneEpoch()


def _end_of_epoch(model, state: _State, row: dict, value: float, config: TrainConfig) -> bool:
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
    out: Path, model, state: _State, improved: bool, info: dict, config: TrainConfig
) -> None:
    """Best model, then checkpoint, then state.json (the commit point), then the logs."""
    if improved:
        with atomic_path(out / rundir.MODEL) as tmp:
            model.save(tmp)
    previous = state.checkpoint
    state.checkpoint = rundir.checkpoint_name(state.epoch)
    with atomic_path(out / state.checkpoint) as tmp:
        model.save(tmp)
    rundir.write_json(out / rundir.STATE, _state_to_json(state))
    if previous and previous != state.checkpoint:
        (out / previous).unlink(missing_ok=True)
    info.update(
        epochs_completed=state.epoch,
        best_epoch=state.best_epoch,
        best_val_loss=state.best if config.val_fraction > 0 else None,
        best_val_bpc=state.best / LN2 if config.val_fraction > 0 else None,
        best_loss=state.best if config.val_fraction == 0 else None,
        updated=_now(),
    )
    rundir.write_json(out / rundir.CONFIG, info)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(state.history)
    atomic_write(out / rundir.HISTORY, buffer.getvalue())


def _write_samples(
    out: Path, model, corpus: Corpus, config: TrainConfig, epoch: int, say: Callable[[str], None]
) -> None:
    """The notebook's per-epoch samples, through the runtime's sampler and generation loop."""
    step = step_function(build_stepper(model))
    rng = np.random.default_rng([config.seed, epoch, 1])
    start = int(rng.integers(0, len(corpus.text) - config.seq_len))
    prime = corpus.text[start : start + config.seq_len]
    blocks = [f"----- epoch {epoch + 1}, prime: {prime!r}\n"]
    for temperature in config.temperatures:
        ids = generate_ids(
            step,
            corpus.ids[start : start + config.seq_len].tolist(),
            config.sample_length,
            units=config.units,
            settings=SamplingSettings(temperature=temperature),
            rng=rng,
        )
        text = "".join(corpus.vocab[int(row[0])] for row in ids)
        blocks.append(f"----- temperature {temperature}\n{text}\n")
    block = "".join(blocks)
    say(block.rstrip("\n"))
    path = out / rundir.SAMPLES
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    atomic_write(path, previous + block + "\n")


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


def _load_for_resume(out: Path, corpus: Corpus, options: dict[str, Any]):
    if not (out / rundir.STATE).exists():
        raise RunDirError(
            f"--resume: {out} holds no resumable run (no {rundir.STATE}); "
            "drop --resume to start a new run there"
        )
    info = rundir.read_json(out / rundir.CONFIG, "the run cannot be resumed; start a new one")
    state_json = rundir.read_json(out / rundir.STATE, "the run cannot be resumed; start anew")
    vocab = rundir.read_json(out / rundir.VOCAB, "the run cannot be resumed; start a new one")
    if info["corpus"]["sha256"] != corpus.sha256:
        raise RunDirError(
            f"--resume: {corpus.path} is not the corpus this run was trained on "
            f"({info['corpus']['path']}, sha256 {info['corpus']['sha256'][:12]}...); "
            "pass the same corpus or start a new run"
        )
    if vocab != corpus.vocab:
        raise RunDirError(f"--resume: the vocabulary of {corpus.path} differs from the run's")
    config = TrainConfig.from_dict(info["config"])
    for key, value in options.items():
        if key in RESUMABLE:
            setattr(config, key, value)
        elif getattr(config, key) != value:
            flag = "--" + key.replace("_", "-")
            raise UsageError(
                f"--resume keeps the run's settings: {flag} {value} differs from the run's "
                f"{getattr(config, key)}; drop {flag} or start a new run"
            )
    info["config"] = config.to_dict()
    try:
        state = _State(**state_json)
    except TypeError:
        raise RunDirError(
            f"--resume: {out / rundir.STATE} is not a gru-edge training state; start a new run"
        ) from None
    if not state.checkpoint or not (out / state.checkpoint).exists():
        raise RunDirError(f"--resume: checkpoint {state.checkpoint} is missing from {out}")
    return config, state, info


def _state_to_json(state: _State) -> dict[str, Any]:
    data = dict(state.__dict__)
    for key in ("best", "plateau_best"):
        data[key] = None if math.isinf(data[key]) else data[key]
    return data


def _initial_info(config: TrainConfig, corpus: Corpus) -> dict[str, Any]:
    tf, keras = load_tf()
    cut = split_point(len(corpus.ids), config.val_fraction)
    return {
        "format": "gru-edge-run/1",
        "config": config.to_dict(),
        "text_policy": TEXT_POLICY,
        "vocab_size": corpus.vocab_size,
        "corpus": {
            "path": str(corpus.path),
            "sha256": corpus.sha256,
            "chars": len(corpus.text),
            "train_chars": cut,
            "val_chars": len(corpus.text) - cut,
            "val_text_start": cut,
        },
        # Real text for the exporter's stateful parity rollout, so the run dir is self-contained.
        # (the held-out text when there is enough of it, else the corpus' end).
        "probe_text": corpus.text[cut : cut + 1000]
        if len(corpus.text) - cut >= 500
        else corpus.text[-1000:],
        "monitor": "val_loss" if config.val_fraction > 0 else "loss",
        "versions": {
            "gru_edge": gru_edge.__version__,
            "tensorflow": tf.__version__,
            "tf_keras": keras.__version__,
            "numpy": np.__version__,
        },
        "created": _now(),
        "epochs_completed": 0,
        "best_epoch": None,
        "best_val_loss": None,
        "best_val_bpc": None,
    }


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


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()
