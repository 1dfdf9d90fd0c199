"""config.json: what a run is (hyperparameters, corpus, versions) and how far it got."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import numpy as np

from gru_edge.runtime.text import TEXT_POLICY
from gru_edge.runtime.version import __version__
from gru_edge.trainer.config import TrainConfig
from gru_edge.trainer.corpus import Corpus, split_point
from gru_edge.trainer.resume import TrainState
from gru_edge.trainer.rundir import RUN_FORMAT
from gru_edge.trainer.tf_env import load_tf

LN2 = math.log(2)
# The exporter's stateful parity rollout runs over this much real text from the run.
PROBE_CHARS, MIN_PROBE_CHARS = 1000, 500


def initial_info(config: TrainConfig, corpus: Corpus) -> dict[str, Any]:
    """config.json as a new run writes it, before its first epoch."""
    tf, keras = load_tf()
    chars = len(corpus.ids)
    cut = split_point(chars, config.val_fraction)
    held_out = chars - cut
    return {
        "format": RUN_FORMAT,
        "config": config.to_dict(),
        "text_policy": TEXT_POLICY,
        "vocab_size": len(corpus.vocab),
        "corpus": {
            "path": str(corpus.path),
            "sha256": corpus.sha256,
            "chars": chars,
            "train_chars": cut,
            "val_chars": held_out,
            "val_text_start": cut,
        },
        # Held-out text when there is enough of it, else the corpus' end: the run directory
        # is self-contained for the exporter.
        "probe_text": corpus.decode(cut, cut + PROBE_CHARS)
        if held_out >= MIN_PROBE_CHARS
        else corpus.decode(-PROBE_CHARS),
        "monitor": "val_loss" if config.val_fraction > 0 else "loss",
        "versions": {
            "gru_edge": __version__,
            "tensorflow": tf.__version__,
            "tf_keras": keras.__version__,
            "numpy": np.__version__,
        },
        "created": now(),
        "epochs_completed": 0,
        "best_epoch": None,
        "best_val_loss": None,
        "best_val_bpc": None,
    }


def stopped_early(state: TrainState, config: TrainConfig) -> bool:
    """Whether early stopping ends the run: --patience epochs without a better value."""
    return config.patience > 0 and state.stale >= config.patience


def stop_reason(state: TrainState, config: TrainConfig, monitor: str) -> str | None:
    """Why the run ended, in words; None while it has epochs to go."""
    if stopped_early(state, config):
        return (
            f"stopped early: no better {monitor} in the {state.stale} epochs after epoch "
            f"{state.best_epoch} (--patience {config.patience})"
        )
    if state.epoch >= config.epochs:
        return f"completed all {config.epochs} epochs (--epochs {config.epochs})"
    return None


def record_progress(info: dict[str, Any], state: TrainState, config: TrainConfig) -> None:
    """Update ``info`` with the epochs completed, the best value so far and why it stopped."""
    held_out = config.val_fraction > 0
    info.update(
        stop_reason=stop_reason(state, config, info.get("monitor", "val_loss")),
        epochs_completed=state.epoch,
        best_epoch=state.best_epoch,
        best_val_loss=state.best if held_out else None,
        best_val_bpc=state.best / LN2 if held_out else None,
        best_loss=None if held_out else state.best,
        updated=now(),
    )


def now() -> str:
    """UTC, ISO 8601, whole seconds."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()
