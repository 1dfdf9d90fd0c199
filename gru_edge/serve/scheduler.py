"""Continuous batching: one scheduler per served model generates every open request's rows
together.

Rows join and leave between rounds (ROUND_STEPS characters): a new request's prime but its last
id is fed on its own and its rows join the next round; a finished, stopped or abandoned row
leaves before the next. Each row carries its own seed (the request's seed + its choice index, as
row b of `sample -n` uses), its own position in the specified random stream and its own
settings, so its characters are drawn exactly as `gru-edge sample` draws them for that seed.

A round is one call of the file's generator with each row's settings in its ``row_*`` inputs
(version 2 on), in a worker thread: onnxruntime lets go of the GIL, so the event loop serves
the network meanwhile. A file whose generator takes one setting for every row (version 1, or no
generator) is stepped through its step signature once per character and sampled on the host,
on the event loop between steps (measured: such steps in a worker thread held the GIL against
it, and 64 clients waited seconds for their first character).

Every call runs at least two rows: a row alone goes beside a copy of itself. onnxruntime's CPU
kernels give a row the same bits in any batch of two or more, but round a batch of one
differently (a matrix-vector path), and state carries such a difference on until a near-tie
flips a character. Padded, a row's text depends only on its file, prime, seed and settings,
never on the other requests in the batch: choice i of a request seeded s is sample i + 1 of
`gru-edge sample -n N --seed s` for any N >= 2 (see docs/serve.md for `sample -n 1`).
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
from gru_edge.runtime.ingraph import RowSettings, call_rows
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
        in_graph: bool = False,
    ):
        """``in_graph``: the file's generator takes settings per row (version 2 on): a round is
        one generator call; otherwise the host steps and samples every character."""
        self._session, self._vocab, self._width = session, vocab, width
        self.max_batch, self.max_queue, self.in_graph = max_batch, max_queue, in_graph
        self._waiting: list[Row] = []
        self._rows: list[Row] = []  # in batch order
        # Per row: the id to feed next, the state before it, its stream and its settings.
        self._cur = np.zeros((0, 1), dtype=np.int64)
        self._state = np.zeros((0, width), dtype=np.float32)
        self._settings = RowSettings.of([], [])
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
                self._join(joining)
                ids = await (self._graph_round if self.in_graph else self._host_round)(steps)
            except GruEdgeError as exc:  # a model that fails or computes NaN: every open row
                # ends with the one-line message, and the batch starts again empty.
                for row in {id(r): r for r in self._rows + joining}.values():
                    row._finish("", f"error: {exc}")
                self._leave()
                continue
            self._settings.offset[:] += ids.shape[1]
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
        self._cur, self._state = self._cur[keep], self._state[keep]
        self._settings = self._settings.take(keep)

    def _join(self, joining: list[Row]) -> None:
        """Feed each joining request's prime but its last id once (batch 1) and append its
        rows, the last id to feed next."""
        if not joining:
            return
        fed: dict[int, np.ndarray] = {}
        for row in joining:
            prime = row.spec.prime_ids
            if id(prime) not in fed and len(prime) > 1:
                zero = np.zeros((1, self._width), dtype=np.float32)
                fed[id(prime)] = run_prime(self._step, prime[:-1], zero)[1]
        zero = np.zeros((1, self._width), dtype=np.float32)
        states = [fed.get(id(row.spec.prime_ids), zero) for row in joining]
        self._rows = self._rows + joining
        cur = np.array([[row.spec.prime_ids[-1]] for row in joining], dtype=np.int64)
        self._cur = np.concatenate([self._cur, cur])
        self._state = np.concatenate([self._state, *states])
        specs = [row.spec for row in joining]
        new = RowSettings.of([s.settings for s in specs], [s.seed for s in specs])
        self._settings = self._settings.then(new)

    async def _graph_round(self, steps: int) -> np.ndarray:
        """One generator call for every row, in a worker thread (onnxruntime lets go of the
        GIL: the event loop serves the network meanwhile): int64 [rows, steps]. A row whose
        logits were not all finite is done again by the host from the same point, which ends it
        with the exact message (or writes the same ids, for -inf logits)."""
        cur, state, settings = self._cur, self._state, self._settings
        lone = len(cur) == 1  # beside a copy of itself (module doc)
        if lone:
            cur, state = np.repeat(cur, 2, axis=0), np.repeat(state, 2, axis=0)
            settings = settings.take([0, 0])
        generated, new_state, sums = await asyncio.to_thread(
            call_rows,
            self._session,
            cur,
            state,
            steps,
            settings,
            vocab_size=len(self._vocab),
            width=self._width,
        )
        generated, new_state, sums = (
            generated[: len(self._rows)],
            new_state[: len(self._rows)],
            sums[: len(self._rows)],
        )
        for index in np.flatnonzero(~np.isfinite(sums).all(axis=1)):
            part = [int(index)]
            ids, row_state = self._host_steps(part, self._cur[part], self._state[part], steps)
            generated[index], new_state[index] = ids[0], row_state[0]
        self._cur, self._state = generated[:, -1:], new_state
        return generated

    async def _host_round(self, steps: int) -> np.ndarray:
        """Up to ``steps`` characters for every row, stepped and sampled on the host (files
        whose generator takes one setting for all rows): int64 [rows, steps done]. The event
        loop serves the network between steps: a step is a fraction of a millisecond, and steps
        in a worker thread would hold the GIL against it. A round ends early, after
        FIRST_STEPS, when a request is waiting to join."""
        everyone = list(range(len(self._rows)))
        out = np.empty((len(self._rows), steps), dtype=np.int64)
        noise = self._noise(everyone, steps)
        cur, state = self._cur, self._state
        pause = time.perf_counter() + YIELD_S
        done = 0
        while done < steps:
            logits, state = self._step(cur, state)
            out[:, done] = self._sample(everyone, logits, noise[:, done])
            cur = out[:, done : done + 1]
            done += 1
            if time.perf_counter() >= pause:
                await asyncio.sleep(0)
                pause = time.perf_counter() + YIELD_S
                if self._waiting and done >= FIRST_STEPS:
                    break
        self._cur, self._state = cur.copy(), state
        return out[:, :done]

    def _host_steps(
        self, rows: list[int], cur: np.ndarray, state: np.ndarray, steps: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``steps`` characters of some rows on the host, at once: (ids, state before the last)."""
        out = np.empty((len(rows), steps), dtype=np.int64)
        noise = self._noise(rows, steps)
        for done in range(steps):
            logits, state = self._step(cur, state)
            out[:, done] = self._sample(rows, logits, noise[:, done])
            cur = out[:, done : done + 1]
        return out, state

    def _noise(self, rows: list[int], steps: int) -> np.ndarray:
        """float32 [rows, steps, vocab]: float32(T * g), as the host loop's NoiseStream."""
        s = self._settings
        keys, positions = s.seed[rows].astype(np.uint64), s.offset[rows].astype(np.uint64)
        noise = gumbel_rows(keys, positions, len(self._vocab), steps)
        noise *= s.temperature[rows][:, None, None]
        return noise

    def _step(self, ids: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One call of the model; a single row goes beside a copy of itself (module doc)."""
        lone = len(ids) == 1
        if lone:
            ids, state = np.repeat(ids, 2, axis=0), np.repeat(state, 2, axis=0)
        logits, state = checked_run.run(
            self._session, _OUTPUTS, {contract.INPUT_IDS: ids, contract.INPUT_STATE: state}
        )
        return (logits[:1], state[:1]) if lone else (logits, state)

    def _sample(self, rows: list[int], logits: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Each row's next id by its own settings: one sampler call per distinct setting;
        a row whose logits are broken is noted (it ends with the message) and gets id 0."""
        groups: dict[SamplingSettings, list[int]] = {}
        for at, index in enumerate(rows):
            groups.setdefault(self._rows[index].spec.settings, []).append(at)
        ids = np.empty(len(rows), dtype=np.int64)
        for settings, ats in groups.items():
            try:
                ids[ats] = sample_ids(logits[ats], settings, noise[ats])
            except NonFiniteLogits:
                for at in ats:
                    try:
                        ids[at] = sample_ids(logits[at], settings, noise[at])[0]
                    except NonFiniteLogits as exc:
                        self._broken.append((self._rows[rows[at]], str(exc)))
                        ids[at] = 0
        return ids
