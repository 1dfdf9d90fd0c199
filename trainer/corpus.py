"""The corpus and window arithmetic. numpy only: the windows are cut later, on the fly."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gru_edge.runtime.errors import CorpusError
from gru_edge.runtime.text import read_text_file
from gru_edge.runtime.vocabulary import Vocabulary


@dataclass(frozen=True)
class Corpus:
    """A normalised corpus, its vocabulary and its ids."""

    path: Path
    text: str
    vocab: Vocabulary  # sorted characters, index = id
    ids: np.ndarray  # int32, one per character
    sha256: str  # of the normalised text, UTF-8 encoded

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)


def load_corpus(path: Path) -> Corpus:
    """Read, normalise and encode a training corpus."""
    text = read_text_file(Path(path), "corpus")
    if not text.strip():
        raise CorpusError(f"corpus {path} is empty or only whitespace; give it some text")
    vocab = Vocabulary.from_text(text)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Corpus(Path(path), text, vocab, vocab.encode(text, dtype=np.int32), digest)


def split_point(n_chars: int, val_fraction: float) -> int:
    """Index of the first held-out character: the last ``val_fraction`` is validation."""
    return n_chars - int(round(n_chars * val_fraction))


def min_corpus_chars(seq_len: int, val_fraction: float) -> int:
    """The shortest corpus with one training window and, if held out, one validation window."""
    need = seq_len + 1
    n = need
    while True:
        cut = split_point(n, val_fraction)
        if cut >= need and (val_fraction == 0 or n - cut >= need):
            return n
        n += 1


def check_length(n_chars: int, seq_len: int, val_fraction: float) -> None:
    """Raise CorpusError if the corpus cannot give one training and one validation window."""
    needed = min_corpus_chars(seq_len, val_fraction)
    if n_chars < needed:
        raise CorpusError(
            f"corpus has {n_chars} characters, too short for --seq-len {seq_len} with "
            f"--val-fraction {val_fraction}: it needs at least {needed}; "
            "add text or lower --seq-len"
        )


def window_starts(n_chars: int, seq_len: int, step: int) -> np.ndarray:
    """Start of every window: ids[s:s+seq_len] predicts ids[s+seq_len] (the notebook's range)."""
    return np.arange(0, max(n_chars - seq_len, 0), step, dtype=np.int64)
