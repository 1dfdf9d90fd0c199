"""The corpus and window arithmetic. numpy only: the windows are cut later, on the fly.

Memory grows with the corpus' characters, not with its text: the file is read, normalised and
encoded a chunk at a time, and the ids (one byte a character for up to 256 distinct
characters) live in a memory-mapped temporary file: page cache, resident only where training
has read and reclaimable. The text is never held whole; what needs some decodes it from the ids.
"""

from __future__ import annotations

import codecs
import hashlib
import mmap
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from gru_edge.runtime.errors import CorpusError
from gru_edge.runtime.files import not_a_file
from gru_edge.runtime.text import CHUNK_BYTES, iter_text_file
from gru_edge.runtime.vocabulary import Vocabulary, smallest_dtype

_CODE_POINTS = 0x110000


@dataclass(frozen=True)
class Corpus:
    """A normalised corpus, its vocabulary and its ids."""

    path: Path
    vocab: Vocabulary  # sorted characters, index = id
    ids: np.ndarray  # one per character, read-only, dtype smallest_dtype(len(vocab))
    sha256: str  # of the normalised text, UTF-8 encoded

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def decode(self, start: int = 0, stop: int | None = None) -> str:
        """The normalised text of characters ``start:stop`` (Python slice rules)."""
        return self.vocab.decode(self.ids[start:stop])


def load_corpus(path: Path, *, chunk_bytes: int = CHUNK_BYTES) -> Corpus:
    """Read, normalise and encode a training corpus, ``chunk_bytes`` of the file at a time.

    Two passes: the first normalises the file into a temporary UTF-8 copy while it collects the
    vocabulary and the hash; the second encodes that copy, whose vocabulary is now known.
    Reading the copy rather than the file again keeps both passes on the same text even if
    the file changes meanwhile. No temporary file outlives this call by name: the
    ids' file is nameless and lives as long as its mapping (``Corpus.ids``).
    """
    path = Path(path)
    _check_regular(path)
    try:
        with tempfile.TemporaryFile() as copy:
            scan = _Scan()
            for piece in iter_text_file(path, "corpus", chunk_bytes):
                copy.write(scan.add(piece))
            if not scan.has_text:
                raise CorpusError(f"corpus {path} is empty or only whitespace; give it some text")
            vocab = Vocabulary(scan.characters())
            copy.seek(0)
            ids = _encode(copy, vocab, chunk_bytes)
    except OSError as exc:  # the source file's errors are CorpusErrors already: this is TMPDIR
        raise CorpusError(
            f"cannot write the encoded corpus to the temporary folder {tempfile.gettempdir()}: "
            f"{exc.strerror}; free some space there or point TMPDIR at a folder with room"
        ) from None
    return Corpus(path, vocab, ids, scan.digest.hexdigest())


def _check_regular(path: Path) -> None:
    """CorpusError for a FIFO, a device or a socket: reading one blocks until a writer comes
    (or never ends, like /dev/zero) with nothing said; a missing file or a folder is left to
    the reader, which names those."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    kind = None if stat.S_ISDIR(mode) else not_a_file(mode)
    if kind:
        raise CorpusError(
            f"corpus {path} is {kind}, not a regular file; training reads a corpus to its end: "
            "save the text to a file and pass that"
        )


class _Scan:
    """The first pass: hash and character set of the normalised text, piece by piece."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.has_text = False  # anything but whitespace
        self._seen = np.zeros(_CODE_POINTS, dtype=bool)

    def add(self, piece: str) -> bytes:
        """Take in one normalised piece; return its UTF-8 encoding."""
        data = piece.encode("utf-8")
        self.digest.update(data)
        self.has_text = self.has_text or not piece.isspace()
        self._seen[_code_points(piece)] = True
        return data

    def characters(self) -> list[str]:
        """The sorted set of characters seen (code point order is Python's string order)."""
        return [chr(code) for code in np.flatnonzero(self._seen)]


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def _encode(copy: BinaryIO, vocab: Vocabulary, chunk_bytes: int) -> np.ndarray:
    """The second pass: the normalised UTF-8 copy as ids, memory-mapped from a temporary file."""
    dtype = smallest_dtype(len(vocab))
    lookup = np.zeros(_CODE_POINTS, dtype=dtype)
    lookup[_code_points("".join(vocab))] = np.arange(len(vocab), dtype=dtype)
    decoder = codecs.getincrementaldecoder("utf-8")()
    with tempfile.TemporaryFile() as out:
        while True:
            block = copy.read(chunk_bytes)
            out.write(lookup[_code_points(decoder.decode(block, final=not block))].tobytes())
            if not block:
                break
        out.flush()
        # mmap keeps its own handle: the mapping outlives the (already unlinked) file's handle.
        mapped = mmap.mmap(out.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(mapped, dtype=dtype)


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


def window_starts(n_chars: int, seq_len: int, step: int) -> range:
    """Start of every window: ids[s:s+seq_len] predicts ids[s+seq_len] (the notebook's range).

    A range, not an array: a 1 GB corpus has 200 million windows at --step 5.
    """
    return range(0, max(n_chars - seq_len, 0), step)


def epoch_order(n_windows: int, seed: list[int]) -> np.ndarray:
    """Window positions 0 .. n_windows - 1 in an epoch's order.

    The same permutation as ``np.random.default_rng(seed).permutation(starts)`` applied to the
    int64 starts (numpy's shuffle draws depend on the length only, not the dtype), held in
    the smallest dtype: 4 bytes a window rather than 8, and no second copy.
    """
    order = np.arange(n_windows, dtype=smallest_dtype(n_windows))
    np.random.default_rng(seed).shuffle(order)
    return order


def cut_windows(
    ids: np.ndarray, starts: np.ndarray | range, positions: np.ndarray, seq_len: int
) -> np.ndarray:
    """The windows at ``positions`` of ``starts``, each with its target:
    ``ids[s : s + seq_len + 1]`` for each start s, as a [len(positions), seq_len + 1] array."""
    if isinstance(starts, range):
        at = starts.start + positions.astype(np.int64) * starts.step
    else:
        at = np.asarray(starts)[positions]
    return ids[at[:, None] + np.arange(seq_len + 1)]
