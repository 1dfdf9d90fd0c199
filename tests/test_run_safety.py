"""Run directories from elsewhere: --force replaces only a provable run and only the files a run
writes, stale temporary files go, a state.json cannot point outside its run, and options past
what the machine can do are refused first. Tests without the `train` marker need no TensorFlow:
every check they make happens before gru-edge imports it."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
from cli_checks import assert_one_line_error
from run_dirs import OUR_FILES, contents, copy_run, write_corpus
from typer.testing import CliRunner

from gru_edge.cli import app
from gru_edge.runtime.errors import RunDirError, UsageError
from gru_edge.trainer import rundir
from gru_edge.trainer.config import TrainConfig, check_memory
from gru_edge.trainer.lock import LOCK
from gru_edge.trainer.resume import TrainState

runner = CliRunner()


# --- --force replaces only a provable run, and only the files a run writes --------------------


def _user_folder(folder: Path, config_text: str) -> dict[str, bytes]:
    """A folder of the user's own files that happen to have our names."""
    folder.mkdir()
    (folder / "config.json").write_text(config_text, encoding="utf-8")
    for name in OUR_FILES[1:]:
        (folder / name).write_text(f"the user's own {name}\n", encoding="utf-8")
    (folder / "tensorboard").mkdir()
    (folder / "tensorboard" / "notes.txt").write_text("mine", encoding="utf-8")
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "config_text",
    [
        '{"lr": 0.1, "layers": 3}\n',  # the user's own settings file
        '{"format": "some-other-tool/1"}\n',
        "not json at all",
        '["gru-edge-run/1"]',
    ],
)
@pytest.mark.parametrize("extra", [["--force"], []])
def test_force_never_replaces_a_folder_of_user_files(tmp_path, config_text, extra):
    out = tmp_path / "mine"
    before = _user_folder(out, config_text)
    result = runner.invoke(app, ["train", str(write_corpus(tmp_path)), "--out", str(out), *extra])
    assert_one_line_error(result, "holds no gru-edge run", '"format": "gru-edge-run/1"')
    assert contents(out) == before


def test_clear_run_removes_only_what_a_run_writes(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    rundir.write_json(out / "config.json", {"format": rundir.RUN_FORMAT})
    ours = [
        "model.keras",
        *OUR_FILES[1:],
        "checkpoint-epoch007.keras",
        "tensorboard/train/events.out.tfevents.1.host.1.v2",
        "tensorboard/validation/events.out.tfevents.2.host.1.v2",
    ]
    users = [
        "notes.txt",
        "checkpoint-epoch-best-by-hand.keras",
        ".model.keras.backup",
        "tensorboard/train/my-plot.png",
    ]
    for name in ours + users:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(name, encoding="utf-8")
    assert rundir.check_fresh(out, force=True) is True
    rundir.clear_run(out)
    assert sorted(contents(out)) == sorted(users)
    assert not (out / "tensorboard" / "validation").exists()


def test_clear_run_never_follows_links_out_of_the_run(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "train").mkdir(parents=True)
    (elsewhere / "train" / "events.out.tfevents.1.host.1.v2").write_text("theirs")
    (elsewhere / "model.keras").write_text("theirs")
    out = tmp_path / "run"
    out.mkdir()
    rundir.write_json(out / "config.json", {"format": rundir.RUN_FORMAT})
    (out / "tensorboard").symlink_to(elsewhere)
    (out / "model.keras").symlink_to(elsewhere / "model.keras")
    rundir.clear_run(out)
    assert sorted(p.name for p in out.iterdir()) == ["tensorboard"]  # the link itself stays
    assert sorted(contents(elsewhere)) == ["model.keras", "train/events.out.tfevents.1.host.1.v2"]


def test_stale_temporary_files_are_recognised_by_name(tmp_path):
    stale = [
        ".model.keras.a1b2c3d4.tmp.keras",
        ".checkpoint-epoch012.keras.zz__zz99.tmp.keras",
        ".state.json.abcdefgh.tmp.json",
        ".config.json.12345678.tmp.json",
        ".history.csv.qwertyui.tmp.csv",
        ".samples.txt.asdfghjk.tmp.txt",
    ]
    kept = [
        ".model.keras.backup",
        ".notes.txt.abcdefgh.tmp.txt",
        ".model.keras.abc.tmp.keras",
        ".state.json.abcdefgh.tmp.keras",
        "model.keras.abcdefgh.tmp.keras",
    ]
    for name in stale + kept:
        (tmp_path / name).write_text("x", encoding="utf-8")
    assert rundir.clean_stale_temps(tmp_path) == len(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


# --- a run killed before its first epoch: both commands give the same advice ----------------


def _run_without_epochs(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    out.mkdir()
    rundir.write_json(out / "config.json", {"format": rundir.RUN_FORMAT, "config": {}})
    rundir.write_json(out / "vocab.json", ["a", "b"])
    return out


@pytest.mark.parametrize("extra", [[], ["--resume"]])
def test_a_run_that_completed_no_epoch_says_force_starts_it_over(tmp_path, extra):
    out = _run_without_epochs(tmp_path)
    before = contents(out)
    result = runner.invoke(app, ["train", str(write_corpus(tmp_path)), "--out", str(out), *extra])
    line = assert_one_line_error(result, "completed no epoch", "no state.json", "--force")
    assert ("--resume" in line) == bool(extra)  # a fresh start does not suggest --resume
    assert contents(out) == before


# --- options past what the machine can do -------------------------------------------------------


def test_memory_check_refuses_what_cannot_fit():
    config = TrainConfig(units=4096, batch_size=4096, seq_len=1000)
    with pytest.raises(UsageError) as caught:
        check_memory(config, vocab_size=70, available=16 * 2**30)
    message = str(caught.value)
    assert "need at least" in message and "16.0 GiB" in message and "lower --batch-size" in message
    check_memory(TrainConfig(), vocab_size=70, available=16 * 2**30)  # the notebook's settings
    check_memory(config, vocab_size=70, available=2**50)


# --- state.json from elsewhere -------------------------------------------------------------------


def _state(**changes) -> dict:
    state = TrainState(epoch=3, checkpoint="checkpoint-epoch003.keras", lr=0.01).to_json()
    return {**state, **changes}


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (
            _state(checkpoint="../../home/user/thesis.tex"),
            "checkpoint '../../home/user/thesis.tex'",
        ),
        (_state(checkpoint="/etc/passwd"), "not 'checkpoint-epoch003.keras'"),
        (_state(checkpoint=None), "checkpoint None"),
        (_state(epoch="3"), "epoch '3'"),
        (_state(epoch=0, checkpoint="checkpoint-epoch000.keras"), "epoch 0"),
        (_state(lr="fast"), "not a number"),
        (_state(history={}), "of the wrong type"),
    ],
)
def test_a_state_file_cannot_point_outside_the_run(tmp_path, data, needle):
    with pytest.raises(RunDirError) as caught:
        TrainState.from_json(data, tmp_path / "state.json")
    assert needle in str(caught.value) and "--force" in str(caught.value)


def test_a_good_state_file_round_trips(tmp_path):
    state = TrainState.from_json(_state(), tmp_path / "state.json")
    assert state.checkpoint == "checkpoint-epoch003.keras" and state.epoch == 3


# --- export --out ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["/", os.sep + os.sep])
def test_export_out_with_a_trailing_separator_is_refused(tmp_path, suffix):
    run = _run_without_epochs(tmp_path)
    out = f"{tmp_path / 'newname'}{suffix}"
    result = runner.invoke(app, ["export", str(run), "--out", out])
    assert_one_line_error(result, "ends with a path separator", "newname/model.onnx")
    assert not (tmp_path / "newname").exists()


def test_a_folder_without_our_config_is_no_run(tmp_path):
    # Files named like a run's, config.json missing: nothing proves gru-edge wrote them.
    out = tmp_path / "copy"
    out.mkdir()
    for name in OUR_FILES[1:]:
        (out / name).write_text("x", encoding="utf-8")
    shutil.copy(out / "vocab.json", out / "model.keras")
    assert rundir.is_run(out) is False
    with pytest.raises(RunDirError, match="holds no gru-edge run"):
        rundir.check_fresh(out, force=True)


# --- with TensorFlow: real runs ---------------------------------------------------------------


TINY_ARGS = ["--units", "16", "--seq-len", "20", "--steps-per-epoch", "2", "--validation-steps"]
TINY_ARGS += ["1", "--epochs", "1", "--seed", "1", "--no-samples", "-q"]


def test_force_replaces_a_run_but_keeps_the_users_files(tmp_path, trained_run, tiny_corpus):
    run = copy_run(tmp_path, trained_run)
    (run / "notes.txt").write_text("mine", encoding="utf-8")
    (run / "tensorboard" / "train").mkdir(parents=True)
    (run / "tensorboard" / "train" / "plot.png").write_text("mine", encoding="utf-8")
    result = runner.invoke(
        app, ["train", str(tiny_corpus), "--out", str(run), *TINY_ARGS, "--force"]
    )
    assert result.exit_code == 0, result.output
    assert (run / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert (run / "tensorboard" / "train" / "plot.png").read_text(encoding="utf-8") == "mine"
    assert not (run / "samples.txt").exists() and not (run / "checkpoint-epoch002.keras").exists()
    assert json.loads((run / "state.json").read_text(encoding="utf-8"))["epoch"] == 1
    assert not (run / LOCK).exists()


def test_a_run_killed_before_its_first_epoch_starts_over_with_force(
    tmp_path, trained_run, tiny_corpus
):
    run = copy_run(tmp_path, trained_run)
    for name in ("state.json", "model.keras", "history.csv", "samples.txt"):
        (run / name).unlink()
    for checkpoint in run.glob("checkpoint-epoch*.keras"):
        checkpoint.unlink()
    args = ["train", str(tiny_corpus), "--out", str(run), *TINY_ARGS]
    assert_one_line_error(runner.invoke(app, args), "completed no epoch", "--force")
    result = runner.invoke(app, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert (run / "checkpoint-epoch001.keras").is_file()


def test_resume_removes_the_temporary_files_a_kill_left(tmp_path, trained_run, tiny_corpus):
    run = copy_run(tmp_path, trained_run)
    stale = [".model.keras.a1b2c3d4.tmp.keras", ".state.json.abcdefgh.tmp.json"]
    for name in [*stale, ".model.keras.backup"]:
        (run / name).write_text("x", encoding="utf-8")
    result = runner.invoke(
        app, ["train", str(tiny_corpus), "--out", str(run), "--resume", "--epochs", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "removed 2 temporary file(s)" in result.stdout
    assert not any((run / name).exists() for name in stale)
    assert (run / ".model.keras.backup").exists()


def test_resume_refuses_symlinked_run_files(tmp_path, trained_run, tiny_corpus):
    run = copy_run(tmp_path, trained_run)
    precious = tmp_path / "thesis.csv"
    precious.write_text("do not overwrite", encoding="utf-8")
    (run / "history.csv").unlink()
    (run / "history.csv").symlink_to(precious)
    result = runner.invoke(
        app, ["train", str(tiny_corpus), "--out", str(run), "--resume", "--epochs", "3"]
    )
    assert_one_line_error(result, "history.csv as symlinks")
    assert precious.read_text(encoding="utf-8") == "do not overwrite"


# --- a full disk: one line, and the run keeps what it had --------------------------------------


def _disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "the-file-being-written")


@pytest.mark.parametrize("where", ["json", "model"])
def test_a_full_disk_during_resume_is_one_line_and_the_run_stays(
    tmp_path, trained_run, tiny_corpus, monkeypatch, where
):
    import tf_keras

    run = copy_run(tmp_path, trained_run)
    before = contents(run)
    if where == "json":  # state.json, config.json, history.csv
        monkeypatch.setattr(rundir, "atomic_write", _disk_full)
    else:  # model.keras and the checkpoint
        monkeypatch.setattr(tf_keras.Model, "save", _disk_full)
    args = ["train", str(tiny_corpus), "--out", str(run), "--resume", "--epochs", "3"]
    result = runner.invoke(app, args)
    line = assert_one_line_error(
        result, "cannot write the-file-being-written: No space left on device", "--resume"
    )
    assert result.exit_code == 1 and f"--out {run} --resume" in line
    after = contents(run)
    assert after["state.json"] == before["state.json"]
    assert after["history.csv"] == before["history.csv"]
    assert not any(rundir._is_leftover(name) for name in after)  # no temp file, no lock
    if where == "model":
        assert after == before
    monkeypatch.undo()  # room again: the same run resumes
    result = runner.invoke(app, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "state.json").read_text(encoding="utf-8"))["epoch"] == 3


def test_a_full_disk_at_a_new_runs_first_file_leaves_nothing(tmp_path, tiny_corpus, monkeypatch):
    monkeypatch.setattr(rundir, "atomic_write", _disk_full)
    out = tmp_path / "new"
    result = runner.invoke(app, ["train", str(tiny_corpus), "--out", str(out), "--epochs", "1"])
    line = assert_one_line_error(result, "No space left on device")
    assert "--resume" not in line and f"then: gru-edge train {tiny_corpus} --out {out}" in line
    assert not out.exists()


def test_a_fifo_corpus_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "corpus.fifo"
    os.mkfifo(fifo)  # no writer: reading it would block forever
    result = runner.invoke(app, ["train", str(fifo), "--out", str(tmp_path / "r")])
    assert_one_line_error(result, f"corpus {fifo} is a FIFO (named pipe), not a regular file")
    assert not (tmp_path / "r").exists()
