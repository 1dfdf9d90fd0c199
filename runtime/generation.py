"""Generation loops over any step function, so the ONNX runtime, the trainer's per-epoch samples
and the parity tests all run the same code.

A step function has the ONNX contract's shape: ``step(ids int64 [batch, time], state float32
[batch, units]) -> (logits [batch, vocab], state_out [batch, units])``. The loops only pass a
returned state back into the next step, so a step may return its state as any token (the ONNX
runtime keeps it on the GPU), and they sample from logits before stepping again, so a step may
reuse its logits buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from gru_edge.runtime.options import Mode
from gru_edge.runtime.sampler import SamplingSettings, sample_ids, sample_one

StepFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
# A long prime (a whole --prime-file) is fed in pieces: the graph one-hot encodes its input, so
# one piece costs time x batch x vocab floats of memory.
PRIME_CHUNK = 2048


def run_prime(step: StepFn, ids: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Feed ``ids`` [batch, time] from ``state`` in pieces; the logits and state after the last."""
    logits, state = step(ids[:, :PRIME_CHUNK], state)
    for start in range(PRIME_CHUNK, ids.shape[1], PRIME_CHUNK):
        logits, state = step(ids[:, start : start + PRIME_CHUNK], state)
    return logits, state


def generate_ids(
    step: StepFn,
    prime_ids: Sequence[int],
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
    the last ``seq_len`` characters from a zero state for every character.
    """
    if not prime_ids:
        raise ValueError("prime_ids must hold at least one id")
    zero = np.zeros((batch, units), dtype=np.float32)
    if mode == "stateful":
        ids = np.tile(np.asarray(prime_ids, dtype=np.int64), (batch, 1))
        logits, state = run_prime(step, ids, zero)
        for position in range(length):
            new = sample_ids(logits, settings, rng)
            yield new
            if position + 1 < length:
                logits, state = step(new[:, None], state)
    elif mode == "window":
        if seq_len is None or seq_len < 1:
            raise ValueError("window mode needs seq_len")
        window = np.tile(np.asarray(prime_ids[-seq_len:], dtype=np.int64), (batch, 1))
        for _ in range(length):
            logits, _ = step(window, zero)
            new = sample_ids(logits, settings, rng)
            yield new
            window = np.concatenate([window, new[:, None]], axis=1)[:, -seq_len:]
    else:
        raise ValueError(f"unknown mode {mode!r}")


def generate_one(
    step: StepFn,
    prime_ids: Sequence[int],
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
    if not prime_ids:
        raise ValueError("prime_ids must hold at least one id")
    ids = getattr(step, "ids_buffer", None)
    if not (isinstance(ids, np.ndarray) and ids.shape == (1, 1) and ids.dtype == np.int64):
        ids = np.zeros((1, 1), dtype=np.int64)
    logits, state = run_prime(
        step, np.asarray([prime_ids], dtype=np.int64), np.zeros((1, units), dtype=np.float32)
    )
    last = length - 1
    for position in range(length):
        index = sample_one(logits, settings, rng)
        yield index
        if position < last:
            ids[0, 0] = index
            logits, state = step(ids, state)
