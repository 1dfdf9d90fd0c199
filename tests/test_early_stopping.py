"""Early stopping (--patience): the counter, the stop, its reason, --resume, the CLI summary."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from cli_checks import assert_one_line_error
from run_fixtures import TINY
from typer.testing import CliRunner

from gru_edge.cli import app
from gru_edge.runtime.errors import RunDirError
from gru_edge.trainer import rundir
from gru_edge.trainer.config import TrainConfig, TrainOptions
from gru_edge.trainer.resume import TrainState
from gru_edge.trainer.runinfo import stop_reason, stopped_early

runner = CliRunner()


def _epochs(values: list[float], patience: int) -> tuple[TrainState, int]:
    """Feed monitored values through the end-of-epoch bookkeeping until early stopping says
    stop; the state and the epochs run."""
    from gru_edge.trainer.epochs import _end_of_epoch

    config = TrainConfig(patience=patience, epochs=len(values))
    rate = SimpleNamespace(assign=lambda _value: None)
    model = SimpleNamespace(optimizer=SimpleNamespace(learning_rate=rate))
    state = TrainState(lr=config.lr)
    for epoch, value in enumerate(values, start=1):
        row = {"epoch": epoch, "loss": value, "val_loss": value, "lr": state.lr}
        _end_of_epoch(model, state, row, value, config)
        if stopped_early(state, config):
            break
    return state, state.epoch


@pytest.mark.parametrize(
    ("values", "patience", "ran", "best"),
    [
        # The quickstart's shape: best at 7, worse every epoch after: 3 more epochs, stop at 10.
        ([3.0, 2.6, 2.4, 2.3, 2.25, 2.22, 2.218, 2.22, 2.23, 2.25, 2.26, 2.3], 3, 10, 7),
        # A worse epoch right after a learning-rate cut, then better again: the counter resets.
        ([3.0, 2.5, 2.6, 2.4, 2.5, 2.45, 2.41, 2.42], 3, 7, 4),
        ([3.0, 2.5, 2.6, 2.7, 2.8], 1, 3, 2),
        ([3.0, 2.5, 2.6, 2.7, 2.8, 2.9, 3.0], 0, 7, 2),  # 0: every epoch
        ([3.0, 3.0, 3.0], 2, 3, 1),  # equal is not better (as Keras' EarlyStopping)
    ],
)
def test_patience_counts_epochs_since_the_best(values, patience, ran, best):
    state, epochs = _epochs(values, patience)
    assert (epochs, state.best_epoch) == (ran, best)
    assert state.stale == ran - best


def test_stop_reason_says_why():
    state, _ = _epochs([3.0, 2.5, 2.6, 2.7, 2.8], 2)
    config = TrainConfig(patience=2, epochs=5)
    assert stop_reason(state, config, "val_loss") == (
        "stopped early: no better val_loss in the 2 epochs after epoch 2 (--patience 2)"
    )
    done, _ = _epochs([3.0, 2.5], 3)
    assert stop_reason(done, TrainConfig(epochs=2), "loss") == (
        "completed all 2 epochs (--epochs 2)"
    )
    assert stop_reason(TrainState(epoch=1, best_epoch=1), TrainConfig(epochs=2), "loss") is None


def test_state_json_keeps_the_counter_and_old_states_derive_it(tmp_path):
    state = TrainState(
        epoch=9,
        checkpoint=rundir.checkpoint_name(9),
        lr=0.001,
        best=2.2,
        best_epoch=7,
        plateau_best=2.2,
        wait=0,
        stale=2,
    )
    again = TrainState.from_json(json.loads(json.dumps(state.to_json())), tmp_path)
    assert again.stale == 2
    old = state.to_json()
    del old["stale"]  # a state.json written before --patience existed
    assert TrainState.from_json(old, tmp_path).stale == 2
    with pytest.raises(RunDirError, match="patience counter"):
        TrainState.from_json({**state.to_json(), "stale": "2"}, tmp_path)


def _scripted_val_loss(values: list[float]):
    """A Keras callback that replaces each epoch's val_loss with the next of ``values`` (it
    runs before Keras' History records the epoch), so the test decides which epochs improve."""
    from gru_edge.trainer.tf_env import load_tf

    _, keras = load_tf()
    script = iter(values)

    class Scripted(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = next(script)

    return Scripted()


@pytest.mark.train
def test_a_run_stops_early_and_resumes_only_with_more_patience(tmp_path, tiny_corpus):
    from gru_edge.trainer.train import train

    out = tmp_path / "run"
    options = TrainOptions(**{**TINY, "samples": False, "epochs": 8}, patience=2)
    values = [3.0, 2.0, 2.5, 2.6]  # best at epoch 2, then two worse epochs: stop after 4
    result = train(tiny_corpus, out, options, quiet=True, callbacks=[_scripted_val_loss(values)])
    assert (result.epochs_completed, result.best_epoch, result.best_value) == (4, 2, 2.0)
    assert result.stop_reason == (
        "stopped early: no better val_loss in the 2 epochs after epoch 2 (--patience 2)"
    )
    info = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert info["stop_reason"] == result.stop_reason and info["epochs_completed"] == 4
    # --resume with the same patience has nothing to do, and says what would continue it.
    args = ["train", str(tiny_corpus), "--out", str(out), "--resume"]
    assert_one_line_error(runner.invoke(app, args), "stopped early after epoch 4", "--patience")
    # Patience 3 goes on from the saved counter (2): one more worse epoch stops it again.
    result = train(
        tiny_corpus,
        out,
        TrainOptions(patience=3),
        resume=True,
        quiet=True,
        callbacks=[_scripted_val_loss([2.7, 1.0])],
    )
    assert (result.epochs_completed, result.best_epoch) == (5, 2)
    assert result.stop_reason.endswith("after epoch 2 (--patience 3)")
    # Patience 0 trains every epoch up to --epochs.
    result = train(
        tiny_corpus,
        out,
        TrainOptions(patience=0),
        resume=True,
        quiet=True,
        callbacks=[_scripted_val_loss([2.8, 1.5, 1.6])],
    )
    assert (result.epochs_completed, result.best_epoch) == (8, 7)
    assert result.stop_reason == "completed all 8 epochs (--epochs 8)"


@pytest.mark.train
def test_cli_summary_says_why_training_stopped(tmp_path, tiny_corpus):
    args = ["--units", "8", "--seq-len", "20", "--step", "3", "--batch-size", "32"]
    args += ["--steps-per-epoch", "2", "--validation-steps", "1", "--seed", "1"]
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["train", str(tiny_corpus), "--out", str(out), *args, "--epochs", "1", "--no-samples"]
    )
    assert result.exit_code == 0, result.output
    assert "completed all 1 epochs (--epochs 1)" in result.stdout
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
