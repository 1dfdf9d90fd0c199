"""The run directory's lock: a second training, an export or a bench of a run being written is
refused with one line naming the holder; the lock goes with its process, however it ends."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_checks import assert_one_line_error
from run_dirs import LockHolder, contents, copy_run
from typer.testing import CliRunner

from gru_edge.cli import app
from gru_edge.runtime.errors import RunDirError
from gru_edge.trainer.lock import LOCK, check_not_training, training_lock

runner = CliRunner()


@pytest.fixture
def scratch(tmp_path) -> Path:
    (tmp_path / "cwd").mkdir()
    return tmp_path / "cwd"


def test_a_second_locker_is_refused_naming_the_holder(tmp_path, scratch):
    run = tmp_path / "run"
    run.mkdir()
    with LockHolder(run, scratch) as holder:
        with pytest.raises(RunDirError) as caught, training_lock(run):
            pass
        message = str(caught.value)
        assert f"pid {holder.proc.pid} on " in message and "another gru-edge train" in message
        with pytest.raises(
            RunDirError, match=f"being written by gru-edge train .pid {holder.proc.pid}"
        ):
            check_not_training(run, "try later")
        holder.kill()
    # Killed without any cleanup: the lock file stays, but the lock went with the process.
    assert (run / LOCK).exists()
    check_not_training(run, "try later")
    with training_lock(run):
        holder_info = json.loads((run / LOCK).read_text(encoding="utf-8"))
        assert holder_info["pid"] == os.getpid()
    assert not (run / LOCK).exists()


def test_export_of_a_run_being_written_is_refused(tmp_path, scratch):
    run = tmp_path / "run"
    run.mkdir()
    with LockHolder(run, scratch) as holder:
        result = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "m.onnx")])
        assert_one_line_error(
            result, "is being written by gru-edge train", f"pid {holder.proc.pid}", "try again"
        )
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        (["train", "{corpus}", "--out", "{run}", "--resume", "--epochs", "5"], "another"),
        (["train", "{corpus}", "--out", "{run}", "--force"], "another gru-edge train"),
        (["bench", "{onnx}", "--run-dir", "{run}", "--repeats", "1"], "try again"),
        (["export", "{run}", "--out", "{tmp}/m.onnx"], "try again when the training ends"),
    ],
)
def test_a_run_being_trained_is_left_alone(
    tmp_path, scratch, trained_run, tiny_corpus, exported_model, command, needle
):
    run = copy_run(tmp_path, trained_run)
    names = {"corpus": tiny_corpus, "run": run, "onnx": exported_model, "tmp": tmp_path}
    with LockHolder(run, scratch) as holder:
        before = contents(run)  # the holder's lock file included
        result = runner.invoke(app, [arg.format(**names) for arg in command])
        assert_one_line_error(result, "is being written by", f"pid {holder.proc.pid}", needle)
        assert contents(run) == before
    assert not (tmp_path / "m.onnx").exists()
