"""The text policy: one normalisation for the training corpus and for the sampler's prime.

Files are read a chunk at a time, so a corpus of any size costs a few MB here; the chunked
result is the same as normalising the whole text at once (tests/test_text.py compares them).
"""

from __future__ import annotations

import codecs
import functools
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from gru_edge.runtime.errors import CorpusError

# Recorded in config.json and in the ONNX metadata, so a user can see what was done to the text.
TEXT_POLICY = "utf-8 strict; leading BOM dropped; CRLF and lone CR turned into LF; Unicode NFC"
CHUNK_BYTES = 1 << 20  # bytes read at a time

# Hangul's algorithmic compositions: L+V -> LV and LV+T -> LVT (Unicode ch. 3.12).
_HANGUL_V = range(0x1161, 0x1176)
_HANGUL_T = range(0x11A8, 0x11C3)


def normalize_text(text: str) -> str:
    """Apply the text policy to already-decoded text."""
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text)


def read_text_file(path: Path, what: str = "text file") -> str:
    """Read and normalise a UTF-8 text file, with one-line errors for the usual mistakes."""
    return "".join(iter_text_file(path, what))


def iter_text_file(
    path: Path, what: str = "text file", chunk_bytes: int = CHUNK_BYTES
) -> Iterator[str]:
    """The normalised text of a UTF-8 file, in pieces whose concatenation is the whole.

    Raises CorpusError for a missing file, a directory, a read error, a NUL byte (binary) or
    invalid UTF-8, each naming the file (as ``what`` and the path) and how to fix it.
    """
    path = Path(path)
    source = f"{what} {path}"
    try:
        if not path.exists():
            raise CorpusError(f"{what} not found: {path}; check the path")
        if path.is_dir():
            raise CorpusError(f"{what} is a directory, not a file: {path}; pass a text file")
        stream = path.open("rb")
    except OSError as exc:
        raise CorpusError(f"cannot read {source}: {exc.strerror}") from None
    with stream:
        yield from iter_normalized(stream, source, chunk_bytes)


def iter_normalized(stream: BinaryIO, source: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
    """``normalize_text`` of the UTF-8 bytes in ``stream``, read ``chunk_bytes`` at a time."""
    normalizer = _Normalizer()
    for piece in _decode_utf8(stream, source, chunk_bytes):
        out = normalizer.feed(piece)
        if out:
            yield out
    out = normalizer.finish()
    if out:
        yield out


def _decode_utf8(stream: BinaryIO, source: str, chunk_bytes: int) -> Iterator[str]:
    """Strict UTF-8 in pieces. Errors carry absolute offsets; a file holding a NUL byte is
    called binary (at its first NUL) even when a bad byte comes first, whatever the chunk size."""
    offset, pending = 0, b""  # offset: where ``pending`` (an unfinished character) starts
    while True:
        block = _read(stream, chunk_bytes, source)
        nul = block.find(b"\0")
        if nul >= 0:
            raise _binary(source, offset + len(pending) + nul)
        data = pending + block
        try:
            text, used = codecs.utf_8_decode(data, "strict", not block)
        except UnicodeDecodeError as exc:
            later = _find_nul(stream, source, chunk_bytes)
            if later is not None:
                raise _binary(source, offset + len(data) + later) from None
            raise CorpusError(
                f"{source} is not valid UTF-8: byte 0x{data[exc.start]:02x} at offset "
                f"{offset + exc.start}; re-save the file as UTF-8"
            ) from None
        offset, pending = offset + used, data[used:]
        if text:
            yield text
        if not block:
            return


def _read(stream: BinaryIO, size: int, source: str) -> bytes:
    try:
        return stream.read(size)
    except OSError as exc:
        raise CorpusError(f"cannot read {source}: {exc.strerror}") from None


def _find_nul(stream: BinaryIO, source: str, chunk_bytes: int) -> int | None:
    """Offset of the first NUL in the rest of ``stream``, counted from where it stands."""
    seen = 0
    while block := _read(stream, chunk_bytes, source):
        nul = block.find(b"\0")
        if nul >= 0:
            return seen + nul
        seen += len(block)
    return None


def _binary(source: str, offset: int) -> CorpusError:
    return CorpusError(
        f"{source} is binary, not text: NUL byte at offset {offset}; pass a UTF-8 text file"
    )


class _Normalizer:
    """``normalize_text`` over a stream of pieces: ``feed`` each, then ``finish``; the outputs
    concatenate to ``normalize_text`` of the whole.

    Held back between pieces: a trailing CR (its LF may come next) and the text from the last
    character that starts an NFC segment (what follows may still compose with or reorder into
    the characters before it).
    """

    def __init__(self) -> None:
        self._started = False  # a BOM is dropped only as the text's first character
        self._cr = False
        self._pending = ""

    def feed(self, piece: str) -> str:
        """The normalised text that nothing after ``piece`` can change any more."""
        if piece and not self._started:
            self._started = True
            piece = piece.removeprefix("\ufeff")
        if self._cr:
            piece, self._cr = "\r" + piece, False
        if piece.endswith("\r"):
            piece, self._cr = piece[:-1], True
        if "\r" in piece:
            piece = piece.replace("\r\n", "\n").replace("\r", "\n")
        searched = len(self._pending)
        text = self._pending + piece
        cut = _last_segment_start(text, searched)
        self._pending = text[cut:]
        return unicodedata.normalize("NFC", text[:cut])

    def finish(self) -> str:
        """The rest, at the end of the text."""
        tail = self._pending + ("\n" if self._cr else "")
        self._pending, self._cr = "", False
        return unicodedata.normalize("NFC", tail)


def _last_segment_start(text: str, searched: int) -> int:
    """Index of the last character in ``text[searched:]`` that starts an NFC segment, or 0.

    ``text[:searched]`` was searched before and held none after its first character, so a
    file without segment starts (a million combining marks) costs linear time, not quadratic.
    """
    for i in range(len(text) - 1, max(searched, 1) - 1, -1):
        if _starts_segment(text[i]):
            return i
    return 0


@functools.cache
def _starts_segment(char: str) -> bool:
    """True if NFC never lets ``char`` interact with what precedes it, so that
    NFC(x + char + y) == NFC(x) + NFC(char + y) for every x and y.

    That holds when the first character of its canonical decomposition is a starter
    (combining class 0, so canonical reordering stops there) that is not the second half of
    any composition (so it cannot compose with a starter before it). This is ICU's
    "boundary before" for NFC, kept to the cases Python's unicodedata can decide.
    """
    if char < "\x80":
        return True
    first = unicodedata.normalize("NFD", char)[0]
    return unicodedata.combining(first) == 0 and first not in _second_halves()


@functools.cache
def _second_halves() -> frozenset[str]:
    """Every character that NFC composes with a preceding starter: the second character of
    each primary composite's two-character decomposition, and Hangul's V and T jamo. Built
    from this Python's Unicode tables (about 0.4 s, once), so it matches its NFC exactly."""
    halves = {chr(c) for c in (*_HANGUL_V, *_HANGUL_T)}
    for code in range(0x110000):
        composite = chr(code)
        parts = unicodedata.decomposition(composite).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            first, second = chr(int(parts[0], 16)), chr(int(parts[1], 16))
            if unicodedata.normalize("NFC", first + second) == composite:
                halves.add(second)
    return frozenset(halves)
