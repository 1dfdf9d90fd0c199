"""The Keras models: the notebook's training model and its stepping twin (the ONNX contract)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gru_edge.trainer.config import TrainConfig
from gru_edge.trainer.tf_env import load_tf


def build_model(vocab_size: int, config: TrainConfig) -> Any:
    """The notebook's model: one-hot window -> GRU(units) -> Dense(vocab, softmax), compiled."""
    _, keras = load_tf("training")
    model = keras.Sequential(
        [
            keras.Input(shape=(None, vocab_size), name="one_hot"),
            keras.layers.GRU(config.units, name="gru"),
            keras.layers.Dense(vocab_size, activation="softmax", name="next_char"),
        ],
        name="char_gru",
    )
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=config.lr),
        loss="categorical_crossentropy",
    )
    return model


def gru_and_dense(model: Any) -> tuple[Any, Any]:
    """The trained model's GRU and output Dense layers."""
    _, keras = load_tf()
    grus = [layer for layer in model.layers if isinstance(layer, keras.layers.GRU)]
    denses = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if len(grus) != 1 or len(denses) != 1:
        raise ValueError("expected a model with one GRU and one Dense layer")
    return grus[0], denses[0]


def build_stepper(model: Any) -> Any:
    """The contract's twin of a trained model, sharing nothing but copied weights.

    Inputs ``ids`` int64 [batch, time] and ``state`` float32 [batch, units]; outputs ``logits``
    [batch, vocab] (pre-softmax, so softmax(logits) is the model's prediction) and ``state_out``.
    The one-hot sits inside, so the ONNX file takes ids, not a [batch, time, vocab] input.
    """
    tf, keras = load_tf()
    gru, dense = gru_and_dense(model)
    units, vocab = gru.units, dense.units
    ids = keras.Input(shape=(None,), dtype="int64", name="ids")
    state = keras.Input(shape=(units,), dtype="float32", name="state")
    # One-hot as rows of an identity matrix: tf2onnx emits a Gather, which costs ~7% fewer
    # instructions per generation step than its OneHot (counted with callgrind; see README).
    identity = np.eye(vocab, dtype=np.float32)
    one_hot = keras.layers.Lambda(lambda t: tf.gather(identity, t), name="one_hot")(ids)
    twin_gru = keras.layers.GRU(units, return_state=True, name="gru", **_gru_options(gru))
    _, state_out = twin_gru(one_hot, initial_state=state)
    twin_dense = keras.layers.Dense(vocab, name="logits")
    # A GRU's last output is its final state; reading the state lets tf2onnx drop the full
    # output sequence and the Squeeze/Slice/Squeeze that picked its last step (10 nodes -> 7).
    logits = twin_dense(state_out)
    twin = keras.Model([ids, state], [logits, state_out], name="char_gru_stepper")
    twin_gru.set_weights(gru.get_weights())
    twin_dense.set_weights(dense.get_weights())
    return twin


def _gru_options(gru: Any) -> dict[str, Any]:
    config = gru.get_config()
    return {k: config[k] for k in ("activation", "recurrent_activation", "reset_after", "use_bias")}


def step_function(stepper: Any):
    """A numpy step function for runtime.generation over a Keras stepper (compiled once)."""
    tf, _ = load_tf()

    @tf.function(reduce_retracing=True)
    def run(ids, state):
        return stepper([ids, state], training=False)

    def step(ids: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, state_out = run(tf.constant(ids, tf.int64), tf.constant(state, tf.float32))
        return logits.numpy(), state_out.numpy()

    return step
