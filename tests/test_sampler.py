"""The sampler's math: greedy, top-k, top-p, extreme temperatures, odd logits, seeds, odds,
and the refusal of logits that leave nothing to sample."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from gru_edge.runtime.errors import ModelFileError, UsageError
from gru_edge.runtime.sampler import NonFiniteLogits, SamplingSettings, sample_ids, sample_one

INF = np.inf
NAN = np.nan


def _draws(logits, settings, n=2000, seed=0):
    """n single-row draws (the per-character path), as a numpy array."""
    rng = np.random.default_rng(seed)
    row = np.asarray(logits, dtype=np.float32)[None, :]
    return np.array([sample_one(row, settings, rng) for _ in range(n)])


def _batch_draws(logits, settings, n=20000, seed=0, dtype=np.float32):
    """n draws as one batch of identical rows (the batch path)."""
    rows = np.tile(np.asarray(logits, dtype=dtype), (n, 1))
    return sample_ids(rows, settings, np.random.default_rng(seed))


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
    greedy = SamplingSettings(temperature=0)
    rng = np.random.default_rng(0)
    row = np.array([logits], dtype=dtype)
    assert sample_ids(row, greedy, rng).tolist() == [expected]
    assert sample_one(row, greedy, rng) == expected
    assert sample_ids(np.tile(row, (300, 1)), greedy, rng).tolist() == [expected] * 300


@pytest.mark.parametrize("temperature", [5e-324, 1e-300, 1e-200, 1e-9])
def test_tiny_temperatures_are_greedy_without_warnings(temperature):
    logits = np.array([[0.5, 3.0, 2.999, -1e30, 1e-3]], dtype=np.float32)
    settings = SamplingSettings(temperature=temperature)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        single = _draws(logits[0], settings, n=200)
        batch = _batch_draws(logits[0], settings, n=300)
    assert set(single.tolist()) == {1} and set(batch.tolist()) == {1}


def test_huge_temperature_is_uniform():
    logits = np.array([10.0, 0.0, -10.0, 5.0], dtype=np.float32)
    settings = SamplingSettings(temperature=1e9)
    counts = np.bincount(_batch_draws(logits, settings, n=40000), minlength=4)
    assert np.all(np.abs(counts / 40000 - 0.25) < 0.015), counts


def test_float32_probabilities_summing_past_one_do_not_raise():
    # Logits whose float32 softmax sums past 1 once cast: the notebook's multinomial raises.
    rng = np.random.default_rng(0)
    for _ in range(1000):
        logits = rng.standard_normal(70).astype(np.float32)
        logits[-1] = -30
        p = np.exp(logits) / np.exp(logits).sum()
        if p.astype(np.float64)[:-1].sum() > 1 + 1e-12:
            break
    else:
        pytest.fail("no float32 softmax summing past 1 found")
    with pytest.raises(ValueError):
        np.random.multinomial(1, p)
    ids = _batch_draws(logits, SamplingSettings(), n=1000)
    assert ids.min() >= 0 and ids.max() < 70
    assert 0 <= sample_one(logits[None, :], SamplingSettings(), rng) < 70


@pytest.mark.parametrize("temperature", [1.0, 0.3, 3.0])
def test_minus_infinity_logits_are_never_sampled(temperature):
    logits = [-INF, 0.0, -INF, 1.0, -INF, 0.5, -INF]
    settings = SamplingSettings(temperature=temperature)
    allowed = {1, 3, 5}
    assert set(_draws(logits, settings, n=500).tolist()) <= allowed
    assert set(_batch_draws(logits, settings, n=3000).tolist()) == allowed


# Every way to reach the sampler: the single-row fast path (float32), the batch fast path, the
# careful path (float64 logits, top-k, top-p, a temperature too small for the fast arithmetic).
_PATHS = {
    "fast": lambda s: (s, np.float32),
    "careful float64": lambda s: (s, np.float64),
    "careful top-k": lambda s: (SamplingSettings(s.temperature, top_k=2), np.float32),
    "careful top-p": lambda s: (SamplingSettings(s.temperature, top_p=0.9), np.float32),
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
def test_logits_that_leave_nothing_to_sample_raise_before_drawing(row, what, temperature, path):
    settings, dtype = _PATHS[path](SamplingSettings(temperature=temperature))
    good = [0.5, 0.1, 0.2]
    for rows, bad_row in (([row], 0), ([good, good, row, good], 2), ([row] * 300, 0)):
        logits = np.array(rows, dtype=dtype)
        rng, twin = np.random.default_rng(1), np.random.default_rng(1)
        with pytest.raises(NonFiniteLogits) as info:
            sample_ids(logits, settings, rng)
        assert info.value.what == what and info.value.row == bad_row
        assert isinstance(info.value, ModelFileError)
        message = str(info.value)
        assert f"computed {what} logits" in message and "\n" not in message
        assert (f"(sample {bad_row + 1} of {len(rows)})" in message) == (len(rows) > 1)
        assert rng.random() == twin.random()  # nothing was drawn
    with pytest.raises(NonFiniteLogits, match=re.escape(f"computed {what} logits")):
        sample_one(np.array([row], dtype=dtype), settings, np.random.default_rng(0))


def test_the_error_names_the_position_it_hit():
    error = NonFiniteLogits("NaN", 0, 1).at(1233)
    assert "computed NaN logits at generated character 1,234," in str(error)
    assert error.position == 1233 and error.what == "NaN"


class _FixedRng:
    """Returns one fixed uniform number per row."""

    def __init__(self, value: float):
        self.value = value

    def random(self, size=None):
        return self.value if size is None else np.full(size, self.value)


@pytest.mark.parametrize(
    "u, expected",
    [
        (0.0, 1),  # u = 0 must not land on the -inf entry before the first weighted one
        (np.nextafter(1.0, 0.0), 3),  # u at the total must not run past the last weighted one
    ],
)
def test_edge_uniforms_land_on_weighted_characters(u, expected):
    logits = np.array([[-INF, 0.0, 0.0, 0.0, -INF]], dtype=np.float32)
    for path_logits in (logits, logits.astype(np.float64), np.tile(logits, (3, 1))):
        ids = sample_ids(path_logits, SamplingSettings(), _FixedRng(u))
        assert set(ids.tolist()) == {expected}
    assert sample_one(logits, SamplingSettings(), _FixedRng(u)) == expected


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


def test_same_seed_same_ids_and_one_uniform_per_row():
    logits = np.random.default_rng(1).standard_normal((7, 70)).astype(np.float32)
    settings = SamplingSettings(temperature=0.8)
    first = sample_ids(logits, settings, np.random.default_rng(5))
    assert first.dtype == np.int64 and first.shape == (7,)
    assert np.array_equal(first, sample_ids(logits, settings, np.random.default_rng(5)))
    assert not np.array_equal(first, sample_ids(logits, settings, np.random.default_rng(6)))
    rng, twin = np.random.default_rng(9), np.random.default_rng(9)
    sample_ids(logits, settings, rng)
    twin.random(7)
    assert rng.random() == twin.random()


@pytest.mark.parametrize("temperature", [0.0, 0.7, 1.0, 1.6])
@pytest.mark.parametrize("batch", [1, 5, 300])
def test_fast_and_careful_paths_pick_the_same_ids(temperature, batch):
    # float32 logits take the fast path, float64 ones the careful path: same arithmetic.
    logits = (np.random.default_rng(2).standard_normal((batch, 70)) * 4).astype(np.float32)
    settings = SamplingSettings(temperature=temperature)
    for seed in range(5):
        fast = sample_ids(logits, settings, np.random.default_rng(seed))
        careful = sample_ids(logits.astype(np.float64), settings, np.random.default_rng(seed))
        assert np.array_equal(fast, careful)


def test_sample_one_matches_sample_ids_and_takes_one_row():
    logits = np.random.default_rng(3).standard_normal((1, 70)).astype(np.float32)
    settings = SamplingSettings(temperature=0.9)
    for seed in range(20):
        expected = sample_ids(logits, settings, np.random.default_rng(seed))[0]
        assert sample_one(logits, settings, np.random.default_rng(seed)) == expected
        assert sample_one(logits[0], settings, np.random.default_rng(seed)) == expected
    with pytest.raises(ValueError, match="one row"):
        sample_one(np.zeros((2, 70), np.float32), settings, np.random.default_rng(0))


def test_one_dimensional_and_wide_logits():
    rng = np.random.default_rng(0)
    flat = np.array([0.0, 9.0, 0.0], np.float32)
    assert sample_ids(flat, SamplingSettings(0), rng).tolist() == [1]
    wide = np.zeros((4, 300), np.float32)
    wide[:, 299] = 50  # past the uint8 counter of the batch fast path
    assert sample_ids(wide, SamplingSettings(), rng).tolist() == [299] * 4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": -1.0}, "temperature must be"),
        ({"temperature": float("nan")}, "temperature must be"),
        ({"temperature": float("inf")}, "temperature must be"),
        ({"top_k": 0}, "top-k must be at least 1"),
        ({"top_p": 0.0}, "top-p must be in (0, 1]"),
        ({"top_p": 1.5}, "top-p must be in (0, 1]"),
    ],
)
def test_bad_settings_are_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("]", r"\]")):
        SamplingSettings(**kwargs)
