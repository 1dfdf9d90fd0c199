"""The text policy: one normalisation for the training corpus and for the sampler's prime."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from gru_edge.runtime.errors import CorpusError

# Recorded in config.json and in the ONNX metadata, so a user can see what was done to the text.
TEXT_POLICY = "utf-8 strict; leading BOM dropped; CRLF and lone CR turned into LF; Unicode NFC"


def normalize_text(text: str) -> str:
    """Apply the text policy to already-decoded text."""
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text)


def decode_text(data: bytes, source: str) -> str:
    """Decode strict UTF-8 and normalise; a bad byte is reported with its offset."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{source} is not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}; "
            "re-save the file as UTF-8"
        ) from None
    return normalize_text(text)


def read_text_file(path: Path, what: str = "text file") -> str:
    """Read and normalise a UTF-8 text file, with one-line errors for the usual mistakes."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{what} not found: {path}; check the path")
    if path.is_dir():
        raise CorpusError(f"{what} is a directory, not a file: {path}; pass a text file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"cannot read {what} {path}: {exc.strerror}") from None
    return decode_text(data, f"{what} {path}")
