"""The run directory: what a training run leaves behind, and the checks before touching one.

model.keras   best model so far (on val_loss, or loss without a validation split)
vocab.json    JSON array of the characters, index = id
config.json   hyperparameters, text policy, corpus facts, versions, best epoch and val_loss
history.csv   one row per completed epoch
samples.txt   generated text after each epoch
state.json    what --resume needs: epoch counter, learning rate, best value, checkpoint name
checkpoint-epochNNN.keras   the last completed epoch, with optimizer state
tensorboard/  with --tensorboard
train.lock    while a training writes the run (see trainer/lock.py)
Every file is written to a temporary file beside it and renamed into place.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gru_edge.runtime.errors import RunDirError
from gru_edge.runtime.files import atomic_write
from gru_edge.runtime.vocabulary import Vocabulary, VocabularyError
from gru_edge.trainer.lock import LOCK, check_not_training

MODEL = "model.keras"
VOCAB = "vocab.json"
CONFIG = "config.json"
HISTORY = "history.csv"
SAMPLES = "samples.txt"
STATE = "state.json"
CURVES = "curves.png"  # trainer/curves.py
TENSORBOARD = "tensorboard"
HISTORY_FIELDS = ("epoch", "loss", "val_loss", "val_bpc", "lr", "seconds")
# config.json's marker: only a folder whose config.json carries it is ever replaced by --force.
RUN_FORMAT = "gru-edge-run/1"
CHECKPOINT = re.compile(r"checkpoint-epoch\d{3,}\.keras")
# What runtime.files.atomic_path leaves beside one of our files when a run is killed mid-write:
# ".NAME.<8 mkstemp characters>.tmp<NAME's suffix>".
_TEMP = re.compile(
    r"\.(?:(?:model|checkpoint-epoch\d{3,})\.keras\.[a-z0-9_]{8}\.tmp\.keras"
    r"|(?:vocab|config|state)\.json\.[a-z0-9_]{8}\.tmp\.json"
    r"|history\.csv\.[a-z0-9_]{8}\.tmp\.csv|samples\.txt\.[a-z0-9_]{8}\.tmp\.txt"
    r"|curves\.png\.[a-z0-9_]{8}\.tmp\.png)"
)


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


# A write that fails for want of room or rights, not for a bug of ours.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}


@contextlib.contextmanager
def write_errors(out: Path, command: str) -> Iterator[None]:
    """A full disk (or quota, a read-only or failing disk) ends the run with one line. Every
    file is written to a temporary file and renamed, state.json last: the run keeps its
    completed epochs."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _WRITE_ERRNOS:
            raise
        again = f"{command} --resume" if (out / STATE).exists() else command
        raise RunDirError(
            f"cannot write {exc.filename or out}: {exc.strerror}; the run in {out} keeps its "
            f"completed epochs; free some space, then: {again}"
        ) from None


def is_run(path: Path) -> bool:
    """Whether ``path`` provably holds a gru-edge run: a config.json carrying our format marker
    (the first file a run writes). Files that merely share our names prove nothing."""
    try:
        info = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("format") == RUN_FORMAT


def check_fresh(out: Path, force: bool) -> bool:
    """Check that a new run may go to ``out``; True when an old run there is to be replaced.

    Never overwrites another run silently, and never replaces a folder that is not provably a
    gru-edge run (see is_run), even with --force.
    """
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} is a file; give a folder for the run")
    try:
        if not out.exists() or all(_is_leftover(p.name) for p in out.iterdir()):
            return False
    except OSError as exc:
        raise RunDirError(f"cannot read --out {out}: {exc.strerror}") from None
    if not is_run(out):
        raise RunDirError(
            f"--out {out} is not empty and holds no gru-edge run (no {CONFIG} with "
            f'"format": "{RUN_FORMAT}"), so even --force leaves it alone; '
            "choose a new or empty folder"
        )
    if force:
        return True
    if not (out / STATE).exists():
        raise RunDirError(
            f"--out {out} holds a run that completed no epoch (no {STATE}); "
            "add --force to start it over"
        )
    raise RunDirError(
        f"--out {out} already holds a run; add --resume to continue it or --force to replace it"
    )


def make_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create --out {out}: {exc.strerror}") from None


def clear_run(out: Path) -> None:
    """Delete the files a run writes, and only those: a user's own files in the folder (or in
    tensorboard/) stay. config.json goes last, so an interrupted clear is still a run."""
    try:
        for name in sorted(_own_files(out), key=lambda name: name == CONFIG):
            (out / name).unlink(missing_ok=True)
        board = out / TENSORBOARD
        folders = [] if board.is_symlink() else [board / "train", board / "validation", board]
        for folder in folders[:2]:
            if folder.is_dir() and not folder.is_symlink():
                for events in folder.glob("events.out.tfevents.*"):
                    events.unlink()
        for folder in folders:
            with contextlib.suppress(OSError):  # not there, a link, or holding a user's files
                folder.rmdir()
    except OSError as exc:
        raise RunDirError(
            f"cannot replace the run in {out}: {exc.filename}: {exc.strerror}"
        ) from None


def check_no_symlinks(out: Path) -> None:
    """Refuse a run whose own files are symlinks: a training rewrites them, and would
    overwrite whatever they point to."""
    links = [name for name in _own_files(out) if (out / name).is_symlink()]
    if links:
        raise RunDirError(
            f"{out} holds {', '.join(links)} as symlinks; training rewrites these files and "
            "would overwrite what they point to; replace them with the files themselves"
        )


def _own_files(out: Path) -> list[str]:
    """The names of the files a run writes that are in ``out`` now (tensorboard/ aside)."""
    names = [MODEL, VOCAB, CONFIG, HISTORY, SAMPLES, STATE, CURVES]
    names += sorted(p.name for p in out.iterdir() if CHECKPOINT.fullmatch(p.name))
    return [name for name in names if (out / name).is_symlink() or (out / name).exists()]


def clean_stale_temps(out: Path) -> int:
    """Delete temporary files a killed run left (only under the run's lock: none is in use)."""
    stale = [p for p in out.iterdir() if _TEMP.fullmatch(p.name)]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def _is_leftover(name: str) -> bool:
    """A file gru-edge leaves in a run folder that is not yet a run: its lock, its temp files."""
    return name == LOCK or bool(_TEMP.fullmatch(name))


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
    """Read a finished run's config and vocabulary for export or bench; refuses a run that a
    training is writing now."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(
            f"run directory not found: {path}; pass the --out folder of gru-edge train"
        )
    check_not_training(path, "try again when the training ends")
    for name in (MODEL, VOCAB, CONFIG):
        if not (path / name).is_file():
            raise RunDirError(
                f"{path} has no {name}; it is not a finished gru-edge run "
                "(train it, or --resume it until one epoch completes)"
            )
    info = read_info(path, "re-run gru-edge train")
    return Run(path, info, read_vocab(path, "re-run gru-edge train"))


def read_info(run_dir: Path, what: str) -> dict[str, Any]:
    """config.json, checked for the fields export and --resume read; ``what`` is the fix."""
    path = run_dir / CONFIG
    info = read_json(path, what)
    if not isinstance(info, dict) or info.get("format") != RUN_FORMAT:
        raise RunDirError(
            f'{path} has no "format": "{RUN_FORMAT}"; it was not written by gru-edge train; {what}'
        )
    config, corpus = info.get("config"), info.get("corpus")
    problems = [
        key
        for key, ok in (
            ("config", isinstance(config, dict)),
            ("config.seq_len", isinstance(config, dict) and _positive_int(config.get("seq_len"))),
            ("config.units", isinstance(config, dict) and _positive_int(config.get("units"))),
            # Absent in runs from before --layers: one GRU.
            ("config.layers", isinstance(config, dict) and _positive_int(config.get("layers", 1))),
            ("text_policy", isinstance(info.get("text_policy"), str)),
            ("corpus.sha256", isinstance(corpus, dict) and isinstance(corpus.get("sha256"), str)),
            ("corpus.chars", isinstance(corpus, dict) and _positive_int(corpus.get("chars"))),
        )
        if not ok
    ]
    if problems:
        raise RunDirError(f"{path} lacks or garbles {', '.join(problems)}; {what}")
    return info


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
