"""The run directory: what a training run leaves behind, and the checks before touching one.

model.keras   best model so far (on val_loss, or loss without a validation split)
vocab.json    JSON array of the characters, index = id
config.json   hyperparameters, text policy, corpus facts, versions, best epoch and val_loss
history.csv   one row per completed epoch
samples.txt   generated text after each epoch
state.json    what --resume needs: epoch counter, learning rate, best value, checkpoint name
checkpoint-epochNNN.keras   the last completed epoch, with optimizer state
tensorboard/  with --tensorboard
Every file is written to a temporary file beside it and renamed into place.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.errors import RunDirError
from runtime.files import atomic_write

MODEL = "model.keras"
VOCAB = "vocab.json"
CONFIG = "config.json"
HISTORY = "history.csv"
SAMPLES = "samples.txt"
STATE = "state.json"
TENSORBOARD = "tensorboard"
CHECKPOINT_GLOB = "checkpoint-epoch*.keras"


def checkpoint_name(epoch: int) -> str:
    return f"checkpoint-epoch{epoch:03d}.keras"


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing; {what}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path} is not valid JSON ({exc}); {what}") from None


def is_run(path: Path) -> bool:
    return (path / CONFIG).exists() or (path / STATE).exists()


def prepare_fresh(out: Path, force: bool) -> None:
    """Make ``out`` ready for a new run; never overwrite another run silently."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} is a file; give a folder for the run")
    if out.exists() and any(out.iterdir()):
        if not is_run(out):
            raise RunDirError(
                f"--out {out} is not empty and holds no gru-edge run; choose a new or empty folder"
            )
        if not force:
            raise RunDirError(
                f"--out {out} already holds a run; add --resume to continue it "
                "or --force to replace it"
            )
        clear_run(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create --out {out}: {exc.strerror}") from None


def clear_run(out: Path) -> None:
    """Delete the files a run writes (and only those)."""
    for name in (MODEL, VOCAB, CONFIG, HISTORY, SAMPLES, STATE):
        (out / name).unlink(missing_ok=True)
    for checkpoint in out.glob(CHECKPOINT_GLOB):
        checkpoint.unlink()
    shutil.rmtree(out / TENSORBOARD, ignore_errors=True)


@dataclass(frozen=True)
class Run:
    """A finished (or interrupted) run, as the exporter reads it."""

    path: Path
    info: dict[str, Any]  # config.json
    vocab: list[str]

    @property
    def model_path(self) -> Path:
        return self.path / MODEL


def load_run(path: Path) -> Run:
    """Read a run directory's config and vocabulary, checking the files exist."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(
            f"run directory not found: {path}; pass the --out folder of gru-edge train"
        )
    for name in (MODEL, VOCAB, CONFIG):
        if not (path / name).is_file():
            raise RunDirError(
                f"{path} has no {name}; it is not a finished gru-edge run "
                "(train it, or --resume it until one epoch completes)"
            )
    info = read_json(path / CONFIG, "re-run gru-edge train")
    vocab = read_json(path / VOCAB, "re-run gru-edge train")
    if not isinstance(vocab, list) or not all(isinstance(c, str) and len(c) == 1 for c in vocab):
        raise RunDirError(
            f"{path / VOCAB} is not a JSON array of characters; re-run gru-edge train"
        )
    return Run(path, info, vocab)
