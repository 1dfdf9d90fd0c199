"""The one sampler: next-character ids from logits, used by the runtime, the trainer's per-epoch
samples and the parity tests.

It works in float64 and in log space, straight from logits, so it never raises on float32
probabilities that sum past 1 and never yields NaN at tiny or huge temperatures
(the notebook's ``log(p) / T`` does both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from runtime.errors import UsageError


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


def sample_ids(
    logits: np.ndarray, settings: SamplingSettings, rng: np.random.Generator
) -> np.ndarray:
    """Pick one id per row of ``logits`` ([batch, vocab] or [vocab]); returns int64 ids.

    Draws exactly one uniform number per row (none when greedy), so a seed fixes the text.
    """
    z = np.array(logits, dtype=np.float64, ndmin=2)
    z[np.isnan(z)] = -np.inf  # a NaN logit is treated as impossible, never sampled
    if settings.temperature == 0:
        ids = np.argmax(z, axis=1)
    else:
        # Shift before scaling: every value becomes <= 0, so dividing by a tiny temperature
        # gives -inf (never inf - inf = NaN) and a huge one tends to uniform.
        z -= z.max(axis=1, keepdims=True)
        if settings.temperature != 1:
            finite = np.isfinite(z)
            z[finite] /= settings.temperature
        if settings.top_k is not None and settings.top_k < z.shape[1]:
            kth = np.partition(z, -settings.top_k, axis=1)[:, -settings.top_k, None]
            z[z < kth] = -np.inf
        weights = np.exp(z)
        if settings.top_p is not None and settings.top_p < 1:
            weights = _nucleus(weights, settings.top_p)
        cdf = np.cumsum(weights, axis=1)
        u = rng.random(len(cdf)) * cdf[:, -1]
        ids = np.argmax(cdf > u[:, None], axis=1)
    return ids.astype(np.int64)


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
