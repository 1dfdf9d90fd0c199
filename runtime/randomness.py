"""The specified random stream: the same seed gives the same noise in every language.

gru-edge/2 samples with the Gumbel-max rule (runtime.sampler), which needs one noise value per
vocabulary entry per generated character. With ``V`` the vocabulary size and ``H = ceil(V / 4)``,
the value for sample row ``b``, character position ``n`` (counted from the stream's first
generated character) and vocabulary entry ``j = 4 q + r`` (0 <= r < 4) is

    key     = (seed + b) mod 2**64
    z       = (key + (n * H + q + 1) * 0x9E3779B97F4A7C15) mod 2**64
    z       = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 mod 2**64
    z       = (z ^ (z >> 27)) * 0x94D049BB133111EB mod 2**64
    z       =  z ^ (z >> 31)                        (SplitMix64: one 64-bit output per 4 entries)
    m       = (z >> (48 - 16 r)) & 0xFFFF           (its four 16-bit parts, high first)
    gumbel  = TABLE[m],  TABLE[m] = float32(-ln(-ln((2 m + 1) / 2**17)))   (ln in float64)

The stream is counter-based: any position is computed directly, chunks of any size give the
same values, and row ``b`` of a batch seeded ``s`` draws the noise of the single stream seeded
``s + b``. Only 64-bit integer arithmetic and a table of 65,536 float64 logarithms are involved:
every language has them, and the model file computes exactly this inside its graph
(runtime.generator_build). Sixteen bits of uniform per entry put the Gumbel-max draw within
about 2**-16 of exact softmax sampling, and cost a quarter of the hashing of one hash per entry.
"""

from __future__ import annotations

import functools

import numpy as np

GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
PARTS = 4  # 16-bit table indices per SplitMix64 output
TABLE_BITS = 16
MAX_SEED = (1 << 63) - 1  # the graph's seed input is int64
# Noise values a chunk of the host loop computes at once: big enough that numpy's per-call cost
# vanishes, small enough to stay in cache (64 KiB of float32).
CHUNK_VALUES = 1 << 14

_U64 = np.uint64
_SHIFTS = np.array([48, 32, 16, 0], dtype=np.uint64)


def splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function over uint64 values (wrapping arithmetic)."""
    z = z ^ (z >> _U64(30))
    z *= _U64(MIX1)
    z ^= z >> _U64(27)
    z *= _U64(MIX2)
    z ^= z >> _U64(31)
    return z


@functools.cache
def gumbel_table() -> np.ndarray:
    """TABLE: float32 [65536], the Gumbel value of each 16-bit uniform's bin centre."""
    u = (2 * np.arange(1 << TABLE_BITS, dtype=np.float64) + 1) / 2.0 ** (TABLE_BITS + 1)
    table = (-np.log(-np.log(u))).astype(np.float32)
    table.flags.writeable = False
    return table


def hashes_per_position(vocab: int) -> int:
    """H: SplitMix64 outputs per character position."""
    return -(-vocab // PARTS)


def table_indices(seed: int, rows: int, start: int, count: int, vocab: int) -> np.ndarray:
    """int64 [count, rows, vocab]: the stream's m for positions start..start+count-1."""
    h = hashes_per_position(vocab)
    keys = (np.arange(rows, dtype=np.uint64) + _U64(seed % (1 << 64)))[None, :, None]
    counters = (
        np.arange(start, start + count, dtype=np.uint64)[:, None] * _U64(h)
        + np.arange(1, h + 1, dtype=np.uint64)[None, :]
    )[:, None, :]
    with np.errstate(over="ignore"):
        z = splitmix64(counters * _U64(GOLDEN) + keys)  # [count, rows, H]
    parts = (z[..., None] >> _SHIFTS) & _U64(0xFFFF)  # [count, rows, H, 4]
    return parts.reshape(count, rows, h * PARTS)[..., :vocab].astype(np.int64)


def gumbel(seed: int, rows: int, start: int, count: int, vocab: int) -> np.ndarray:
    """float32 [count, rows, vocab]: the stream's Gumbel noise for those positions."""
    return gumbel_table()[table_indices(seed, rows, start, count, vocab)]


class NoiseStream:
    """One generation's noise, position by position, computed in chunks, already multiplied
    by the float32 temperature (float32(T * g), what the sampler adds to the logits)."""

    def __init__(self, seed: int, rows: int, vocab: int, scale: np.float32):
        self.seed, self.rows, self.vocab, self.scale = seed, rows, vocab, np.float32(scale)
        self._chunk = max(1, CHUNK_VALUES // (rows * vocab))
        self._start = 0
        self._block = np.empty((0, rows, vocab), dtype=np.float32)

    def __call__(self, position: int) -> np.ndarray:
        """float32 [rows, vocab] for generated character ``position`` (0-based)."""
        index = position - self._start
        if not 0 <= index < len(self._block):
            self._start, index = position, 0
            block = gumbel(self.seed, self.rows, position, self._chunk, self.vocab)
            block *= self.scale
            self._block = block
        return self._block[index]


def gumbel_rows(keys: np.ndarray, positions: np.ndarray, vocab: int, count: int = 1) -> np.ndarray:
    """float32 [rows, count, vocab]: row r's noise for its own positions ``positions[r]`` to
    ``positions[r] + count - 1``, for rows with their own keys (``seed + b``, uint64) and
    positions (uint64): row r equals ``gumbel(keys[r], 1, positions[r], count, vocab)[:, 0]``.
    A batching server's rows each carry their own stream."""
    h = hashes_per_position(vocab)
    at = positions[:, None] + np.arange(count, dtype=np.uint64)[None, :]  # [rows, count]
    counters = at[..., None] * _U64(h) + np.arange(1, h + 1, dtype=np.uint64)  # [rows, count, H]
    with np.errstate(over="ignore"):
        z = splitmix64(counters * _U64(GOLDEN) + keys[:, None, None])
    parts = (z[..., None] >> _SHIFTS) & _U64(0xFFFF)  # [rows, count, H, 4]
    flat = parts.reshape(len(keys), count, h * PARTS)[..., :vocab]
    return gumbel_table()[flat.astype(np.int64)]
