"""The one sampler: next-character ids from logits, used by the runtime, the trainer's per-epoch
samples and the parity tests.

It works in float64 and in log space, straight from logits, so it never raises on float32
probabilities that sum past 1 and never yields NaN at tiny or huge temperatures
(the notebook's ``log(p) / T`` does both). Logits that leave nothing sensible to sample (a NaN,
a +inf, or a row of only -inf) raise NonFiniteLogits: a model that computes them is broken, and
sampling them would print uniform noise or one character forever without saying so. (-inf for
some characters is fine: they are never picked.)

Generation calls it once per character, so the common case (float32 logits, no top-k/top-p)
takes a short path of a few numpy calls; anything unusual takes the careful path, which gives
the same numbers wherever both apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from gru_edge.runtime.errors import ModelFileError, UsageError

# Below this temperature, (z - max) / T could overflow float64 for float32 logits
# (their spread is at most ~6.8e38), so the careful path handles it without warnings.
_FAST_MIN_TEMPERATURE = 1e-200


@dataclass(frozen=True)
class SamplingSettings:
    """How to pick the next character."""

    temperature: float = 1.0  # 0 = greedy argmax; the notebook called it "diversity"
    top_k: int | None = None  # keep only the k most likely characters
    top_p: float | None = None  # keep the smallest set whose probability reaches p (nucleus)

    def __post_init__(self) -> None:
        t = self.temperature
        if not (isinstance(t, (int, float)) and math.isfinite(t) and t >= 0):
            raise UsageError(f"temperature must be a finite number >= 0, got {t!r}; try 1.0")
        if self.top_k is not None and self.top_k < 1:
            raise UsageError(f"top-k must be at least 1, got {self.top_k}; omit it to keep all")
        if self.top_p is not None and not (0 < self.top_p <= 1):
            raise UsageError(f"top-p must be in (0, 1], got {self.top_p}; try 0.9")


class NonFiniteLogits(ModelFileError):
    """Logits holding NaN or +inf, or only -inf: the model is broken, nothing can be sampled.

    A ModelFileError to callers; the generation loop adds the character position with ``at``.
    """

    def __init__(self, what: str, row: int, rows: int, position: int | None = None):
        self.what, self.row, self.rows, self.position = what, row, rows, position
        where = f" at generated character {position + 1:,}" if position is not None else ""
        sample = f" (sample {row + 1} of {rows})" if rows > 1 else ""
        super().__init__(
            f"the model computed {what} logits{where}{sample}, which leave nothing to sample: "
            "its weights are broken or its state overflowed; re-export it from a run whose "
            "loss was finite"
        )

    def at(self, position: int) -> NonFiniteLogits:
        """The same error, saying which generated character (0-based ``position``) it hit."""
        return NonFiniteLogits(self.what, self.row, self.rows, position)


def sample_ids(
    logits: np.ndarray, settings: SamplingSettings, rng: np.random.Generator
) -> np.ndarray:
    """Pick one id per row of ``logits`` ([batch, vocab] or [vocab]); returns int64 ids.

    Draws exactly one uniform number per row (none when greedy), so a seed fixes the text.
    -inf logits are never picked; a row holding NaN or +inf, or only -inf, raises
    NonFiniteLogits before any number is drawn.
    """
    if _fast_ok(logits, settings):
        if logits.ndim == 1 or (logits.ndim == 2 and logits.shape[0] == 1):
            index = _fast_one(logits.reshape(-1), settings.temperature, rng)
            if index is not None:
                return np.array([index], dtype=np.int64)
        elif logits.ndim == 2 and logits.shape[1] < 256:
            ids = _fast_batch(logits, settings.temperature, rng)
            if ids is not None:
                return ids
    return _sample_careful(logits, settings, rng)


def sample_one(logits: np.ndarray, settings: SamplingSettings, rng: np.random.Generator) -> int:
    """``int(sample_ids(logits, settings, rng)[0])`` for one row ([vocab] or [1, vocab]),
    the same id from the same draw, without building arrays: the per-character fast path."""
    if logits.ndim > 1 and logits.shape[0] != 1:
        raise ValueError(f"sample_one takes one row of logits, got shape {logits.shape}")
    if _fast_ok(logits, settings):
        index = _fast_one(logits.reshape(-1), settings.temperature, rng)
        if index is not None:
            return index
    return int(_sample_careful(logits, settings, rng)[0])


def _fast_ok(logits: np.ndarray, settings: SamplingSettings) -> bool:
    return (
        settings.top_k is None
        and settings.top_p is None
        and isinstance(logits, np.ndarray)
        and logits.dtype == np.float32
    )


# The fast paths do the careful path's arithmetic in the same order (so the same seed picks the
# same ids). The row maximum they compute anyway is the whole non-finite check: it is NaN if any
# logit is (numpy's max and argmax stop at a NaN), +inf if any is, -inf if all are; a finite
# maximum makes every shifted value <= 0, -inf included. They return None only for temperatures
# too small for their arithmetic, and the careful path takes over before any number is drawn.

_isfinite = math.isfinite  # takes numpy scalars; cheaper per character than two comparisons
_max = np.maximum.reduce  # skips ndarray.max's Python-level wrapper: this runs per character
_cumsum = np.add.accumulate


def _fast_one(row: np.ndarray, t: float, rng: np.random.Generator) -> int | None:
    if t == 0:
        index = int(row.argmax())
        if _isfinite(row[index]):
            return index
        raise _non_finite(row)
    if t < _FAST_MIN_TEMPERATURE:
        return None
    z = row.astype(np.float64)
    top = _max(z)
    if not _isfinite(top):
        raise _non_finite(row)
    z -= top
    if t != 1:
        z /= t
    cdf = _cumsum(np.exp(z, out=z), out=z)
    index = int(cdf.searchsorted(rng.random() * cdf[-1], "right"))
    return index if index < len(cdf) else _last_weighted(cdf)


def _fast_batch(logits: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray | None:
    # Work on [vocab, batch]: numpy's reductions and cumulative sums along the last axis pay a
    # per-row overhead that dominates for rows of ~70; along the first axis they vectorise.
    if t == 0:
        ids = logits.argmax(axis=1)
        # All finite is the common case and the cheapest test; -inf entries are fine as long
        # as each row's winner is finite.
        if (
            not np.isfinite(logits).all()
            and not np.isfinite(logits[np.arange(len(ids)), ids]).all()
        ):
            raise _non_finite(logits)
        return ids.astype(np.int64)
    if t < _FAST_MIN_TEMPERATURE:
        return None
    z = np.array(logits.T, dtype=np.float64, order="C")
    top = z.max(axis=0)
    if not np.isfinite(top).all():
        raise _non_finite(logits)
    z -= top
    if t != 1:
        z /= t
    np.exp(z, out=z)
    # A cumulative sum down the rows, one vectorised add per vocabulary entry: the same
    # sequential order as np.cumsum along a row, so the same sums as the single-row path.
    add = np.add
    for prev, row in pairwise(z):
        add(prev, row, out=row)
    u = rng.random(z.shape[1]) * z[-1]
    # count(cdf <= u) is the first index whose cdf exceeds u; summing uint8 avoids a cast.
    ids = (z <= u).view(np.uint8).sum(axis=0, dtype=np.uint8).astype(np.int64)
    return _fix_overshoot(ids, z.T)


def _draw(cdf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Inverse-CDF draw, one uniform per row, from unnormalised cumulative weights [batch, V]."""
    u = rng.random(cdf.shape[0]) * cdf[:, -1]
    return _fix_overshoot((cdf <= u[:, None]).sum(axis=1, dtype=np.int64), cdf)


def _fix_overshoot(ids: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    # u rounds up to the total once in 2**53 draws: then take the last id with weight.
    for row in np.flatnonzero(ids >= cdf.shape[1]):
        ids[row] = _last_weighted(cdf[row])
    return ids


def _last_weighted(cdf_row: np.ndarray) -> int:
    return int(np.argmax(cdf_row >= cdf_row[-1]))


def _sample_careful(
    logits: np.ndarray, settings: SamplingSettings, rng: np.random.Generator
) -> np.ndarray:
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        return _careful(np.array(logits, dtype=np.float64, ndmin=2), settings, rng)


def _careful(z: np.ndarray, settings: SamplingSettings, rng: np.random.Generator) -> np.ndarray:
    top = z.max(axis=1, keepdims=True)
    if not np.isfinite(top).all():
        raise _non_finite(z)
    if settings.temperature == 0:
        return np.argmax(z, axis=1).astype(np.int64)
    # Shift before scaling: every value becomes <= 0, so dividing by a tiny temperature
    # gives -inf (never inf - inf = NaN) and a huge one tends to uniform.
    z -= top
    if settings.temperature != 1:
        z /= settings.temperature
    if settings.top_k is not None and settings.top_k < z.shape[1]:
        kth = np.partition(z, -settings.top_k, axis=1)[:, -settings.top_k, None]
        z[z < kth] = -np.inf
    weights = np.exp(z)
    if settings.top_p is not None and settings.top_p < 1:
        weights = _nucleus(weights, settings.top_p)
    return _draw(np.cumsum(weights, axis=1), rng)


def _non_finite(logits: np.ndarray) -> NonFiniteLogits:
    """The error for the first row whose maximum is not finite (the slow path: it is raised)."""
    rows = np.array(logits, dtype=np.float64, ndmin=2)
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~np.isfinite(rows.max(axis=1)))
    row = int(bad[0]) if len(bad) else 0
    values = rows[row]
    if np.isnan(values).any():
        what = "NaN"
    elif (values == np.inf).any():
        what = "+inf"
    else:
        what = "only -inf"
    return NonFiniteLogits(what, row, len(rows))


def _nucleus(weights: np.ndarray, top_p: float) -> np.ndarray:
    """Zero every weight outside the smallest most-likely set whose share reaches ``top_p``."""
    order = np.argsort(-weights, axis=1, kind="stable")
    sorted_w = np.take_along_axis(weights, order, axis=1)
    share = np.cumsum(sorted_w, axis=1) / sorted_w.sum(axis=1, keepdims=True)
    # Keep a character if the share before it is still below top_p (so the first is always kept).
    keep_sorted = (share - sorted_w / sorted_w.sum(axis=1, keepdims=True)) < top_p
    keep = np.empty_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=1)
    return np.where(keep, weights, 0.0)
