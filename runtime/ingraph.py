"""The in-graph engine: text from the model file's own generator (gru-edge/2), a chunk of
characters per onnxruntime call.

The prime goes through the generator too (each piece but the last with ``steps`` 1, whose
``gen_state`` is the state after it), so nothing here depends on how a host step computes: any
client that feeds the same pieces gets the same ids. Chunks start small, so the first character
comes after one short call, then double; each call's ``steps x batch x vocab`` stays within
CHUNK_VALUES, because the graph holds that much noise and logits while it runs.

A chunk whose ``logit_sums`` are not all finite went through logits the sampler refuses (or
-inf logits, which it allows): that chunk and the rest are run again by the host loop from the
same state, which raises NonFiniteLogits at the exact character, or writes the same ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import onnxruntime as ort

from gru_edge.runtime import checked_run, contract
from gru_edge.runtime.generation import continue_ids, prime_pieces
from gru_edge.runtime.ortstep import OrtStep
from gru_edge.runtime.sampler import SamplingSettings

FIRST_CHUNK = 32  # characters of the first call
MAX_CHUNK = 2048
CHUNK_VALUES = 1 << 19  # steps x batch x vocab per call: 2 MB of noise, as much of logits
_OUTPUTS = [contract.OUTPUT_GENERATED, contract.OUTPUT_GEN_STATE, contract.OUTPUT_LOGIT_SUMS]


class GraphEngine:
    """Runs one session's generator for a batch size."""

    def __init__(self, session: ort.InferenceSession, *, batch: int, vocab_size: int, width: int):
        self._session = session
        self._batch, self._vocab, self._width = batch, vocab_size, width
        self._most = max(1, min(MAX_CHUNK, CHUNK_VALUES // (batch * vocab_size)))

    def generate(
        self, prime: np.ndarray, length: int, settings: SamplingSettings, seed: int
    ) -> Iterator[np.ndarray]:
        """Yield int64 [batch, n] chunks of new ids, ``length`` in all, after ``prime``."""
        if length == 0:
            return
        settings_feeds = {
            contract.INPUT_TEMPERATURE: np.array(settings.temperature, dtype=np.float32),
            contract.INPUT_TOP_K: np.array(settings.top_k or 0, dtype=np.int64),
            contract.INPUT_TOP_P: np.array(settings.top_p or 1.0, dtype=np.float32),
            contract.INPUT_SEED: np.array(seed, dtype=np.int64),
        }
        state = np.zeros((self._batch, self._width), dtype=np.float32)
        pieces = prime_pieces(prime, self._batch)
        ids = next(pieces)
        for piece in pieces:
            _, state, _ = self._call(ids, state, 1, 0, settings_feeds)
            ids = piece
        offset, chunk = 0, min(FIRST_CHUNK, self._most)
        while offset < length:
            steps = min(chunk, length - offset)
            generated, new_state, sums = self._call(ids, state, steps, offset, settings_feeds)
            if not np.isfinite(sums).all():
                yield from self._host(ids, state, offset, length, settings, seed)
                return
            yield generated
            ids, state = generated[:, -1:], new_state
            offset += steps
            chunk = min(chunk * 2, self._most)

    def _call(
        self, ids: np.ndarray, state: np.ndarray, steps: int, offset: int, feeds: dict
    ) -> list[np.ndarray]:
        feeds = {**feeds, contract.INPUT_OFFSET: np.array(offset, dtype=np.int64)}
        return call(self._session, ids, state, steps, feeds, self._vocab, self._width)

    def _host(
        self,
        ids: np.ndarray,
        state: np.ndarray,
        offset: int,
        length: int,
        settings: SamplingSettings,
        seed: int,
    ) -> Iterator[np.ndarray]:
        """The rest of the generation on the host loop, from the same point."""
        step = OrtStep(
            self._session, batch=self._batch, state_width=self._width, vocab_size=self._vocab
        )
        for new in continue_ids(
            step, ids, state, offset, length - offset, settings=settings, seed=seed
        ):
            yield new[:, None]


@dataclass(frozen=True)
class RowSettings:
    """Each row's own settings for a generator that takes them (version 2's ``row_*``
    inputs), one entry per row: what a batching server feeds."""

    temperature: np.ndarray  # float32; 0 = greedy
    top_k: np.ndarray  # int64; 0 = off
    top_p: np.ndarray  # float32; 1 = off
    seed: np.ndarray  # int64: the row's own stream (a request's seed + its choice index)
    offset: np.ndarray  # int64: characters of that stream generated before this call

    @classmethod
    def of(cls, settings: list[SamplingSettings], seeds: list[int]) -> RowSettings:
        """Rows at the start of their streams, one per (settings, seed)."""
        return cls(
            np.array([s.t32 for s in settings], dtype=np.float32),
            np.array([s.top_k or 0 for s in settings], dtype=np.int64),
            np.array([s.top_p or 1.0 for s in settings], dtype=np.float32),
            np.array(seeds, dtype=np.int64),
            np.zeros(len(seeds), dtype=np.int64),
        )

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The fields, in order."""
        return tuple(getattr(self, f.name) for f in fields(self))

    def take(self, index: Any) -> RowSettings:
        """Some rows' settings (a numpy index: a list of rows, a repeat)."""
        return RowSettings(*(a[index] for a in self.arrays()))

    def then(self, other: RowSettings) -> RowSettings:
        """These rows, then ``other``'s."""
        return RowSettings(
            *(np.concatenate([a, b]) for a, b in zip(self.arrays(), other.arrays(), strict=True))
        )

    def feeds(self) -> dict[str, np.ndarray]:
        """The generator's feeds for these rows."""
        types = {contract.INPUT_TEMPERATURE: np.float32, contract.INPUT_TOP_P: np.float32}
        return {
            row: np.ascontiguousarray(getattr(self, name), dtype=types.get(name, np.int64))
            for row, name in contract.ROW_INPUTS.items()
        }


def call_rows(
    session: ort.InferenceSession,
    ids: np.ndarray,
    state: np.ndarray,
    steps: int,
    rows: RowSettings,
    *,
    vocab_size: int,
    width: int,
) -> list[np.ndarray]:
    """One call of a version-2 generator with settings per row: [generated, gen_state,
    logit_sums], checked. Row b writes what a call of its own with its settings would, on the
    same arithmetic (onnxruntime rounds a batch of one differently from larger ones)."""
    return call(session, ids, state, steps, rows.feeds(), vocab_size, width)


def call(
    session: ort.InferenceSession,
    ids: np.ndarray,
    state: np.ndarray,
    steps: int,
    feeds: dict[str, np.ndarray],
    vocab_size: int,
    width: int,
) -> list[np.ndarray]:
    """One generator call; what it returns is checked before anything uses it."""
    generated, state_out, sums = checked_run.run(
        session,
        _OUTPUTS,
        {
            contract.INPUT_IDS: ids,
            contract.INPUT_STATE: state,
            contract.INPUT_STEPS: np.array(steps, dtype=np.int64),
            **feeds,
        },
    )
    rows = ids.shape[0]
    checked_run.check_shape(contract.OUTPUT_GENERATED, generated, (rows, steps), np.int64)
    checked_run.check_shape(contract.OUTPUT_GEN_STATE, state_out, (rows, width), np.float32)
    checked_run.check_shape(contract.OUTPUT_LOGIT_SUMS, sums, (rows, steps), np.float32)
    checked_run.check_ids(generated, vocab_size)
    return [generated, state_out, sums]
