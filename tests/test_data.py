"""The tf.data pipeline over narrow, memory-mapped ids: the batches of the int32 pipeline it
replaced, in the same order (resume is bit-exact only if they are)."""

from __future__ import annotations

import numpy as np
import pytest

from gru_edge.trainer.corpus import load_corpus, window_starts

pytestmark = pytest.mark.train  # needs the [train] extra (TensorFlow)


def _old_batches(ids, starts, seq_len, vocab_size, batch_size, order_seed, max_batches):
    """What make_dataset gave before: tf.constant(int32 ids), numpy permutation of int64 starts."""
    starts = np.asarray(starts, dtype=np.int64)
    if order_seed is not None:
        starts = np.random.default_rng(order_seed).permutation(starts)
    if max_batches is not None:
        starts = starts[: max_batches * batch_size]
    eye = np.eye(vocab_size, dtype=np.float32)
    windows = ids.astype(np.int32)[starts[:, None] + np.arange(seq_len + 1)]
    return [
        (eye[w[:, :-1]], eye[w[:, -1]])
        for w in (windows[i : i + batch_size] for i in range(0, len(windows), batch_size))
    ]


def _assert_same(dataset, expected):
    assert int(dataset.cardinality()) == len(expected)  # Keras' progress bar knows the length
    got = list(dataset)
    assert len(got) == len(expected)
    for (x, y), (ex, ey) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(x.numpy(), ex)
        np.testing.assert_array_equal(y.numpy(), ey)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
@pytest.mark.parametrize(("order_seed", "max_batches"), [([7, 2], None), ([7, 3], 4), (None, 3)])
def test_batches_are_the_int32_pipelines(dtype, order_seed, max_batches):
    from gru_edge.trainer.data import make_dataset

    ids = np.random.default_rng(5).integers(0, 50, 1000).astype(dtype)
    args = {"seq_len": 6, "vocab_size": 50, "batch_size": 16}
    starts = window_starts(len(ids), args["seq_len"], 3)
    dataset = make_dataset(ids, starts, order_seed=order_seed, max_batches=max_batches, **args)
    _assert_same(
        dataset, _old_batches(ids, starts, **args, order_seed=order_seed, max_batches=max_batches)
    )


def test_batches_from_a_loaded_corpus(tmp_path):
    from gru_edge.trainer.data import make_dataset

    (tmp_path / "c.txt").write_text("the quick brown fox jumps\n" * 40, encoding="utf-8")
    corpus = load_corpus(tmp_path / "c.txt")
    args = {"seq_len": 10, "vocab_size": len(corpus.vocab), "batch_size": 32}
    train = corpus.ids[:900]  # a view of the memory-mapped ids, as the training split is
    starts = window_starts(len(train), args["seq_len"], 5)
    dataset = make_dataset(train, starts, order_seed=[1, 0], **args)
    _assert_same(dataset, _old_batches(train, starts, **args, order_seed=[1, 0], max_batches=None))
