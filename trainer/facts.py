"""A run directory's facts, read without TensorFlow: what `gru-edge info RUN_DIR` shows and
what the Python API's ``train`` returns."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gru_edge.runtime.errors import RunDirError
from gru_edge.trainer import rundir

_LN2 = math.log(2)
_FIX = "pass the --out folder of gru-edge train (or a .onnx file)"


@dataclass(frozen=True)
class RunFacts:
    """What a run directory holds: its settings, how far it got, how good it is, its files."""

    run_dir: Path
    config: dict[str, Any]  # every hyperparameter (config.json's "config")
    corpus: dict[str, Any]  # path, sha256, chars, train_chars, val_chars
    vocab_size: int
    epochs_completed: int
    best_epoch: int | None
    best_val_loss: float | None  # nats per character; None without a validation split
    best_val_bpc: float | None  # bits per character
    last_train_bpc: float | None  # the last epoch's training loss in bits per character
    stop_reason: str | None  # None while training, or after an interruption
    training_seconds: float  # the epochs' fit time, summed
    model: Path | None  # model.keras, the best epoch's
    curves: Path | None  # curves.png
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("run_dir", "model", "curves"):
            data[key] = None if data[key] is None else str(data[key])
        data["history"] = [{k: _json_number(v) for k, v in r.items()} for r in self.history]
        return data


def read_facts(path: Path) -> RunFacts:
    """The facts of the run in ``path``; RunDirError for a folder that is not a run or whose
    history.csv is damaged."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"run directory not found: {path}; {_FIX}")
    if not (path / rundir.CONFIG).is_file():
        raise RunDirError(f"{path} is not a gru-edge run directory (no {rundir.CONFIG}); {_FIX}")
    info = rundir.read_info(path, _FIX)
    history = read_history(path)
    last = history[-1] if history else None
    model, curves = path / rundir.MODEL, path / rundir.CURVES
    return RunFacts(
        run_dir=path,
        config=info["config"],
        corpus={k: v for k, v in info["corpus"].items() if k != "val_text_start"},
        vocab_size=int(info.get("vocab_size", 0)),
        epochs_completed=len(history),
        best_epoch=info.get("best_epoch") or None,
        best_val_loss=info.get("best_val_loss"),
        best_val_bpc=info.get("best_val_bpc"),
        last_train_bpc=last["loss"] / _LN2 if last else None,
        stop_reason=info.get("stop_reason"),
        training_seconds=round(sum(r["seconds"] for r in history), 3),
        model=model if model.is_file() else None,
        curves=curves if curves.is_file() else None,
        history=history,
    )


def read_history(path: Path) -> list[dict[str, float]]:
    """history.csv's rows as numbers ([] before the first epoch); RunDirError if damaged."""
    file = path / rundir.HISTORY
    if not file.exists():
        return []
    try:
        with file.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != rundir.HISTORY_FIELDS:
                raise ValueError(f"columns {reader.fieldnames}, not {list(rundir.HISTORY_FIELDS)}")
            rows = []
            for line, row in enumerate(reader, start=2):
                try:
                    rows.append({k: float(row[k]) for k in rundir.HISTORY_FIELDS})
                except (TypeError, ValueError):
                    raise ValueError(f"line {line} is not a row of numbers") from None
                if rows[-1]["epoch"] != len(rows):
                    raise ValueError(f"line {line} is epoch {row['epoch']}, not {len(rows)}")
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise RunDirError(
            f"{file} is damaged ({exc}); re-run gru-edge train (or --resume it, which rewrites it)"
        ) from None
    for row in rows:
        row["epoch"] = int(row["epoch"])
    return rows


def format_facts(facts: RunFacts) -> str:
    """The text form: aligned ``key  value`` lines, like `gru-edge info MODEL`."""
    config, corpus = facts.config, facts.corpus
    bpc = "-" if facts.best_val_bpc is None else f"{facts.best_val_bpc:.3f}"
    loss = "-" if facts.best_val_loss is None else f"{facts.best_val_loss:.4f}"
    train_bpc = "-" if facts.last_train_bpc is None else f"{facts.last_train_bpc:.3f}"
    settings = ", ".join(f"{k} {_show(v)}" for k, v in config.items())
    rows = [
        ("run", str(facts.run_dir)),
        (
            "corpus",
            f"{corpus.get('path')} ({corpus.get('chars', 0):,} chars, "
            f"{corpus.get('val_chars', 0):,} held out), vocabulary {facts.vocab_size}",
        ),
        (
            "epochs",
            f"{facts.epochs_completed} of {config.get('epochs')} "
            f"({facts.training_seconds:.1f} s of training)",
        ),
        ("best epoch", f"{facts.best_epoch or '-'}: val_loss {loss}, {bpc} bits/char"),
        ("last epoch", f"training {train_bpc} bits/char"),
        ("stopped", facts.stop_reason or "not finished (interrupted, or training now)"),
        ("model", str(facts.model) if facts.model else "none yet"),
        ("curves", str(facts.curves) if facts.curves else "none (a run from before curves.png)"),
        ("config", settings),
    ]
    width = max(len(k) for k, _ in rows) + 2
    return "\n".join(f"{k:<{width}}{v}" for k, v in rows)


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _json_number(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value
