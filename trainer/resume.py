"""Training state between epochs (state.json) and picking a run up again with --resume."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from gru_edge.runtime.errors import RunDirError, UsageError
from gru_edge.trainer import rundir
from gru_edge.trainer.config import TrainConfig, TrainOptions
from gru_edge.trainer.corpus import Corpus

# Options that --resume may change; every other one must match the run's config.
RESUMABLE = frozenset({"epochs", "patience", "samples"})
START_OVER = "start the run over with --force (without --resume)"


@dataclass
class TrainState:
    """state.json: everything --resume needs besides the checkpoint's weights and slots."""

    epoch: int = 0  # completed epochs
    checkpoint: str | None = None
    lr: float = 0.0
    best: float = math.inf  # best monitored value, for model.keras
    best_epoch: int = 0
    plateau_best: float = math.inf  # ReduceLROnPlateau's own reference (min_delta applies)
    wait: int = 0
    stale: int = 0  # early stopping's counter: epochs since the best one
    history: list[dict[str, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("best", "plateau_best"):  # JSON has no infinity
            data[key] = None if math.isinf(data[key]) else data[key]
        return data

    @classmethod
    def from_json(cls, data: Any, source: Path) -> TrainState:
        """The state in ``data``, checked: its checkpoint name is one gru-edge writes (the file
        is loaded and later deleted, so a path elsewhere must never get through)."""
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) - names:
            raise RunDirError(f"--resume: {source} is not a gru-edge training state; {START_OVER}")
        if isinstance(data.get("epoch"), int) and isinstance(data.get("best_epoch"), int):
            # A state.json from before early stopping: its counter follows from the best epoch.
            data = {"stale": data["epoch"] - data["best_epoch"], **data}
        state = cls(**data)
        for key in ("best", "plateau_best"):
            if getattr(state, key) is None:
                setattr(state, key, math.inf)
        problem = state._problem()
        if problem:
            raise RunDirError(f"--resume: {source} has {problem}; {START_OVER}")
        return state

    def _problem(self) -> str | None:
        def number(value: Any) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool)

        if not (isinstance(self.epoch, int) and self.epoch >= 1):
            return f"epoch {self.epoch!r}, not a count of completed epochs"
        if self.checkpoint != rundir.checkpoint_name(self.epoch):
            return f"checkpoint {self.checkpoint!r}, not {rundir.checkpoint_name(self.epoch)!r}"
        if not all(number(v) for v in (self.lr, self.best, self.plateau_best, self.best_epoch)):
            return "a learning rate or best value that is not a number"
        counters = (self.wait, self.stale)
        if not (all(isinstance(c, int) for c in counters) and isinstance(self.history, list)):
            return "a plateau or patience counter or history of the wrong type"
        return None


def load_for_resume(
    out: Path, corpus: Corpus, options: TrainOptions
) -> tuple[TrainConfig, TrainState, dict[str, Any]]:
    """The run's config (with the RESUMABLE options applied), state and config.json content.

    Refuses another corpus, another vocabulary, a changed hyperparameter or a missing checkpoint.
    """
    check_resumable(out)
    hint = f"the run cannot be resumed; {START_OVER}"
    info = rundir.read_info(out, hint)
    state = TrainState.from_json(rundir.read_json(out / rundir.STATE, hint), out / rundir.STATE)
    vocab = rundir.read_vocab(out, hint)
    if info["corpus"]["sha256"] != corpus.sha256:
        raise RunDirError(
            f"--resume: {corpus.path} is not the corpus this run was trained on "
            f"({info['corpus']['path']}, sha256 {info['corpus']['sha256'][:12]}...); "
            "pass the same corpus or start a new run"
        )
    if vocab != corpus.vocab:
        raise RunDirError(f"--resume: the vocabulary of {corpus.path} differs from the run's")
    try:
        config = TrainConfig.from_dict(info["config"])
        config.validate()
    except (TypeError, UsageError) as exc:
        raise RunDirError(
            f"--resume: {out / rundir.CONFIG} holds a bad config ({exc}); {hint}"
        ) from None
    for key, value in options.given().items():
        if key not in RESUMABLE and getattr(config, key) != value:
            flag = "--" + key.replace("_", "-")
            raise UsageError(
                f"--resume keeps the run's settings: {flag} {value} differs from the run's "
                f"{getattr(config, key)}; drop {flag} or start a new run"
            )
    config = options.apply(config)
    config.validate()
    info["config"] = config.to_dict()
    if not (out / state.checkpoint).is_file():
        raise RunDirError(
            f"--resume: checkpoint {state.checkpoint} is missing from {out}; {START_OVER}"
        )
    rundir.check_no_symlinks(out)
    return config, state, info


def check_resumable(out: Path) -> None:
    """RunDirError unless ``out`` holds a run with at least one completed epoch; the advice
    matches what a fresh start on the same folder says (trainer/rundir.py check_fresh)."""
    if rundir.is_run(out) and not (out / rundir.STATE).exists():
        raise RunDirError(
            f"--resume: {out} holds a run that completed no epoch (no {rundir.STATE}), so "
            f"there is nothing to resume; {START_OVER}"
        )
    if not (out / rundir.STATE).exists():
        raise RunDirError(
            f"--resume: {out} holds no resumable run (no {rundir.STATE}); "
            "drop --resume to start a new run there"
        )
