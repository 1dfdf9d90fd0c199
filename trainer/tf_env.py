"""The one place that imports TensorFlow, with tf-keras (Keras 2) as its Keras.

Why tf-keras: tf2onnx turns a tf-keras GRU into the single fused ONNX ``GRU`` operator, but a
Keras 3 GRU into a ``Loop`` (measured 2.9x slower per generation step, 4.6x per window), and
``tf2onnx.convert.from_keras`` fails on Keras 3 models outright.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from types import ModuleType

from gru_edge.runtime.errors import missing_train_extra


def load_tf(what: str = "this command") -> tuple[ModuleType, ModuleType]:
    """Import and return ``(tensorflow, tf_keras)``, or raise MissingExtraError."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with _quiet_stderr():
            import tensorflow as tf
            import tf_keras

            tf.config.list_physical_devices()  # device probing logs here, hidden too
    except ImportError:
        raise missing_train_extra(what) from None
    # A one-character corpus trains a one-class softmax (loss 0, as it should be); tf-keras
    # warns about that shape on every trace, two lines even with --quiet.
    warnings.filterwarnings(
        "ignore", message="In loss categorical_crossentropy, expected y_pred.shape"
    )
    return tf, tf_keras


@contextlib.contextmanager
def _quiet_stderr():
    """Hide the C++ start-up chatter (oneDNN, CUDA probing) that TensorFlow writes to fd 2
    before its log level applies; Python exceptions still propagate."""
    if "tensorflow" in sys.modules:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
