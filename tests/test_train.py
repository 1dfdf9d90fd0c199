"""Training: the run directory, the data pipeline, determinism, resume and strategies."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from run_fixtures import TINY

from gru_edge.runtime.errors import TrainingInterrupted
from gru_edge.trainer import rundir
from gru_edge.trainer.config import TrainOptions

pytestmark = pytest.mark.train  # needs the [train] extra (TensorFlow)


def _weights(path):
    from gru_edge.trainer.tf_env import load_tf

    _, keras = load_tf()
    return keras.models.load_model(path, compile=False).get_weights()


def _max_weight_diff(a, b) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(_weights(a), _weights(b), strict=True))


def test_dataset_cuts_and_one_hot_encodes_windows():
    from gru_edge.trainer.data import make_dataset

    ids = np.arange(30, dtype=np.int32) % 7
    starts = np.array([0, 4, 9], dtype=np.int64)
    (x, y), *_ = list(make_dataset(ids, starts, seq_len=5, vocab_size=7, batch_size=3))
    eye = np.eye(7, dtype=np.float32)
    for row, start in enumerate(starts):
        np.testing.assert_array_equal(x[row].numpy(), eye[ids[start : start + 5]])
        np.testing.assert_array_equal(y[row].numpy(), eye[ids[start + 5]])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_in_graph_and_generated_windows_are_the_same_batches(monkeypatch, dtype):
    from gru_edge.trainer import data

    ids = (np.arange(500) * 7 % 13).astype(dtype)

    def batches(starts, **extra):
        ds = data.make_dataset(ids, starts, seq_len=6, vocab_size=13, batch_size=8, **extra)
        return [(x.numpy(), y.numpy()) for x, y in ds]

    cases = [
        (range(0, 490, 3), {"order_seed": [5, 2]}),
        (range(2, 400, 5), {"max_batches": 3}),
        (np.arange(0, 480, 4), {"order_seed": [1, 0], "whole_batches": True}),
    ]
    in_graph = [batches(starts, **extra) for starts, extra in cases]
    monkeypatch.setattr(data, "IN_GRAPH_MAX_CHARS", 0)  # a corpus "too large" to copy
    generated = [batches(starts, **extra) for starts, extra in cases]
    for mine, theirs in zip(in_graph, generated, strict=True):
        assert len(mine) == len(theirs) > 0
        for (x1, y1), (x2, y2) in zip(mine, theirs, strict=True):
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)


def test_dataset_order_depends_only_on_seed_and_epoch():
    from gru_edge.trainer.data import make_dataset

    ids = np.arange(200, dtype=np.int32) % 11
    starts = np.arange(0, 150, 2, dtype=np.int64)

    def first_targets(seed):
        ds = make_dataset(ids, starts, seq_len=4, vocab_size=11, batch_size=8, order_seed=seed)
        return [b[1].numpy().argmax(-1).tolist() for b in ds]

    assert first_targets([1, 0]) == first_targets([1, 0])
    assert first_targets([1, 0]) != first_targets([1, 1])


def test_run_directory_contents(trained_run):
    for name in (
        "model.keras",
        "vocab.json",
        "config.json",
        "history.csv",
        "samples.txt",
        "state.json",
        "checkpoint-epoch002.keras",
    ):
        assert (trained_run / name).is_file(), name
    assert not list(trained_run.glob(".*.tmp*")), "temporary files left behind"
    assert not (trained_run / "train.lock").exists(), "the lock file outlived the training"
    info = json.loads((trained_run / "config.json").read_text(encoding="utf-8"))
    vocab = json.loads((trained_run / "vocab.json").read_text(encoding="utf-8"))
    assert info["config"]["units"] == TINY["units"] and info["config"]["seed"] == TINY["seed"]
    assert info["vocab_size"] == len(vocab) and vocab == sorted(set(vocab))
    assert info["epochs_completed"] == 2 and info["best_epoch"] in (1, 2)
    assert len(info["corpus"]["sha256"]) == 64 and "NFC" in info["text_policy"]
    assert {"tensorflow", "tf_keras", "gru_edge"} <= set(info["versions"])
    rows = list(csv.DictReader((trained_run / "history.csv").open(encoding="utf-8")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for row in rows:
        assert math.isclose(float(row["val_bpc"]), float(row["val_loss"]) / math.log(2))
    best = min(float(r["val_loss"]) for r in rows)
    assert math.isclose(info["best_val_loss"], best, rel_tol=1e-6)
    samples = (trained_run / "samples.txt").read_text(encoding="utf-8")
    for temperature in (0.2, 0.5, 1.0, 1.2):
        assert samples.count(f"----- temperature {temperature}\n") == 2


def test_best_model_is_the_best_epoch(trained_run):
    info = json.loads((trained_run / "config.json").read_text(encoding="utf-8"))
    if info["best_epoch"] == 2:
        assert (
            _max_weight_diff(trained_run / "model.keras", trained_run / "checkpoint-epoch002.keras")
            == 0
        )
    else:
        assert (
            _max_weight_diff(trained_run / "model.keras", trained_run / "checkpoint-epoch002.keras")
            > 0
        )


def test_same_seed_same_weights(tmp_path, tiny_corpus, trained_run):
    from gru_edge.trainer.train import train

    train(tiny_corpus, tmp_path / "again", TrainOptions(**TINY, samples=False), quiet=True)
    assert _max_weight_diff(tmp_path / "again" / "model.keras", trained_run / "model.keras") == 0


class _InterruptAt:
    """A Keras callback standing in for Ctrl-C at a given batch of a given epoch."""

    def __new__(cls, epoch: int, batch: int):
        from gru_edge.trainer.tf_env import load_tf

        _, keras = load_tf()

        class Interrupt(keras.callbacks.Callback):
            def on_epoch_begin(self, e, logs=None):
                self.epoch = e

            def on_train_batch_end(self, b, logs=None):
                if self.epoch == epoch and b == batch:
                    raise KeyboardInterrupt

        return Interrupt()


def test_interrupt_then_resume_equals_uninterrupted(tmp_path, tiny_corpus, trained_run):
    from gru_edge.trainer.train import train

    out = tmp_path / "interrupted"
    options = TrainOptions(**TINY, samples=False)
    with pytest.raises(TrainingInterrupted, match="keeps the 1 completed epoch"):
        train(tiny_corpus, out, options, quiet=True, callbacks=[_InterruptAt(epoch=1, batch=3)])
    state = json.loads((out / "state.json").read_text(encoding="utf-8"))
    assert state["epoch"] == 1
    _weights(out / state["checkpoint"])  # the last completed checkpoint loads
    _weights(out / "model.keras")
    assert not list(out.glob(".*.tmp*"))

    result = train(tiny_corpus, out, TrainOptions(epochs=TINY["epochs"]), resume=True, quiet=True)
    assert result.epochs_completed == 2
    # Same data order (seeded by epoch), same optimizer slots and learning rate from the
    # checkpoint, same deterministic CPU kernels: the weights must match bit for bit. A tolerance
    # of 1e-6 only allows for reduction-order noise should a kernel change threading.
    diff = _max_weight_diff(
        out / "checkpoint-epoch002.keras", trained_run / "checkpoint-epoch002.keras"
    )
    assert diff <= 1e-6
    history = list(csv.DictReader((out / "history.csv").open(encoding="utf-8")))
    reference = list(csv.DictReader((trained_run / "history.csv").open(encoding="utf-8")))
    assert [r["val_loss"] for r in history] == [r["val_loss"] for r in reference]


def test_resume_extends_epochs_and_keeps_learning_rate_state(tmp_path, tiny_corpus):
    from gru_edge.trainer.train import train

    out = tmp_path / "run"
    # lr_patience 1 with a huge learning rate: the plateau logic must fire and be carried over.
    options = TrainOptions(**{**TINY, "samples": False, "epochs": 1, "lr": 0.02})
    train(tiny_corpus, out, options, quiet=True)
    result = train(tiny_corpus, out, TrainOptions(epochs=3), resume=True, quiet=True)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    state = json.loads((out / "state.json").read_text(encoding="utf-8"))
    assert state["epoch"] == 3 and state["checkpoint"] == rundir.checkpoint_name(3)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-epoch003.keras"]


def test_no_validation_split_monitors_loss(tmp_path, tiny_corpus):
    from gru_edge.trainer.train import train

    result = train(
        tiny_corpus,
        tmp_path / "r",
        TrainOptions(**{**TINY, "val_fraction": 0.0, "epochs": 1, "samples": False}),
        quiet=True,
    )
    info = json.loads((tmp_path / "r" / "config.json").read_text(encoding="utf-8"))
    assert info["monitor"] == "loss" and info["best_val_loss"] is None
    assert math.isclose(info["best_loss"], result.history[0]["loss"], rel_tol=1e-6)


def test_mirrored_strategy_on_cpu_with_tensorboard(tmp_path, tiny_corpus):
    from gru_edge.trainer.train import train

    out = tmp_path / "mirrored"
    result = train(
        tiny_corpus,
        out,
        TrainOptions(**{**TINY, "epochs": 1, "samples": False, "strategy": "mirrored"}),
        quiet=True,
        tensorboard=True,
    )
    assert math.isfinite(result.best_value)
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
    _weights(out / "model.keras")


def test_multi_worker_strategy_as_a_one_worker_cluster(tmp_path, tiny_corpus):
    # MultiWorkerMirroredStrategy must be created before TensorFlow starts its runtime, so this
    # runs in a fresh process: a cluster of one worker (the chief) on a loopback port.
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tf_config = {
        "cluster": {"worker": [f"127.0.0.1:{port}"]},
        "task": {"type": "worker", "index": 0},
    }
    script = os.path.join(os.path.dirname(sys.executable), "gru-edge")
    out = tmp_path / "mw"
    args = [
        script,
        "train",
        str(tiny_corpus),
        "--out",
        str(out),
        "--strategy",
        "multi-worker",
        "--epochs",
        "1",
        "--units",
        "16",
        "--seq-len",
        "20",
        "--steps-per-epoch",
        "4",
        "--validation-steps",
        "2",
        "--no-samples",
        "-q",
        "--allow-open-port",  # TensorFlow's port, open on every interface (cluster.py)
    ]
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert info["config"]["strategy"] == "multi-worker" and info["epochs_completed"] == 1
