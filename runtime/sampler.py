"""The one sampler: next-character ids from logits and the specified noise, used by the host
loop, the trainer's per-epoch samples and the parity tests. The model file's own generator
(runtime.generator_build) computes exactly the same thing inside its graph.

The rule, per row (``T`` = float32(temperature), ``g`` = the stream's Gumbel noise for this
character, runtime.randomness):

1. ``T == 0``: the first index of the largest logit (greedy; no noise is used).
2. top-k (1 <= k < V): logits below the k-th largest become -inf (ties with it are kept).
3. top-p (0 < p < 1), in float64: ``w = exp((logit - max) / T)``; sorted descending as ``s``
   with running sums ``c`` (left to right), a sorted entry is kept while ``c - s < p * c[-1]``
   (p as float64(float32(p))); every character whose ``w`` is at least the smallest kept ``s``
   is kept, the others become -inf.
4. The id is the first index of the largest ``logit + float32(T * g)``, all in float32.

Gumbel-max picks each character with probability softmax(logit / T), and every operation but
the float64 ``exp`` of top-p is exactly rounded, so a graph, numpy and JavaScript agree bit for
bit. Logits that leave nothing to sample (a NaN, a +inf, or a row of only -inf) raise
NonFiniteLogits: a model that computes them is broken, and sampling them would print noise or
one character forever without saying so. (-inf for some characters is fine: never picked.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gru_edge.runtime.errors import ModelFileError, UsageError

# float32(T * g) must stay finite: |g| < 17 for the stream's uniforms, float32 ends at 3.4e38.
MAX_TEMPERATURE = 1e30


@dataclass(frozen=True)
class SamplingSettings:
    """How to pick the next character."""

    temperature: float = 1.0  # 0 = greedy argmax; the notebook called it "diversity"
    top_k: int | None = None  # keep only the k most likely characters
    top_p: float | None = None  # keep the smallest set whose probability reaches p (nucleus)

    def __post_init__(self) -> None:
        t = self.temperature
        if not (isinstance(t, (int, float)) and math.isfinite(t) and 0 <= t <= MAX_TEMPERATURE):
            raise UsageError(
                f"temperature must be a finite number >= 0 (at most {MAX_TEMPERATURE:g}), "
                f"got {t!r}; try 1.0"
            )
        if self.top_k is not None and self.top_k < 1:
            raise UsageError(f"top-k must be at least 1, got {self.top_k}; omit it to keep all")
        if self.top_p is not None and not (0 < self.top_p <= 1):
            raise UsageError(f"top-p must be in (0, 1], got {self.top_p}; try 0.9")

    @property
    def t32(self) -> np.float32:
        """The temperature as the graph sees it (below float32's smallest, that is 0)."""
        return np.float32(self.temperature)

    @property
    def greedy(self) -> bool:
        """Rule 1 applies: the float32 temperature is 0."""
        return self.t32 == 0

    def filters(self, vocab: int) -> bool:
        """Whether top-k or top-p changes anything for a vocabulary of ``vocab``."""
        return not self.greedy and (
            (self.top_k is not None and self.top_k < vocab)
            or (self.top_p is not None and self.top_p < 1)
        )


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
    logits: np.ndarray, settings: SamplingSettings, noise: np.ndarray | None
) -> np.ndarray:
    """Pick one id per row of ``logits`` ([batch, vocab] or [vocab]); returns int64 ids.

    ``noise`` is float32(T * g) for this character ([batch, vocab], runtime.randomness'
    NoiseStream; ignored when greedy). A row holding NaN or +inf, or only -inf, raises
    NonFiniteLogits.
    """
    z = np.array(logits, dtype=np.float32, ndmin=2)
    if settings.filters(z.shape[1]):
        # Before filtering, which could drop a NaN or +inf and leave a row that looks fine.
        with np.errstate(invalid="ignore"):
            if not np.isfinite(z.max(axis=1)).all():
                raise _non_finite(logits)
        z = _filtered(z, settings)
    score = z if settings.greedy else z + noise.reshape(z.shape)
    ids = score.argmax(axis=1)
    # argmax lands on a NaN if there is one, on +inf if there is one, and on -inf only if the
    # whole row is: the picked score is finite exactly when the row can be sampled.
    if not np.isfinite(score[np.arange(len(ids)), ids]).all():
        raise _non_finite(logits)
    return ids.astype(np.int64)


_isfinite = math.isfinite  # takes numpy scalars; cheaper per character than numpy's


def sample_one(row: np.ndarray, settings: SamplingSettings, noise: np.ndarray | None) -> int:
    """``int(sample_ids(row, settings, noise)[0])`` for one row ([vocab] or [1, vocab]), the
    same id without building arrays when no filter applies: the per-character fast path."""
    if row.ndim > 1 and row.shape[0] != 1:
        raise ValueError(f"sample_one takes one row of logits, got shape {row.shape}")
    if row.dtype != np.float32 or settings.filters(row.shape[-1]):
        return int(sample_ids(row, settings, noise)[0])
    flat = row.reshape(-1)
    score = flat if noise is None or settings.greedy else flat + noise.reshape(-1)
    index = int(score.argmax())
    if not _isfinite(score[index]):
        raise _non_finite(row)
    return index


def _filtered(z: np.ndarray, settings: SamplingSettings) -> np.ndarray:
    """Rules 2 and 3: the characters top-k and top-p drop become -inf."""
    vocab = z.shape[1]
    with np.errstate(invalid="ignore", over="ignore", under="ignore", divide="ignore"):
        if settings.top_k is not None and settings.top_k < vocab:
            kth = np.partition(z, vocab - settings.top_k, axis=1)[:, vocab - settings.top_k]
            z = np.where(z < kth[:, None], np.float32(-np.inf), z)
        if settings.top_p is not None and settings.top_p < 1:
            d = z.astype(np.float64)
            w = np.exp((d - d.max(axis=1, keepdims=True)) / np.float64(settings.t32))
            s = -np.sort(-w, axis=1)
            c = np.cumsum(s, axis=1)
            p = np.float64(np.float32(settings.top_p))
            kept = ((c - s) < p * c[:, -1:]).sum(axis=1)
            smallest = s[np.arange(len(s)), np.maximum(kept, 1) - 1]
            z = np.where(w >= smallest[:, None], z, np.float32(-np.inf))
    return z


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
