"""The host loops: generation over any step function, so the ONNX runtime, the trainer's
per-epoch samples and the parity tests all run the same code, and the model file's own
generator (runtime.ingraph) is checked against them.

A step function has the ONNX contract's shape: ``step(ids int64 [batch, time], state float32
[batch, width]) -> (logits [batch, vocab], state_out [batch, width])``. The loops only pass a
returned state back into the next step, so a step may return its state as any token (the ONNX
runtime keeps it on the GPU), and they sample from logits before stepping again, so a step may
reuse its logits buffer.

The prime is fed in pieces of PRIME_CHUNK // batch ids (run_prime), as the in-graph engine
feeds it, and character ``n`` of row ``b`` is picked with the stream's noise for (seed + b, n)
(runtime.randomness), so the host loop and the graph write the same ids for the same seed.

Logits the sampler cannot use (NaN, +inf, only -inf) stop a loop with NonFiniteLogits, a
ModelFileError that names the generated character it happened at.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from gru_edge.runtime.options import Mode
from gru_edge.runtime.randomness import NoiseStream
from gru_edge.runtime.sampler import NonFiniteLogits, SamplingSettings, sample_ids, sample_one

StepFn = Callable[[np.ndarray, Any], tuple[np.ndarray, Any]]
# A long prime (a whole --prime-file) is fed in pieces of at most this many ids per batch row
# times rows: the graph one-hot encodes its input, so a piece costs time x batch x vocab floats.
PRIME_CHUNK = 2048


def prime_pieces(prime: np.ndarray, batch: int = 1) -> Iterator[np.ndarray]:
    """``prime`` (int64 [time]) cut into the pieces it is fed in, each [batch, <= chunk] (the
    same ids in every row), made one at a time so a long prime never becomes [batch, time]."""
    chunk = max(1, PRIME_CHUNK // batch)
    for start in range(0, len(prime), chunk):
        yield np.tile(prime[start : start + chunk], (batch, 1))


def run_prime(step: StepFn, prime: np.ndarray, state: Any, batch: int = 1) -> tuple[Any, Any]:
    """Feed ``prime`` (int64 [time], the same for every row) from ``state`` in prime_pieces;
    the logits and state after the last."""
    logits = None
    for piece in prime_pieces(prime, batch):
        logits, state = step(piece, state)
    return logits, state


def generate_ids(
    step: StepFn,
    prime_ids: Sequence[int] | np.ndarray,
    length: int,
    *,
    state_width: int,
    settings: SamplingSettings,
    seed: int,
    batch: int = 1,
    mode: Mode = "stateful",
    seq_len: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield ``length`` arrays of ``batch`` new ids, one array per generated position.

    stateful: the prime is run once, then each new id is one step that carries the GRU state,
    so every character costs the same. window: the notebook's semantics, re-feeding the last
    ``seq_len`` characters from a zero state for every character. ``state_width`` is the
    width of the state (layers x units). ``length`` 0 runs nothing.
    """
    prime = _prime_array(prime_ids)
    if mode not in ("stateful", "window"):
        raise ValueError(f"unknown mode {mode!r}")
    if mode == "window" and (seq_len is None or seq_len < 1):
        raise ValueError("window mode needs seq_len")
    if length == 0:
        return
    zero = np.zeros((batch, state_width), dtype=np.float32)
    if mode == "stateful":
        yield from _stateful(step, *run_prime(step, prime, zero, batch), 0, length, settings, seed)
        return
    window = np.tile(prime[-seq_len:], (batch, 1))
    position = 0
    try:
        logits, _ = step(window, zero)
        noise = NoiseStream(seed, batch, logits.shape[1], settings.t32)
        greedy = settings.greedy
        for position in range(length):
            new = sample_ids(logits, settings, None if greedy else noise(position))
            yield new
            if position + 1 < length:
                window = np.concatenate([window, new[:, None]], axis=1)[:, -seq_len:]
                logits, _ = step(window, zero)
    except NonFiniteLogits as exc:
        raise exc.at(position) from None


def continue_ids(
    step: StepFn,
    ids: np.ndarray,
    state: Any,
    start: int,
    count: int,
    *,
    settings: SamplingSettings,
    seed: int,
) -> Iterator[np.ndarray]:
    """Feed ``ids`` [batch, time] from ``state``, then pick characters ``start`` to
    ``start + count - 1`` of the stream: the host loop picking up where a chunk began."""
    logits, state = step(ids, state)
    yield from _stateful(step, logits, state, start, count, settings, seed)


def _stateful(
    step: StepFn,
    logits: np.ndarray,
    state: Any,
    start: int,
    count: int,
    settings: SamplingSettings,
    seed: int,
) -> Iterator[np.ndarray]:
    noise = NoiseStream(seed, logits.shape[0], logits.shape[1], settings.t32)
    greedy = settings.greedy
    end = start + count
    position = start
    try:
        for position in range(start, end):
            new = sample_ids(logits, settings, None if greedy else noise(position))
            yield new
            if position + 1 < end:
                logits, state = step(new[:, None], state)
    except NonFiniteLogits as exc:
        raise exc.at(position) from None


def generate_one(
    step: StepFn,
    prime_ids: Sequence[int] | np.ndarray,
    length: int,
    *,
    state_width: int,
    settings: SamplingSettings,
    seed: int,
    mode: Mode = "stateful",
    seq_len: int | None = None,
) -> Iterator[int]:
    """``generate_ids`` for a single sequence, yielding Python ints: the same ids from the same
    seed, minus the per-character arrays, because single-stream speed is Python overhead.

    A step may offer an int64 [1, 1] ``ids_buffer`` attribute: the next id is written there
    and that array passed, so the step need not copy it.
    """
    if mode != "stateful":
        for new in generate_ids(
            step,
            prime_ids,
            length,
            state_width=state_width,
            settings=settings,
            seed=seed,
            mode=mode,
            seq_len=seq_len,
        ):
            yield int(new[0])
        return
    prime = _prime_array(prime_ids)
    if length == 0:
        return
    ids = getattr(step, "ids_buffer", None)
    if not (isinstance(ids, np.ndarray) and ids.shape == (1, 1) and ids.dtype == np.int64):
        ids = np.zeros((1, 1), dtype=np.int64)
    logits, state = run_prime(step, prime, np.zeros((1, state_width), dtype=np.float32))
    noise = NoiseStream(seed, 1, logits.shape[1], settings.t32)
    greedy = settings.greedy
    last = length - 1
    position = 0
    try:
        for position in range(length):
            index = sample_one(logits, settings, None if greedy else noise(position))
            yield index
            if position < last:
                ids[0, 0] = index
                logits, state = step(ids, state)
    except NonFiniteLogits as exc:
        raise exc.at(position) from None


def _prime_array(prime_ids: Sequence[int] | np.ndarray) -> np.ndarray:
    prime = np.asarray(prime_ids, dtype=np.int64).reshape(-1)
    if not len(prime):
        raise ValueError("prime_ids must hold at least one id")
    return prime
