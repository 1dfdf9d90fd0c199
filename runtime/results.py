"""What a generating call returns besides its text: the seed it used (drawn when none was
given), the prime actually fed, the characters skipped and the engine that ran it.

A typed value returned by the call, never state left on the Generator, so one Generator can
serve several threads (the service shares one per model).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from gru_edge.runtime.stops import StopFilter
from gru_edge.runtime.vocabulary import Vocabulary

DECODE_CHUNK = 1 << 16  # characters of a held sample decoded at a time


@dataclass(frozen=True)
class Prepared:
    """How a call generates, fixed before its first character."""

    seed: int  # the seed used: the one given, or drawn fresh
    prime: str  # the prime fed (normalised, unknown characters skipped; "" for the default)
    skipped: tuple[str, ...]  # characters unknown="skip" dropped
    engine: str  # "graph" (the file's own generator) or "host" (the Python loop)
    stop: tuple[str, ...] = ()  # the text ends before the first of these


@dataclass
class Generation:
    """One stream: ``pieces`` yields the text as it comes (cut at a stop string); after it is
    exhausted, ``stopped`` says whether a stop string ended it."""

    info: Prepared
    _raw: Iterator[str]
    _filter: StopFilter = field(init=False)

    def __post_init__(self) -> None:
        self._filter = StopFilter(self.info.stop)

    @property
    def pieces(self) -> Iterator[str]:
        """The generated text in pieces (one onnxruntime call's worth, or a character)."""
        return self._filter.pieces(self._raw)

    @property
    def stopped(self) -> bool:
        return self._filter.stopped


@dataclass(frozen=True)
class BatchGeneration:
    """Several samples run as one batch: ``ids`` [n, length] in the smallest integer type."""

    info: Prepared
    ids: np.ndarray
    vocab: Vocabulary

    def pieces(self, row: int) -> Iterator[str]:
        """Sample ``row``'s text in pieces of DECODE_CHUNK characters, cut at a stop string."""
        ids = self.ids[row]
        raw = (
            self.vocab.decode_rows(ids[None, start : start + DECODE_CHUNK])[0]
            for start in range(0, len(ids), DECODE_CHUNK)
        )
        return StopFilter(self.info.stop).pieces(raw)

    def texts(self) -> list[str]:
        """Every sample's whole text, cut at a stop string."""
        return ["".join(self.pieces(row)) for row in range(len(self.ids))]
