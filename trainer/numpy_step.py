"""The trained model's step in numpy, for the per-epoch samples.

A Keras stepper costs ~0.6 ms a character through TensorFlow's eager call path; the same GRU
arithmetic in float32 numpy costs tens of microseconds, so the four 400-character samples of
an epoch take ~0.1 s instead of ~1 s. The samples are a progress report (the exported file is
what users sample), so float32 rounding that differs from TensorFlow's in the last bits is fine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gru_edge.trainer.model import grus_and_dense

# What build_model makes (tf-keras' GRU defaults); any other GRU goes through Keras instead.
_DEFAULTS = {
    "activation": "tanh",
    "recurrent_activation": "sigmoid",
    "reset_after": True,
    "use_bias": True,
}


def numpy_step(model: Any) -> Any | None:
    """A runtime.generation step function (ids int64 [batch, time], state float32 [batch,
    layers * units] -> logits, state) over copies of ``model``'s weights; None for a GRU this
    arithmetic does not cover."""
    grus, dense = grus_and_dense(model)
    if any({k: gru.get_config().get(k) for k in _DEFAULTS} != _DEFAULTS for gru in grus):
        return None
    layers = [[np.asarray(w, np.float32) for w in gru.get_weights()] for gru in grus]
    dense_w, dense_b = (np.asarray(w, np.float32) for w in dense.get_weights())
    units = grus[0].units

    def cell(x_proj: np.ndarray, h: np.ndarray, recurrent: np.ndarray, bias: np.ndarray):
        # Keras' reset_after GRU: gates in the order z, r, candidate.
        inner = h @ recurrent + bias
        z = _sigmoid(x_proj[:, :units] + inner[:, :units])
        r = _sigmoid(x_proj[:, units : 2 * units] + inner[:, units : 2 * units])
        candidate = np.tanh(x_proj[:, 2 * units :] + r * inner[:, 2 * units :])
        return z * h + (1 - z) * candidate

    def step(ids: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        states = np.split(np.asarray(state, np.float32), len(layers), axis=-1)
        for t in range(ids.shape[1]):
            below = None
            for i, (kernel, recurrent, bias) in enumerate(layers):
                # Layer 0's input is one-hot: its projection is the kernel's row for the id.
                x_proj = kernel[ids[:, t]] if i == 0 else below @ kernel
                states[i] = cell(x_proj + bias[0], states[i], recurrent, bias[1])
                below = states[i]
        logits = states[-1] @ dense_w + dense_b
        return logits, np.concatenate(states, axis=-1)

    return step


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))
