"""`gru-edge train` as a library call: check everything, lock the run directory, claim it (a new
run, or the one to resume), then run the epochs (trainer/epochs.py) under the lock.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gru_edge.runtime.errors import TrainingInterrupted, UsageError
from gru_edge.trainer import rundir
from gru_edge.trainer.config import TrainConfig, TrainOptions, check_memory
from gru_edge.trainer.corpus import Corpus, check_length, load_corpus
from gru_edge.trainer.epochs import EpochRunner, Split, one_epoch_callback
from gru_edge.trainer.keras_files import load_keras_model
from gru_edge.trainer.lock import training_lock
from gru_edge.trainer.model import build_model
from gru_edge.trainer.resume import TrainState, check_resumable, load_for_resume
from gru_edge.trainer.runinfo import initial_info
from gru_edge.trainer.tf_env import load_tf


@dataclass
class TrainResult:
    """What a finished training call reports."""

    run_dir: Path
    epochs_completed: int
    best_epoch: int
    best_value: float  # val_loss, or loss without a validation split
    history: list[dict[str, float]] = field(default_factory=list)


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
    to interrupt a run). The run directory is locked for the whole call (trainer/lock.py).
    """
    options, out = options or TrainOptions(), Path(out)
    say = (lambda _msg: None) if quiet else log
    if resume and force:
        raise UsageError("--resume and --force contradict each other; pick one")
    corpus = load_corpus(Path(corpus_path))
    fresh = None if resume else _fresh_config(corpus, options)
    if fresh is None:
        check_resumable(out)
    else:
        rundir.check_fresh(out, force)
    load_tf("gru-edge train")  # before anything touches the run directory
    if not resume:
        rundir.make_dir(out)
    with training_lock(out):
        config, state, info = _claim(out, corpus, options, fresh, force, say)
        run = _start(out, corpus, config, state, info, resume, say, tensorboard)
        fit_callbacks = [*(callbacks or []), *run.callbacks]
        say(f"training on {corpus.path} ({run.split.describe()}), seed {config.seed}")
        # The progress bar with ETA on a terminal; in a log file, Keras' one line per epoch
        # instead of hundreds of carriage-return updates.
        verbose = 0 if quiet else (1 if sys.stdout.isatty() else 2)
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


def _claim(
    out: Path,
    corpus: Corpus,
    options: TrainOptions,
    fresh: TrainConfig | None,
    force: bool,
    say: Callable[[str], None],
) -> tuple[TrainConfig, TrainState, dict[str, Any] | None]:
    """Under the run's lock: the run to resume (``fresh`` None), or ``out`` cleared for the new
    run with config ``fresh``; either way without the temporary files a killed run left."""
    if fresh is None:
        config, state, info = load_for_resume(out, corpus, options)
    else:
        # Checked again under the lock: another training may have made a run here meanwhile.
        if rundir.check_fresh(out, force):
            rundir.clear_run(out)
        config, state, info = fresh, TrainState(lr=fresh.lr), None
    if stale := rundir.clean_stale_temps(out):
        say(f"removed {stale} temporary file(s) an interrupted run left in {out}")
    if state.epoch >= config.epochs:
        raise UsageError(
            f"the run in {out} already completed {state.epoch} epochs; "
            f"pass a larger --epochs to train further"
        )
    return config, state, info


def _fresh_config(corpus: Corpus, options: TrainOptions) -> TrainConfig:
    """The new run's config, checked against the corpus and this machine's memory."""
    config = options.apply(TrainConfig())
    config.validate()
    check_memory(config, len(corpus.vocab))
    check_length(len(corpus.ids), config.seq_len, config.val_fraction)
    if config.seed is None:
        config.seed = secrets.randbelow(2**31)
    return config


def _start(
    out: Path,
    corpus: Corpus,
    config: TrainConfig,
    state: TrainState,
    info: dict[str, Any] | None,
    resume: bool,
    say: Callable[[str], None],
    tensorboard: bool,
) -> EpochRunner:
    """Seed, strategy, the new run's first files, and the model (built, or the checkpoint)."""
    tf, keras = load_tf()
    keras.utils.set_random_seed(config.seed)
    strategy = _strategy(tf, config.strategy)
    chief = _is_chief(strategy)
    info = info or initial_info(config, corpus)
    if chief and not resume:
        # config.json first: its format marker is what makes the folder provably a run.
        rundir.write_json(out / rundir.CONFIG, info)
        rundir.write_vocab(out, corpus.vocab)
    with strategy.scope():
        # The checkpoint brings the optimizer's slots; the learning rate is state.json's.
        model = (
            load_keras_model(
                out / state.checkpoint,
                "start the run over with --force instead of --resume",
                compile=True,
                units=config.units,
                vocab_size=len(corpus.vocab),
                layers=config.layers,
            )
            if resume
            else build_model(len(corpus.vocab), config)
        )
    model.optimizer.learning_rate.assign(state.lr)
    callbacks = [one_epoch_callback(keras)]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out / rundir.TENSORBOARD)))
    split = Split.of(corpus, config)
    return EpochRunner(out, corpus, config, state, info, model, split, chief, say, callbacks)


def _strategy(tf: Any, name: str) -> Any:
    """The tf.distribute strategy named by --strategy."""
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy(devices=None if gpus else ["/cpu:0"])
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _is_chief(strategy: Any) -> bool:
    """Only the chief writes the run directory under multi-worker training."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not os.environ.get("TF_CONFIG"):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0)
