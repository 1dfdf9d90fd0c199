"""The specified random stream: the vectorised numpy version against a scalar one written from
docs/model-file.md's description, chunking, rows, distribution, and its test vectors."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from gru_edge.runtime.randomness import (
    NoiseStream,
    gumbel,
    gumbel_table,
    hashes_per_position,
    table_indices,
)

SPEC = Path(__file__).resolve().parents[1] / "docs" / "model-file.md"
MASK = (1 << 64) - 1


def scalar_index(seed: int, row: int, position: int, entry: int, vocab: int) -> int:
    """m for one (row, position, entry), with Python integers, as docs/model-file.md states it."""
    h = -(-vocab // 4)
    q, r = divmod(entry, 4)
    z = ((seed + row) + (position * h + q + 1) * 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    z ^= z >> 31
    return (z >> (48 - 16 * r)) & 0xFFFF


def scalar_gumbel(m: int) -> float:
    return float(np.float32(-math.log(-math.log((2 * m + 1) / 2**17))))


@pytest.mark.parametrize("vocab", [1, 3, 4, 5, 63, 70, 2745])
@pytest.mark.parametrize("seed", [0, 1, 12345, (1 << 63) - 1])
def test_numpy_stream_equals_the_scalar_definition(seed, vocab):
    rows, start, count = 3, 17, 4
    got = table_indices(seed, rows, start, count, vocab)
    assert got.shape == (count, rows, vocab) and got.dtype == np.int64
    for t in range(count):
        for b in range(rows):
            for j in sorted({0, 1, 3, vocab // 2, vocab - 1} & set(range(vocab))):
                assert got[t, b, j] == scalar_index(seed, b, start + t, j, vocab)


def test_the_table_is_the_float64_gumbel_of_each_bin_centre_rounded_once():
    table = gumbel_table()
    assert table.dtype == np.float32 and table.shape == (65536,)
    for m in (0, 1, 2, 1000, 32767, 32768, 65534, 65535):
        assert table[m] == scalar_gumbel(m)
    assert np.all(np.diff(table) > 0) and np.isfinite(table).all()
    assert not table.flags.writeable


def test_chunks_of_any_size_give_the_same_noise():
    whole = gumbel(7, 2, 0, 50, 70)
    parts = np.concatenate([gumbel(7, 2, 0, 13, 70), gumbel(7, 2, 13, 37, 70)])
    assert np.array_equal(whole, parts)
    stream = NoiseStream(7, 2, 70, np.float32(0.5))
    for position in (0, 1, 49, 3, 20):  # any order
        assert np.array_equal(stream(position), whole[position] * np.float32(0.5))


def test_row_b_of_seed_s_is_the_single_stream_of_seed_s_plus_b():
    batch = gumbel(100, 4, 5, 10, 63)
    for b in range(4):
        assert np.array_equal(batch[:, b], gumbel(100 + b, 1, 5, 10, 63)[:, 0])


def test_seeds_and_positions_differ():
    a, b = gumbel(1, 1, 0, 100, 63), gumbel(2, 1, 0, 100, 63)
    assert not np.array_equal(a, b)
    assert len({row.tobytes() for row in a[:, 0]}) == 100


def test_the_noise_is_standard_gumbel_and_the_bits_uniform():
    m = table_indices(3, 8, 0, 2000, 63).reshape(-1)
    counts = np.bincount(m >> 12, minlength=16)  # 16 bins of the 16-bit uniform
    expected = len(m) / 16
    assert ((counts - expected) ** 2 / expected).sum() < 37.7  # 15 dof, p = 0.001
    g = gumbel_table()[m].astype(np.float64)
    assert abs(g.mean() - 0.5772) < 0.01 and abs(g.std() - math.pi / math.sqrt(6)) < 0.01


def test_hashes_per_position():
    assert [hashes_per_position(v) for v in (1, 4, 5, 63, 64, 65)] == [1, 1, 2, 16, 16, 17]


def test_the_specifications_test_vectors():
    """docs/model-file.md gives, for a few seeds, the first table indices of the stream; they
    must be what the code computes (a reader implementing the stream checks against these)."""
    text = SPEC.read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| (\d+) \| ([\d, ]+) \| ([-\d., ]+) \|$", text, re.M)
    assert len(rows) >= 3, "the specification's test-vector table is missing"
    for seed, vocab, indices, values in rows:
        seed, vocab = int(seed), int(vocab)
        expected = [int(x) for x in indices.split(",")]
        got = table_indices(seed, 1, 0, 1, vocab)[0, 0, : len(expected)].tolist()
        assert got == expected, (seed, vocab)
        noise = gumbel(seed, 1, 0, 1, vocab)[0, 0, : len(expected)]
        assert [f"{v:.6f}" for v in noise] == [v.strip() for v in values.split(",")]
