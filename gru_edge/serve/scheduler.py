"""Continuous batching: one scheduler per served model generates every open request's rows
together, one onnxruntime step for all rows per character.

Rows join and leave between rounds (ROUND_STEPS steps): a new request's prime is fed on its own
(batch 1, as `gru-edge sample` feeds it) and its rows join the next round; a finished, stopped
or abandoned row leaves before the next. Each row carries its own seed (the request's seed + its
choice index, as row b of `sample -n` uses), its own position in the specified random stream
and its own settings, so its characters are drawn exactly as the host loop draws them for that
seed. The steps run on the event loop, which serves the network between steps (measured: steps
in a worker thread held the GIL against it, and 64 clients waited seconds for their first
character).

Every step runs at least two rows: a row alone is stepped beside a copy of itself. onnxruntime's
CPU kernels give a row the same bits in any batch of two or more, but round a batch of one
differently (a matrix-vector path), and state carries such a difference on until a near-tie
flips a character. Padded, a row's text depends only on its file, prime, seed and settings,
never on the other requests in the batch: choice i of a request seeded s is sample i + 1 of
`gru-edge sample -n N --seed s` for any N >= 2 (see docs/serve.md for what that means for
`sample -n 1`).

The model is stepped through its gru-edge/1 signature (ids, state -> logits, state_out), which
every gru-edge file has, old ones included; the in-graph generator is not used, because its
seed, offset and settings are one value for every row of a call.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from gru_edge.runtime import checked_run, contract
from gru_edge.runtime.errors import GruEdgeError
from gru_edge.runtime.generation import run_prime
from gru_edge.runtime.randomness import gumbel_rows
from gru_edge.runtime.sampler import NonFiniteLogits, SamplingSettings, sample_ids
from gru_edge.runtime.stops import StopFilter
from gru_edge.runtime.vocabulary import Vocabulary

ROUND_STEPS = 64  # characters per row between joins and leaves (fewer, larger HTTP events)
YIELD_S = 0.001  # the event loop gets a turn after about this much stepping
FIRST_STEPS = 8  # a round with a row that has nothing yet is short: its first text comes soon
_OUTPUTS = [contract.OUTPUT_LOGITS, contract.OUTPUT_STATE]


class QueueFull(Exception):
    """More requests wait than the scheduler may hold (HTTP 429)."""


class ShuttingDown(Exception):
    """The server is stopping and takes no new work (HTTP 503)."""


@dataclass(frozen=True)
class RowSpec:
    """What one row generates."""

    prime_ids: np.ndarray  # int64 [time], shared by a request's rows
    length: int  # characters
    settings: SamplingSettings
    seed: int  # this row's stream: the request's seed + the row's choice index
    stop: tuple[str, ...] = ()


class Row:
    """One choice of one request. Its text goes to the request's queue as (index, text,
    finish) triples, finish being None until the row's last: "length", "stop", or
    "error: <message>"."""

    def __init__(self, spec: RowSpec, index: int, queue: asyncio.Queue, scheduler: BatchScheduler):
        self.spec, self.index, self.queue = spec, index, queue
        self.emitted = 0
        self.finished = False
        self._filter = StopFilter(spec.stop)
        self._scheduler = scheduler

    def cancel(self) -> None:
        """The client is gone: the row leaves the batch before the next round."""
        if not self.finished:
            self.finished = True
            self._scheduler.wake()

    def _deliver(self, text: str) -> None:
        self.emitted += len(text)
        out = self._filter.feed(text)
        if self._filter.stopped:
            self._finish(out, "stop")
        elif self.emitted >= self.spec.length:
            self._finish(out + self._filter.flush(), "length")
        elif out:
            self.queue.put_nowait((self.index, out, None))

    def _finish(self, text: str, reason: str) -> None:
        if not self.finished:
            self.finished = True
            self.queue.put_nowait((self.index, text, reason))


class BatchScheduler:
    """Generates the rows of one model's open requests together."""

    def __init__(
        self,
        session: ort.InferenceSession,
        vocab: Vocabulary,
        width: int,
        *,
        max_batch: int,
        max_queue: int,
    ):
        self._session, self._vocab, self._width = session, vocab, width
        self.max_batch, self.max_queue = max_batch, max_queue
        self._waiting: list[Row] = []
        self._rows: list[Row] = []  # in batch order
        self._state = np.zeros((0, width), dtype=np.float32)
        self._logits = np.zeros((0, len(vocab)), dtype=np.float32)
        self._keys = np.zeros(0, dtype=np.uint64)
        self._positions = np.zeros(0, dtype=np.uint64)
        self._scales = np.zeros((0, 1), dtype=np.float32)
        self._wake = asyncio.Event()
        self._closing = False
        self._broken: list[tuple[Row, str]] = []  # rows whose logits broke in the last round
        self.rounds = 0  # rounds run, and the most rows one had: for tests and /health
        self.peak_rows = 0

    @property
    def active(self) -> int:
        """Rows in the batch now."""
        return len(self._rows)

    @property
    def queued(self) -> int:
        """Rows waiting to join."""
        return len(self._waiting)

    def submit(self, specs: list[RowSpec]) -> list[Row]:
        """A request's rows, queued to join the next round, all writing to one queue (see
        Row); QueueFull or ShuttingDown."""
        if self._closing:
            raise ShuttingDown
        free = self.max_batch - len(self._rows) + self.max_queue
        if len(self._waiting) + len(specs) > free:
            raise QueueFull
        queue: asyncio.Queue[tuple[int, str, str | None]] = asyncio.Queue()
        rows = [Row(spec, index, queue, self) for index, spec in enumerate(specs)]
        for row in rows:
            if row.spec.length == 0:
                row._finish("", "length")
            else:
                self._waiting.append(row)
        self.wake()
        return rows

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        """Take no new requests; open rows go on until they end (see end_all)."""
        self._closing = True

    def end_all(self, message: str) -> None:
        """End every open row now with an error (the server's grace period is over)."""
        for row in self._rows + self._waiting:
            row._finish("", f"error: {message}")
        self.wake()

    async def run(self) -> None:
        """The scheduler's task: rounds while there are rows, idle otherwise."""
        while True:
            self._leave()
            if not self._rows and not self._waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            joining = self._waiting[: self.max_batch - len(self._rows)]
            del self._waiting[: len(joining)]
            joining = [row for row in joining if not row.finished]
            if not self._rows and not joining:
                continue  # every waiting row was abandoned: never run a batch of 0 rows
            left = max((row.spec.length - row.emitted for row in self._rows + joining), default=1)
            most = (
                FIRST_STEPS if joining or any(r.emitted == 0 for r in self._rows) else ROUND_STEPS
            )
            steps = max(1, min(most, left))
            try:
                ids = await self._round(joining, steps)
            except GruEdgeError as exc:  # a model that fails or computes NaN: every open row
                # ends with the one-line message, and the batch starts again empty.
                for row in {id(r): r for r in self._rows + joining}.values():
                    row._finish("", f"error: {exc}")
                self._leave()
                continue
            self.rounds += 1
            for row, message in self._broken:
                row._finish("", f"error: {message}")
            self._broken.clear()
            self.peak_rows = max(self.peak_rows, len(self._rows))
            for row, row_ids in zip(self._rows, ids, strict=True):
                if not row.finished:
                    count = min(ids.shape[1], row.spec.length - row.emitted)
                    row._deliver(self._vocab.decode_rows(row_ids[None, :count])[0])

    def _leave(self) -> None:
        """Drop finished rows from the batch arrays and the queue."""
        self._waiting = [row for row in self._waiting if not row.finished]
        keep = [i for i, row in enumerate(self._rows) if not row.finished]
        if len(keep) == len(self._rows):
            return
        self._rows = [self._rows[i] for i in keep]
        self._state, self._logits = self._state[keep], self._logits[keep]
        self._keys, self._positions = self._keys[keep], self._positions[keep]
        self._scales = self._scales[keep]

    async def _round(self, joining: list[Row], steps: int) -> np.ndarray:
        """Feed the joining rows' primes, then up to ``steps`` characters for every row: int64
        [rows, steps done]. The event loop serves the network between steps: a step is a
        fraction of a millisecond, and steps in a worker thread would hold the GIL against it.
        A round ends early, after FIRST_STEPS, when a request is waiting to join."""
        self._join(joining)
        out = np.empty((len(self._rows), steps), dtype=np.int64)
        # The round's noise at once: float32(T * g), as the host loop's NoiseStream computes it.
        noise = gumbel_rows(self._keys, self._positions, self._logits.shape[1], steps)
        noise *= self._scales[:, :, None]
        pause = time.perf_counter() + YIELD_S
        done = 0
        while done < steps:
            ids = self._sample(self._logits, noise[:, done])
            out[:, done] = ids
            self._logits, self._state = self._step(ids[:, None], self._state)
            done += 1
            if time.perf_counter() >= pause:
                await asyncio.sleep(0)
                pause = time.perf_counter() + YIELD_S
                if self._waiting and done >= FIRST_STEPS:
                    break
        self._positions += np.uint64(done)
        return out[:, :done]

    def _join(self, joining: list[Row]) -> None:
        """Feed each joining request's prime once (batch 1) and append its rows."""
        if not joining:
            return
        fed: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        logits, states = [], []
        for row in joining:
            prime = row.spec.prime_ids
            if id(prime) not in fed:
                zero = np.zeros((1, self._width), dtype=np.float32)
                fed[id(prime)] = run_prime(self._step, prime, zero)
            row_logits, row_state = fed[id(prime)]
            logits.append(row_logits)
            states.append(row_state)
        self._rows = self._rows + joining
        self._logits = np.concatenate([self._logits, *logits])
        self._state = np.concatenate([self._state, *states])
        seeds = [row.spec.seed % (1 << 64) for row in joining]
        self._keys = np.concatenate([self._keys, np.array(seeds, dtype=np.uint64)])
        self._positions = np.concatenate([self._positions, np.zeros(len(joining), np.uint64)])
        scales = [[row.spec.settings.t32] for row in joining]
        self._scales = np.concatenate([self._scales, np.array(scales, dtype=np.float32)])

    def _step(self, ids: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One call of the model; a single row goes beside a copy of itself (module doc)."""
        if len(ids) == 1:
            ids, state = np.repeat(ids, 2, axis=0), np.repeat(state, 2, axis=0)
            logits, state = checked_run.run(
                self._session, _OUTPUTS, {contract.INPUT_IDS: ids, contract.INPUT_STATE: state}
            )
            return logits[:1], state[:1]
        logits, state = checked_run.run(
            self._session, _OUTPUTS, {contract.INPUT_IDS: ids, contract.INPUT_STATE: state}
        )
        return logits, state

    def _sample(self, logits: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Each row's next id by its own settings: one sampler call per distinct setting."""
        groups: dict[SamplingSettings, list[int]] = {}
        for index, row in enumerate(self._rows):
            groups.setdefault(row.spec.settings, []).append(index)
        if len(groups) == 1:
            (settings,) = groups
            return self._sample_group(logits, noise, settings, slice(None))
        ids = np.empty(len(self._rows), dtype=np.int64)
        for settings, indices in groups.items():
            ids[indices] = self._sample_group(logits, noise, settings, indices)
        return ids

    def _sample_group(self, logits, noise, settings, rows) -> np.ndarray:
        try:
            return sample_ids(logits[rows], settings, noise[rows])
        except NonFiniteLogits:
            # Find the broken rows: they end with the message, the others go on.
            picked = []
            for index in np.arange(len(self._rows))[rows]:
                try:
                    picked.append(sample_ids(logits[index], settings, noise[index])[0])
                except NonFiniteLogits as exc:
                    self._broken.append((self._rows[index], str(exc)))
                    picked.append(0)
            return np.array(picked, dtype=np.int64)
