"""Export-time validation: Keras and onnxruntime on the same inputs, every output compared.

Like optimum's exporter, every mismatch is collected and reported at once; unlike it, a mismatch
is fatal: the ONNX file is never written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gru_edge.runtime.errors import ExportValidationError


@dataclass(frozen=True)
class Comparison:
    name: str
    max_diff: float
    atol: float

    @property
    def ok(self) -> bool:
        return bool(self.max_diff <= self.atol)  # NaN fails too

    def line(self) -> str:
        verdict = "ok" if self.ok else "MISMATCH"
        return f"- {self.name}: max diff = {self.max_diff:.3g} (atol {self.atol:g}) {verdict}"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def validate(
    model: Any,
    keras_step: Any,
    onnx_step: Any,
    *,
    vocab_size: int,
    units: int,
    seq_len: int,
    probe_ids: np.ndarray,
    atol: float,
    windows: int = 8,
    seed: int = 0,
) -> list[Comparison]:
    """Compare the trained Keras model (and its stepper) with the ONNX session; raise on mismatch.

    (a) ``windows`` random windows of ``seq_len`` ids from a zero state: ONNX probabilities vs the
        trained model's ``predict`` and vs the stepper, ONNX state vs the stepper's;
    (b) a stateful rollout over ``probe_ids`` (real text), one id at a time, carrying the state:
        probabilities and states at every step.
    ``keras_step`` and ``onnx_step`` have the contract's step signature.
    """
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab_size, size=(windows, seq_len), dtype=np.int64)
    zero = np.zeros((windows, units), dtype=np.float32)
    one_hot = np.eye(vocab_size, dtype=np.float32)[ids]
    reference = model.predict(one_hot, verbose=0, batch_size=windows)
    k_logits, k_state = keras_step(ids, zero)
    o_logits, o_state = onnx_step(ids, zero)
    results = [
        Comparison(
            "window probabilities vs trained model", _diff(softmax(o_logits), reference), atol
        ),
        Comparison(
            "window probabilities vs Keras stepper",
            _diff(softmax(o_logits), softmax(k_logits)),
            atol,
        ),
        Comparison("window state_out vs Keras stepper", _diff(o_state, k_state), atol),
    ]
    k_state = o_state = np.zeros((1, units), dtype=np.float32)
    prob_diff = state_diff = 0.0
    for token in probe_ids:
        step_ids = np.array([[token]], dtype=np.int64)
        k_logits, k_state = keras_step(step_ids, k_state)
        o_logits, o_state = onnx_step(step_ids, o_state)
        prob_diff = max(prob_diff, _diff(softmax(o_logits), softmax(k_logits)))
        state_diff = max(state_diff, _diff(o_state, k_state))
    steps = len(probe_ids)
    results += [
        Comparison(f"rollout probabilities ({steps} steps)", prob_diff, atol),
        Comparison(f"rollout state_out ({steps} steps)", state_diff, atol),
    ]
    failures = [c for c in results if not c.ok]
    if failures:
        raise ExportValidationError(
            "the ONNX model does not match Keras, nothing written: "
            + "; ".join(c.line().lstrip("- ") for c in failures)
        )
    return results


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return float(np.nan_to_num(diff, nan=np.inf).max())
