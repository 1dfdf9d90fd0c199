"""`gru-edge train` as a library call: check everything, lock the run directory, claim it (a new
run, or the one to resume), then run the epochs (trainer/epochs.py) under the lock.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gru_edge.runtime.errors import TrainingInterrupted, UsageError
from gru_edge.trainer import rundir
from gru_edge.trainer.cluster import (
    ClusterError,
    Sync,
    Worker,
    check_open_port,
    check_timeout,
    collective_errors,
    joins_cluster,
    local_strategy,
    make_strategy,
    this_worker,
)
from gru_edge.trainer.config import DEFAULT_WORKER_TIMEOUT, TrainConfig, TrainOptions, check_memory
from gru_edge.trainer.corpus import Corpus, check_length, load_corpus
from gru_edge.trainer.curves import check_plotting
from gru_edge.trainer.epochs import EpochRunner, Split, check_whole_batches, one_epoch_callback
from gru_edge.trainer.keras_files import load_keras_model
from gru_edge.trainer.lock import training_lock
from gru_edge.trainer.model import build_model
from gru_edge.trainer.resume import TrainState, check_resumable, load_for_resume
from gru_edge.trainer.runinfo import initial_info, stop_reason, stopped_early
from gru_edge.trainer.tf_env import load_tf


@dataclass
class TrainResult:
    """What a finished training call reports."""

    run_dir: Path
    epochs_completed: int
    best_epoch: int
    best_value: float  # val_loss, or loss without a validation split
    history: list[dict[str, float]] = field(default_factory=list)
    chief: bool = True  # False: a non-chief worker, whose run_dir is already removed
    stop_reason: str = ""  # why training ended: early stopping or the last epoch


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
    worker_timeout: float = DEFAULT_WORKER_TIMEOUT,
    allow_open_port: bool = False,
) -> TrainResult:
    """Train (or resume) a run on ``corpus_path`` into the run directory ``out``.

    ``options`` are the settings the user gave; the rest keep their defaults (or, with
    ``resume``, the run's saved values). ``callbacks`` are extra Keras callbacks (tests use one
    to interrupt a run). The run directory is locked for the whole call (trainer/lock.py).
    In a multi-worker cluster only the chief does that; every other worker follows the chief's
    run in a private temporary folder (see _follow), and ``worker_timeout`` bounds how long a
    worker waits for the others. A multi-worker run opens TensorFlow's unauthenticated port
    on every interface: it needs ``allow_open_port`` (cluster.check_open_port).
    """
    options, out = options or TrainOptions(), Path(out)
    say = (lambda _msg: None) if quiet else log
    if resume and force:
        raise UsageError("--resume and --force contradict each other; pick one")
    check_timeout(worker_timeout)
    worker = _cluster_worker(options)
    if worker is not None and joins_cluster(worker, options.strategy, resume, out):
        say(check_open_port(worker, allow_open_port))
    corpus = load_corpus(Path(corpus_path))
    if worker is not None and not worker.chief:
        return _follow(corpus, options, worker, resume, say, quiet, callbacks, worker_timeout)
    fresh = None if resume else _fresh_config(corpus, options)
    if fresh is None:
        check_resumable(out)
    else:
        rundir.check_fresh(out, force)
    load_tf("gru-edge train")  # before anything touches the run directory
    check_plotting("gru-edge train")
    made = not resume and not out.exists()
    if not resume:
        rundir.make_dir(out)
    try:
        with (
            training_lock(out),
            rundir.write_errors(out, f"gru-edge train {corpus_path} --out {out}"),
        ):
            config, state, info = _claim(out, corpus, options, fresh, force, say)
            run = _start(out, corpus, config, state, info, resume, say, tensorboard, worker_timeout)
            again = f"gru-edge train {corpus_path} --out {out} --resume"
            again += " on every worker" if run.sync else ""
            _epochs(run, callbacks, quiet, worker_timeout, again)
    except BaseException:
        if made:  # a run that failed before its first file (e.g. its cluster never formed)
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    reason = stop_reason(state, config, run.info["monitor"]) or ""
    return TrainResult(out, state.epoch, state.best_epoch, state.best, state.history, True, reason)


def _epochs(
    run: EpochRunner, callbacks: list[Any] | None, quiet: bool, timeout: float, again: str
) -> None:
    """The epoch loop, from the state's epoch to the config's; ``again`` is the command that
    continues the run, for the message after Ctrl-C."""
    config, state = run.config, run.state
    where = run.out if run.sync is None or run.sync.chief else "the chief's run directory"
    fit_callbacks = [*(callbacks or []), *run.callbacks]
    run.say(f"training on {run.corpus.path} ({run.split.describe()}), seed {config.seed}")
    # The progress bar with ETA on a terminal; in a log file, Keras' one line per epoch
    # instead of hundreds of carriage-return updates.
    verbose = 0 if quiet else (1 if sys.stdout.isatty() else 2)
    tf, _ = load_tf()
    errors = collective_errors(tf, timeout) if run.sync else contextlib.nullcontext()
    try:
        with errors:
            for epoch in range(state.epoch, config.epochs):
                run.epoch(epoch, fit_callbacks, verbose)
                # The counter follows the chief's broadcast metrics: every worker stops here.
                if stopped_early(state, config):
                    break
    except KeyboardInterrupt:
        raise TrainingInterrupted(
            f"interrupted during epoch {state.epoch + 1}; {where} keeps the {state.epoch} "
            f"completed epoch(s); continue with: {again}"
        ) from None


def _cluster_worker(options: TrainOptions) -> Worker | None:
    """This process's task in TF_CONFIG's cluster, or None when it trains on its own."""
    worker = this_worker()
    if worker is None or worker.chief or options.strategy in (None, "multi-worker"):
        return worker
    raise UsageError(
        f"TF_CONFIG makes this process {worker.task} of a cluster, which only --strategy "
        f"multi-worker uses, got --strategy {options.strategy}; unset TF_CONFIG to train alone"
    )


def _follow(
    corpus: Corpus,
    options: TrainOptions,
    worker: Worker,
    resume: bool,
    say: Callable[[str], None],
    quiet: bool,
    callbacks: list[Any] | None,
    timeout: float,
) -> TrainResult:
    """A non-chief worker: the chief's run (config, and with ``resume`` its state and
    checkpoint) comes over the cluster; this worker trains it in a private temporary folder,
    removed at the end, and never touches --out (which may be the chief's, on one machine)."""
    tf, _ = load_tf("gru-edge train")
    with tempfile.TemporaryDirectory(prefix="gru-edge-worker-") as tmp:
        work = Path(tmp)
        strategy = make_strategy(tf, timeout, worker, say)
        sync = Sync(tf, strategy, chief=False)
        with collective_errors(tf, timeout):
            info, state = _share(sync, work, None, None, resume)
        config = _chief_config(info, corpus, options, worker)
        say(f"{worker.task} of {worker.workers}: following the chief; its files go to {work}")
        run = _start(work, corpus, config, state, info, resume, say, False, timeout, strategy)
        _epochs(run, callbacks, quiet, timeout, "the same command plus --resume on every worker")
    reason = stop_reason(state, config, info["monitor"]) or ""
    return TrainResult(
        work, state.epoch, state.best_epoch, state.best, state.history, False, reason
    )


def _share(
    sync: Sync, folder: Path, info: dict[str, Any] | None, state: TrainState | None, resume: bool
) -> tuple[dict[str, Any], TrainState]:
    """The chief's config.json content and state on every worker, and with ``resume`` its
    checkpoint file in every other worker's ``folder``."""
    payload = None
    if sync.chief:
        assert info is not None and state is not None
        payload = json.dumps({"info": info, "state": state.to_json()}).encode("utf-8")
    received = json.loads(sync.data(payload).decode("utf-8"))
    info = received["info"]
    if state is None:
        config = TrainConfig.from_dict(info["config"])
        state = (
            TrainState.from_json(received["state"], Path("the chief's state.json"))
            if resume
            else TrainState(lr=config.lr)
        )
    if resume:
        name = state.checkpoint
        data = sync.data((folder / name).read_bytes() if sync.chief else None)
        if not sync.chief:
            (folder / name).write_bytes(data)
    return info, state


def _chief_config(
    info: dict[str, Any], corpus: Corpus, options: TrainOptions, worker: Worker
) -> TrainConfig:
    """The chief's config, checked against this worker's corpus and options: every worker
    must give the same command, or the workers would train on different data."""
    if info["corpus"]["sha256"] != corpus.sha256:
        raise ClusterError(
            f"{worker.task}: {corpus.path} is not the chief's corpus ({info['corpus']['path']}, "
            f"sha256 {info['corpus']['sha256'][:12]}...); give every worker the same corpus"
        )
    config = TrainConfig.from_dict(info["config"])
    for key, value in options.given().items():
        if getattr(config, key) != value:
            flag = "--" + key.replace("_", "-")
            raise UsageError(
                f"{worker.task}: {flag} {value} differs from the chief's {getattr(config, key)}; "
                "give every worker the same gru-edge train command"
            )
    return config


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
    if stopped_early(state, config):
        raise UsageError(
            f"the run in {out} stopped early after epoch {state.epoch}: no better value in the "
            f"{state.stale} epochs after epoch {state.best_epoch}; pass a larger --patience "
            "(0 trains every epoch) to train further"
        )
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
    timeout: float,
    strategy: Any = None,
) -> EpochRunner:
    """Seed, strategy, the new run's first files, and the model (built, or the checkpoint).

    ``strategy`` is a non-chief worker's, made before its config arrived; a chief makes its
    own here and hands the run to the other workers (_share).
    """
    tf, keras = load_tf()
    split = Split.of(corpus, config)
    multi_worker = strategy is not None or (
        config.strategy == "multi-worker" and this_worker() is not None
    )
    # More than one worker splits each batch between them: whole batches only (trainer/data.py).
    whole = strategy is not None or (multi_worker and this_worker().workers > 1)
    if whole:
        check_whole_batches(split, config)  # before the cluster forms: a plain error
    sync = None
    if strategy is not None:
        sync = Sync(tf, strategy, chief=False)
    elif multi_worker:
        strategy = make_strategy(tf, timeout, this_worker(), say)
        sync = Sync(tf, strategy, chief=True)
    else:
        strategy = local_strategy(tf, config.strategy)
    info = info or initial_info(config, corpus)
    # Building the model broadcasts the chief's initial weights: a lost worker shows up here too.
    errors = collective_errors(tf, timeout) if sync else contextlib.nullcontext()
    with errors:
        if sync is not None and sync.chief:
            _share(sync, out, info, state, resume)
        keras.utils.set_random_seed(config.seed)
        if not resume:
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
    return EpochRunner(out, corpus, config, state, info, model, split, say, callbacks, sync, whole)
