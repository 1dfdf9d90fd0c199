"""Generation loops over any step function, so the ONNX runtime, the trainer's per-epoch samples
and the parity tests all run the same code.

A step function has the ONNX contract's shape: ``step(ids int64 [batch, time], state float32
[batch, units]) -> (logits [batch, vocab], state_out [batch, units])``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np

from runtime.sampler import SamplingSettings, sample_ids

StepFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
Mode = Literal["stateful", "window"]


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
        logits, state = step(ids, zero)
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
