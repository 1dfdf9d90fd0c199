"""tf.data pipeline that cuts windows and one-hot encodes them on the fly.

Memory grows with the corpus (its ids, one byte a character for small vocabularies, and one
int32 a window for the epoch's order), never with corpus x window x vocabulary as the
notebook's one-hot array did. The ids stay a numpy (memory-mapped) array: a generator cuts each
batch's windows from it, so the whole corpus is never copied into a TensorFlow tensor.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from gru_edge.trainer.corpus import cut_windows, epoch_order
from gru_edge.trainer.tf_env import load_tf


def make_dataset(
    ids: np.ndarray,
    starts: np.ndarray | range,
    *,
    seq_len: int,
    vocab_size: int,
    batch_size: int,
    order_seed: list[int] | None = None,
    max_batches: int | None = None,
    whole_batches: bool = False,
) -> Any:
    """Batches of (one-hot window [b, seq_len, vocab], one-hot next char [b, vocab]).

    ``order_seed`` shuffles the windows with numpy, so the order of an epoch depends on the seed
    and the epoch number only: a resumed run sees exactly the batches an uninterrupted one would.
    ``whole_batches`` leaves out the last, partial batch: multi-worker training splits every
    batch between the workers, and a batch smaller than the cluster would leave one empty.
    """
    tf, _ = load_tf()
    order = None if order_seed is None else epoch_order(len(starts), order_seed)
    used = len(starts) if max_batches is None else min(len(starts), max_batches * batch_size)
    if whole_batches:
        used -= used % batch_size
    n_batches = -(-used // batch_size)

    def batches() -> Iterator[np.ndarray]:
        for first in range(0, used, batch_size):
            positions = np.arange(first, min(first + batch_size, used))
            yield cut_windows(
                ids, starts, positions if order is None else order[positions], seq_len
            )

    def one_hot(windows):
        windows = tf.cast(windows, tf.int32)  # one batch at a time: OneHot takes no uint16
        return tf.one_hot(windows[:, :-1], vocab_size), tf.one_hot(windows[:, -1], vocab_size)

    spec = tf.TensorSpec([None, seq_len + 1], tf.as_dtype(ids.dtype))
    dataset = tf.data.Dataset.from_generator(batches, output_signature=spec)
    # Known length: Keras shows the epoch's progress bar with an ETA.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(n_batches))
    dataset = dataset.map(one_hot, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    # Every replica gets whole batches cut from the same order (the windows are not files).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
