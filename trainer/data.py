"""tf.data pipeline that cuts windows and one-hot encodes them on the fly.

Memory grows with the corpus (int32 ids and int64 window starts), never with
corpus x window x vocabulary as the notebook's one-hot array did.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gru_edge.trainer.tf_env import load_tf


def make_dataset(
    ids: np.ndarray,
    starts: np.ndarray,
    *,
    seq_len: int,
    vocab_size: int,
    batch_size: int,
    order_seed: list[int] | None = None,
    max_batches: int | None = None,
) -> Any:
    """Batches of (one-hot window [b, seq_len, vocab], one-hot next char [b, vocab]).

    ``order_seed`` shuffles the windows with numpy, so the order of an epoch depends on the seed
    and the epoch number only: a resumed run sees exactly the batches an uninterrupted one would.
    """
    tf, _ = load_tf()
    if order_seed is not None:
        starts = np.random.default_rng(order_seed).permutation(starts)
    if max_batches is not None:
        starts = starts[: max_batches * batch_size]
    corpus = tf.constant(ids, dtype=tf.int32)
    offsets = tf.range(seq_len + 1, dtype=tf.int64)

    def cut(batch_starts):
        windows = tf.gather(corpus, batch_starts[:, None] + offsets[None, :])
        return tf.one_hot(windows[:, :-1], vocab_size), tf.one_hot(windows[:, -1], vocab_size)

    dataset = tf.data.Dataset.from_tensor_slices(starts).batch(batch_size)
    dataset = dataset.map(cut, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    # Every replica gets whole batches cut from the same order (the windows are not files).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
