"""tf.data pipeline that cuts windows and one-hot encodes them on the fly.

Memory grows with the corpus (its ids, one byte a character for small vocabularies, and one
integer a window for the epoch's order), never with corpus x window x vocabulary as the
notebook's one-hot array did. A corpus of up to IN_GRAPH_MAX_CHARS characters is copied into a
TensorFlow tensor and its windows are cut inside the pipeline's graph: no Python runs per batch,
so the input never waits on the interpreter (a generator left the CPU idle for a third of each
epoch, measured on 2 cores). A larger corpus stays a numpy (memory-mapped) array, never copied:
a generator cuts each batch's windows from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from gru_edge.trainer.corpus import cut_windows, epoch_order
from gru_edge.trainer.tf_env import load_tf

# Up to here the ids are copied into the graph (at most this many bytes, or twice as many for a
# vocabulary over 255 characters); above it a generator reads them in place.
IN_GRAPH_MAX_CHARS = 1 << 28


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
    if len(ids) <= IN_GRAPH_MAX_CHARS:
        dataset = _in_graph_windows(tf, ids, starts, order, used, batch_size, seq_len)
    else:
        dataset = _generated_windows(tf, ids, starts, order, used, batch_size, seq_len)
    # Known length: Keras shows the epoch's progress bar with an ETA.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(n_batches))

    def one_hot(windows):
        windows = tf.cast(windows, tf.int32)  # one batch at a time: OneHot takes no uint16
        return tf.one_hot(windows[:, :-1], vocab_size), tf.one_hot(windows[:, -1], vocab_size)

    dataset = dataset.map(one_hot, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    # Every replica gets whole batches cut from the same order (the windows are not files).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def _in_graph_windows(tf, ids, starts, order, used, batch_size, seq_len):
    """Batches of windows [b, seq_len + 1] cut by a Gather in the pipeline's graph."""
    positions = np.arange(used) if order is None else order[:used]
    if isinstance(starts, range):
        at = starts.start + positions.astype(np.int64) * starts.step
    else:
        at = np.asarray(starts, dtype=np.int64)[positions]
    at = at.astype(np.int32)  # a corpus this size has every start below 2**31: half the bytes
    table = tf.constant(ids)
    offsets = tf.range(seq_len + 1, dtype=tf.int32)
    batches = tf.data.Dataset.from_tensor_slices(at).batch(batch_size)
    return batches.map(lambda first: tf.gather(table, first[:, None] + offsets))


def _generated_windows(tf, ids, starts, order, used, batch_size, seq_len):
    """The same batches, cut in Python from ``ids`` where they lie (memory-mapped or not)."""

    def batches() -> Iterator[np.ndarray]:
        for first in range(0, used, batch_size):
            positions = np.arange(first, min(first + batch_size, used))
            yield cut_windows(
                ids, starts, positions if order is None else order[positions], seq_len
            )

    spec = tf.TensorSpec([None, seq_len + 1], tf.as_dtype(ids.dtype))
    return tf.data.Dataset.from_generator(batches, output_signature=spec)
