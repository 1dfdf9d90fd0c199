"""The stateful rollout comparison the parity tests make, for one-layer and stacked files alike."""

from __future__ import annotations

import numpy as np

from gru_edge.exporter.validate import softmax


def rollout_diffs(keras_step, onnx_step, ids, state_width: int) -> tuple[float, float]:
    """Feed ``ids`` one at a time to both steps, each carrying its own state from zero; the
    largest |difference| of the probabilities and of the states over the whole rollout."""
    k_state = o_state = np.zeros((1, state_width), np.float32)
    worst_p = worst_s = 0.0
    for char_id in ids:
        step_ids = np.array([[char_id]], np.int64)
        k_logits, k_state = keras_step(step_ids, k_state)
        o_logits, o_state = onnx_step(step_ids, o_state)
        worst_p = max(worst_p, float(np.abs(softmax(o_logits) - softmax(k_logits)).max()))
        worst_s = max(worst_s, float(np.abs(o_state - k_state).max()))
    return worst_p, worst_s
