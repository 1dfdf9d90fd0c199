"""Generation loops over any step function, so the ONNX runtime, the trainer's per-epoch samples
and the parity tests all run the same code.

A step function has the ONNX contract's shape: ``step(ids int64 [batch, time], state float32
[batch, units]) -> (logits [batch, vocab], state_out [batch, units])``. The loops only pass a
returned state back into the next step, so a step may return its state as any token (the ONNX
runtime keeps it on the GPU), and they sample from logits before stepping again, so a step may
reuse its logits buffer.

Logits the sampler cannot use (NaN, +inf, only -inf) stop a loop with NonFiniteLogits, a
ModelFileError that names the generated character it happened at.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from gru_edge.runtime.options import Mode
from gru_edge.runtime.sampler import NonFiniteLogits, SamplingSettings, sample_ids, sample_one

StepFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
# A long prime (a whole --prime-file) is fed in pieces of at most this many ids per batch row
# times rows: the graph one-hot encodes its input, so a piece costs time x batch x vocab floats.
PRIME_CHUNK = 2048


def run_prime(
    step: StepFn, prime: np.ndarray, state: np.ndarray, batch: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Feed the prime ``prime`` (int64 [time], the same for every row) from ``state`` in
    pieces; the logits and state after the last. Each piece is repeated for the batch on its
    own, so a long prime never becomes a [batch, time] array."""
    chunk = max(1, PRIME_CHUNK // batch)
    logits = None
    for start in range(0, len(prime), chunk):
        piece = prime[start : start + chunk]
        logits, state = step(np.tile(piece, (batch, 1)), state)
    return logits, state


def generate_ids(
    step: StepFn,
    prime_ids: Sequence[int] | np.ndarray,
    length: int,
    *,
    units: int,
    settings: SamplingSettings,
    rng: np.random.Generator,
    batch: int = 1,
    mode: Mode = "stateful",
    seq_len: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield ``length`` arrays of ``batch`` new ids, one array per generated position.

    stateful: the prime is run once from a zero state, then each new id is one step that carries
    the GRU state, so every character costs the same. window: the notebook's semantics, re-feeding
    the last ``seq_len`` characters from a zero state for every character. ``length`` 0 runs
    nothing.
    """
    prime = _prime_array(prime_ids)
    if mode not in ("stateful", "window"):
        raise ValueError(f"unknown mode {mode!r}")
    if mode == "window" and (seq_len is None or seq_len < 1):
        raise ValueError("window mode needs seq_len")
    if length == 0:
        return
    zero = np.zeros((batch, units), dtype=np.float32)
    position = 0
    try:
        if mode == "stateful":
            logits, state = run_prime(step, prime, zero, batch)
            for position in range(length):
                new = sample_ids(logits, settings, rng)
                yield new
                if position + 1 < length:
                    logits, state = step(new[:, None], state)
        else:
            window = np.tile(prime[-seq_len:], (batch, 1))
            for position in range(length):  # noqa: B007  # read by the except below
                logits, _ = step(window, zero)
                new = sample_ids(logits, settings, rng)
                yield new
                window = np.concatenate([window, new[:, None]], axis=1)[:, -seq_len:]
    except NonFiniteLogits as exc:
        raise exc.at(position) from None


def generate_one(
    step: StepFn,
    prime_ids: Sequence[int] | np.ndarray,
    length: int,
    *,
    units: int,
    settings: SamplingSettings,
    rng: np.random.Generator,
    mode: Mode = "stateful",
    seq_len: int | None = None,
) -> Iterator[int]:
    """``generate_ids`` for a single sequence, yielding Python ints: the same ids from the same
    ``rng``, minus the per-character arrays, because single-stream speed is Python overhead.

    A step may offer an int64 [1, 1] ``ids_buffer`` attribute: the next id is written there
    and that array passed, so the step need not copy it.
    """
    if mode != "stateful":
        for new in generate_ids(
            step,
            prime_ids,
            length,
            units=units,
            settings=settings,
            rng=rng,
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
    logits, state = run_prime(step, prime, np.zeros((1, units), dtype=np.float32))
    last = length - 1
    position = 0
    try:
        for position in range(length):
            index = sample_one(logits, settings, rng)
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
