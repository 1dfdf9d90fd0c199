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

import csv
import io
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gru_edge.runtime.errors import RunDirError
from gru_edge.runtime.files import atomic_write
from gru_edge.runtime.vocabulary import Vocabulary, VocabularyError

MODEL = "model.keras"
VOCAB = "vocab.json"
CONFIG = "config.json"
HISTORY = "history.csv"
SAMPLES = "samples.txt"
STATE = "state.json"
TENSORBOARD = "tensorboard"
CHECKPOINT_GLOB = "checkpoint-epoch*.keras"
HISTORY_FIELDS = ("epoch", "loss", "val_loss", "val_bpc", "lr", "seconds")


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


def read_vocab(run_dir: Path, what: str) -> Vocabulary:
    """vocab.json, validated; ``what`` says what to do if it is missing or broken."""
    path = run_dir / VOCAB
    try:
        return Vocabulary.from_list(read_json(path, what))
    except VocabularyError as exc:
        raise RunDirError(f"{path}: {exc}; {what}") from None


def write_vocab(run_dir: Path, vocab: Vocabulary) -> None:
    write_json(run_dir / VOCAB, vocab.to_list())


def write_history(run_dir: Path, rows: Sequence[dict[str, float]]) -> None:
    """history.csv, rewritten whole: one row per completed epoch."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(run_dir / HISTORY, buffer.getvalue())


def append_samples(run_dir: Path, block: str) -> None:
    """Add one epoch's samples to samples.txt (rewritten atomically)."""
    path = run_dir / SAMPLES
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    atomic_write(path, previous + block)


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
    vocab: Vocabulary

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
    return Run(path, info, read_vocab(path, "re-run gru-edge train"))
