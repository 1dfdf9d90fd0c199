"""The sampler's math: greedy, top-k, top-p, extreme temperatures, odd logits, seeds, odds,
and the refusal of logits that leave nothing to sample. Noise comes from the specified stream
(runtime.randomness); its own tests are in test_randomness.py."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from gru_edge.runtime.errors import ModelFileError, UsageError
from gru_edge.runtime.randomness import NoiseStream, gumbel
from gru_edge.runtime.sampler import NonFiniteLogits, SamplingSettings, sample_ids, sample_one

INF = np.inf
NAN = np.nan


def _draws(logits, settings, n=2000, seed=0):
    """n single-row draws (the per-character path, one stream position each)."""
    row = np.asarray(logits, dtype=np.float32)[None, :]
    noise = NoiseStream(seed, 1, row.shape[1], settings.t32)
    return np.array([sample_one(row, settings, noise(i)) for i in range(n)])


def _noise(rows, vocab, settings, seed=0):
    """The stream's scaled noise for one position of ``rows`` rows."""
    return gumbel(seed, rows, 0, 1, vocab)[0] * settings.t32


def _batch_draws(logits, settings, n=20000, seed=0, dtype=np.float32):
    """n draws as one batch of identical rows (the batch path)."""
    rows = np.tile(np.asarray(logits, dtype=dtype), (n, 1))
    return sample_ids(rows, settings, _noise(n, rows.shape[1], settings, seed))


@pytest.fixture(autouse=True)
def _no_numpy_warnings():
    # NaN and infinite logits must be handled, not warned about.
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


@pytest.mark.parametrize(
    "logits, expected",
    [
        ([1.0, 5.0, 2.0], 1),
        ([-INF, -INF, 0.0], 2),
        ([3.0, 3.0, 1.0], 0),  # ties go to the first
        ([-1e30, 1e30, 0.0], 1),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_greedy_picks_the_largest_logit(logits, expected, dtype):
    row = np.array(logits, dtype=dtype)
    greedy = SamplingSettings(temperature=0)
    assert sample_ids(row, greedy, None).tolist() == [expected]
    assert sample_one(row, greedy, None) == expected
    assert sample_ids(np.tile(row, (300, 1)), greedy, None).tolist() == [expected] * 300


@pytest.mark.parametrize("temperature", [1e-30, 1e-200, 1e-320])
def test_tiny_temperatures_are_greedy_without_warnings(temperature):
    logits = np.array([[0.5, 3.0, 2.999, -1e30, 1e-3]], dtype=np.float32)
    settings = SamplingSettings(temperature=temperature)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        single = _draws(logits[0], settings, n=200)
        batch = _batch_draws(logits[0], settings, n=300)
    assert set(single.tolist()) == {1} and set(batch.tolist()) == {1}


def test_a_temperature_below_float32s_smallest_is_greedy_like_the_graph():
    # The graph takes float32: 1e-200 is 0 there, so greedy, and so here, filters and all.
    settings = SamplingSettings(temperature=1e-200, top_k=3, top_p=0.5)
    assert settings.greedy and not settings.filters(70)
    assert not SamplingSettings(temperature=1e-30).greedy


def test_huge_temperature_is_uniform():
    logits = np.array([10.0, 0.0, -10.0, 5.0], dtype=np.float32)
    settings = SamplingSettings(temperature=1e9)
    counts = np.bincount(_batch_draws(logits, settings, n=40000), minlength=4)
    assert np.all(np.abs(counts / 40000 - 0.25) < 0.015), counts


@pytest.mark.parametrize("temperature", [1.0, 0.3, 3.0])
def test_minus_infinity_logits_are_never_sampled(temperature):
    logits = [-INF, 0.0, -INF, 1.0, -INF, 0.5, -INF]
    settings = SamplingSettings(temperature=temperature)
    allowed = {1, 3, 5}
    assert set(_draws(logits, settings, n=500).tolist()) <= allowed
    assert set(_batch_draws(logits, settings, n=3000).tolist()) == allowed


# Every way through the sampler: the single-row path, float64 logits (cast to float32 as the
# graph sees them), and the filtered paths.
_PATHS = {
    "plain": lambda s: (s, np.float32),
    "float64 logits": lambda s: (s, np.float64),
    "top-k": lambda s: (SamplingSettings(s.temperature, top_k=2), np.float32),
    "top-p": lambda s: (SamplingSettings(s.temperature, top_p=0.9), np.float32),
}


@pytest.mark.parametrize(
    "row, what",
    [
        ([0.0, NAN, 1.0], "NaN"),
        ([NAN, NAN, NAN], "NaN"),
        ([0.0, INF, 1.0], "+inf"),
        ([INF, INF, INF], "+inf"),
        ([-INF, -INF, -INF], "only -inf"),
        ([NAN, INF, -INF], "NaN"),
    ],
)
@pytest.mark.parametrize("temperature", [0.0, 1.0, 0.3, 1e-250])
@pytest.mark.parametrize("path", list(_PATHS))
def test_logits_that_leave_nothing_to_sample_raise(row, what, temperature, path):
    settings, dtype = _PATHS[path](SamplingSettings(temperature=temperature))
    good = [0.5, 0.1, 0.2]
    for rows, bad_row in (([row], 0), ([good, good, row, good], 2), ([row] * 300, 0)):
        logits = np.array(rows, dtype=dtype)
        with pytest.raises(NonFiniteLogits) as info:
            sample_ids(logits, settings, _noise(len(rows), 3, settings))
        assert info.value.what == what and info.value.row == bad_row
        assert isinstance(info.value, ModelFileError)
        message = str(info.value)
        assert f"computed {what} logits" in message and "\n" not in message
        assert (f"(sample {bad_row + 1} of {len(rows)})" in message) == (len(rows) > 1)
    with pytest.raises(NonFiniteLogits, match=re.escape(f"computed {what} logits")):
        sample_one(np.array([row], dtype=dtype), settings, _noise(1, 3, settings))


def test_the_error_names_the_position_it_hit():
    error = NonFiniteLogits("NaN", 0, 1).at(1233)
    assert "computed NaN logits at generated character 1,234," in str(error)
    assert error.position == 1233 and error.what == "NaN"


@pytest.mark.parametrize(
    "settings, allowed",
    [
        (SamplingSettings(top_k=1), {0}),
        (SamplingSettings(top_k=2, temperature=5.0), {0, 1}),
        (SamplingSettings(top_k=10), {0, 1, 2, 3}),
        (SamplingSettings(top_p=0.5), {0}),  # 0.5 alone reaches 0.5
        (SamplingSettings(top_p=0.7), {0, 1}),
        (SamplingSettings(top_p=0.81), {0, 1, 2}),
        (SamplingSettings(top_p=1.0), {0, 1, 2, 3}),
        (SamplingSettings(top_k=3, top_p=0.7), {0, 1}),
    ],
)
def test_top_k_and_top_p_keep_the_right_characters(settings, allowed):
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    assert set(_batch_draws(logits, settings, n=5000).tolist()) == allowed
    assert set(_draws(logits, settings, n=300).tolist()) <= allowed


def test_top_k_keeps_ties_with_the_kth_and_top_p_ties_with_the_smallest_kept():
    logits = np.array([[2.0, 1.0, 1.0, 0.0]], dtype=np.float32)
    k2 = SamplingSettings(top_k=2)
    assert set(_batch_draws(logits[0], k2, n=3000).tolist()) == {0, 1, 2}
    # softmax: 0.48, 0.18, 0.18, 0.07 -> 0.6 is reached by the first two; the tie stays.
    p = SamplingSettings(top_p=0.6)
    assert set(_batch_draws(logits[0], p, n=3000).tolist()) == {0, 1, 2}


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_frequencies_match_the_softmax(temperature):
    logits = np.array([2.0, 1.0, 0.0, -1.0, 0.5], dtype=np.float32)
    p = np.exp(logits / temperature)
    p /= p.sum()
    settings = SamplingSettings(temperature=temperature)
    for ids in (_batch_draws(logits, settings, n=20000), _draws(logits, settings, n=5000)):
        counts = np.bincount(ids, minlength=5)
        expected = p * len(ids)
        chi2 = ((counts - expected) ** 2 / expected).sum()
        assert chi2 < 18.47, (chi2, counts, expected)  # 4 degrees of freedom, p = 0.001


def test_the_pick_is_the_argmax_of_logits_plus_scaled_noise():
    logits = np.random.default_rng(1).standard_normal((7, 70)).astype(np.float32)
    settings = SamplingSettings(temperature=0.8)
    noise = _noise(7, 70, settings, seed=5)
    ids = sample_ids(logits, settings, noise)
    assert ids.dtype == np.int64 and ids.shape == (7,)
    assert np.array_equal(ids, (logits + noise).argmax(axis=1))
    assert not np.array_equal(ids, sample_ids(logits, settings, _noise(7, 70, settings, seed=6)))


@pytest.mark.parametrize("temperature", [0.0, 0.7, 1.0, 1.6])
@pytest.mark.parametrize("settings", [{}, {"top_k": 5}, {"top_p": 0.8}])
def test_one_row_and_batch_paths_pick_the_same_ids(temperature, settings):
    settings = SamplingSettings(temperature, **settings)
    logits = (np.random.default_rng(2).standard_normal((50, 70)) * 4).astype(np.float32)
    for seed in range(3):
        noise = _noise(50, 70, settings, seed)
        batch = sample_ids(logits, settings, noise)
        rows = [sample_one(logits[i], settings, noise[i]) for i in range(50)]
        assert batch.tolist() == rows
        assert np.array_equal(batch, sample_ids(logits.astype(np.float64), settings, noise))
    with pytest.raises(ValueError, match="one row"):
        sample_one(np.zeros((2, 70), np.float32), settings, None)


def test_one_dimensional_and_wide_logits():
    flat = np.array([0.0, 9.0, 0.0], np.float32)
    assert sample_ids(flat, SamplingSettings(0), None).tolist() == [1]
    wide = np.zeros((4, 300), np.float32)
    wide[:, 299] = 50
    settings = SamplingSettings()
    assert sample_ids(wide, settings, _noise(4, 300, settings)).tolist() == [299] * 4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": -1.0}, "temperature must be"),
        ({"temperature": float("nan")}, "temperature must be"),
        ({"temperature": float("inf")}, "temperature must be"),
        ({"temperature": 1e31}, "at most 1e"),
        ({"top_k": 0}, "top-k must be at least 1"),
        ({"top_p": 0.0}, "top-p must be in (0, 1]"),
        ({"top_p": 1.5}, "top-p must be in (0, 1]"),
    ],
)
def test_bad_settings_are_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("]", r"\]")):
        SamplingSettings(**kwargs)
