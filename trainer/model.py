"""The Keras models: the notebook's training model and its stepping twin (the ONNX contract)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gru_edge.trainer.config import TrainConfig
from gru_edge.trainer.tf_env import load_tf


def build_model(vocab_size: int, config: TrainConfig) -> Any:
    """The notebook's model: one-hot window -> GRU(units) -> Dense(vocab, softmax), compiled.

    ``config.layers`` GRUs are stacked (each but the last returns its sequence). With
    ``config.dropout`` > 0 a Dropout layer follows each GRU, as in char-rnn: a layer rather
    than GRU(recurrent_dropout=...), which would make Keras leave cuDNN, and on the GRUs'
    outputs rather than GRU(dropout=...), which would drop input characters of the first one.
    """
    _, keras = load_tf("training")
    stack: list[Any] = [keras.Input(shape=(None, vocab_size), name="one_hot")]
    for layer in range(config.layers):
        last = layer == config.layers - 1
        stack.append(
            keras.layers.GRU(config.units, return_sequences=not last, name=_gru_name(layer))
        )
        if config.dropout > 0:
            stack.append(keras.layers.Dropout(config.dropout, name=f"dropout_{layer + 1}"))
    stack.append(keras.layers.Dense(vocab_size, activation="softmax", name="next_char"))
    model = keras.Sequential(stack, name="char_gru")
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=config.lr),
        loss="categorical_crossentropy",
    )
    return model


def _gru_name(layer: int) -> str:
    # The first keeps the one-layer model's name, so default models stay what they were.
    return "gru" if layer == 0 else f"gru_{layer + 1}"


def grus_and_dense(model: Any) -> tuple[list[Any], Any]:
    """The trained model's GRU layers (input side first) and its output Dense layer."""
    _, keras = load_tf()
    grus = [layer for layer in model.layers if isinstance(layer, keras.layers.GRU)]
    denses = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not grus or len(denses) != 1:
        raise ValueError("expected a model with GRU layers and one Dense layer")
    return grus, denses[0]


def build_stepper(model: Any, *, one_step: bool = False) -> Any:
    """The contract's twin of a trained model, sharing nothing but copied weights.

    Inputs ``ids`` int64 [batch, time] and ``state`` float32 [batch, layers * units]; outputs
    ``logits`` [batch, vocab] (pre-softmax, so softmax(logits) is the model's prediction) and
    ``state_out``. The one-hot sits inside, so the ONNX file takes ids, not a [batch, time,
    vocab] input. ``state`` holds the layers' states side by side, layer 0 (input side) first;
    Dropout is left out (it is the identity outside training).

    ``one_step``: ids int32 [batch, 1] and unrolled GRUs (straight-line ops, no WHILE loop),
    the twin LiteRT's converter wants for `gru-edge bench`'s peer rows.
    """
    tf, keras = load_tf()
    grus, dense = grus_and_dense(model)
    units, vocab, layers = grus[0].units, dense.units, len(grus)
    ids = keras.Input(
        shape=(1,) if one_step else (None,), dtype="int32" if one_step else "int64", name="ids"
    )
    state = keras.Input(shape=(layers * units,), dtype="float32", name="state")
    weights = [gru.get_weights() for gru in grus]
    if projects_input(vocab, units):
        # A large vocabulary: gather each character's row of the first GRU's input kernel
        # (what one-hot x kernel computes, exactly) and give that GRU an identity kernel. The
        # file grows with vocab x units instead of vocab^2, and a step multiplies 3 units
        # wide instead of vocab wide; the numbers are the same bits.
        table = weights[0][0]
        weights[0] = [np.eye(3 * units, dtype=np.float32), *weights[0][1:]]
        sequence = keras.layers.Lambda(lambda t: tf.gather(table, t), name="projected")(ids)
    else:
        # One-hot as rows of an identity matrix: tf2onnx emits a Gather, which costs ~7% fewer
        # instructions per generation step than its OneHot (counted with callgrind; see README).
        identity = np.eye(vocab, dtype=np.float32)
        sequence = keras.layers.Lambda(lambda t: tf.gather(identity, t), name="one_hot")(ids)
    # One layer takes the state as it is: no Split/Concat, so a default file is 7 nodes.
    starts = (
        [state]
        if layers == 1
        else keras.layers.Lambda(lambda s: tf.split(s, layers, axis=-1), name="split")(state)
    )
    twins, finals = [], []
    for layer, (gru, start) in enumerate(zip(grus, starts, strict=True)):
        last = layer == layers - 1
        twin = keras.layers.GRU(
            units,
            return_sequences=not last,
            return_state=True,
            name=_gru_name(layer),
            unroll=one_step,
            **_gru_options(gru),
        )
        outputs = twin(sequence, initial_state=start)
        sequence, final = (outputs[1], outputs[1]) if last else outputs
        twins.append(twin)
        finals.append(final)
    state_out = finals[0] if layers == 1 else keras.layers.Concatenate(name="state_out")(finals)
    twin_dense = keras.layers.Dense(vocab, name="logits")
    # A GRU's last output is its final state; reading the state lets tf2onnx drop the full
    # output sequence and the Squeeze/Slice/Squeeze that picked its last step (10 nodes -> 7).
    logits = twin_dense(finals[-1])
    stepper = keras.Model([ids, state], [logits, state_out], name="char_gru_stepper")
    for twin, weight in zip(twins, weights, strict=True):
        twin.set_weights(weight)
    twin_dense.set_weights(dense.get_weights())
    return stepper


def projects_input(vocab: int, units: int) -> bool:
    """Whether the stepper gathers projected rows (vocab > 3 x units) rather than one-hot rows:
    above that the identity's vocab^2 floats outgrow the kernel, and its product costs more."""
    return vocab > 3 * units


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
