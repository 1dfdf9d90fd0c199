"""`gru-edge train` through CliRunner: options, and every bad input from the issue."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cli_checks import assert_one_line_error
from run_fixtures import TINY
from typer.testing import CliRunner

from gru_edge.cli import app

pytestmark = pytest.mark.train  # needs the [train] extra (TensorFlow)

runner = CliRunner()


def _tiny_args() -> list[str]:
    args = []
    for key, value in TINY.items():
        if key != "sample_length":
            args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def test_train_cli_end_to_end(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            str(tiny_corpus),
            "--out",
            str(out),
            *_tiny_args(),
            "--epochs",
            "1",
            "--no-samples",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "epoch 1/1" in result.stdout and "val_bpc" in result.stdout
    assert "best epoch 1" in result.stdout
    assert not (out / "samples.txt").exists()
    info = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert info["config"]["samples"] is False and info["config"]["units"] == TINY["units"]


def test_train_cli_quiet_prints_nothing(tmp_path, tiny_corpus):
    result = runner.invoke(
        app,
        [
            "train",
            str(tiny_corpus),
            "--out",
            str(tmp_path / "q"),
            *_tiny_args(),
            "--epochs",
            "1",
            "--no-samples",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


def test_quiet_training_on_a_one_character_corpus_prints_nothing(tmp_path):
    # A separate process: pytest's own warning capture would hide what tf-keras prints.
    corpus = tmp_path / "one.txt"
    corpus.write_text("a" * 2000, encoding="utf-8")
    gru_edge = os.path.join(os.path.dirname(sys.executable), "gru-edge")
    args = [gru_edge, "train", str(corpus), "--out", str(tmp_path / "q"), *_tiny_args()]
    args += ["--epochs", "1", "--quiet"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (done.stdout, done.stderr) == ("", "")


@pytest.mark.parametrize(
    ("corpus_bytes", "extra", "needles"),
    [
        (None, [], ["corpus not found", "missing.txt"]),
        (b"", [], ["empty or only whitespace"]),
        (b" \n \n", [], ["empty or only whitespace"]),
        (b"abc\xc3(def" * 50, [], ["not valid UTF-8", "offset 3"]),
        (b"short text", [], ["corpus has 10 characters", "needs at least 1006"]),
        (b"x" * 5000, ["--units", "0"], ["--units must be between 1 and 4096, got 0"]),
        (b"x" * 5000, ["--units", "100000"], ["--units must be between 1 and 4096, got 100000"]),
        (b"x" * 5000, ["--lr", "-1"], ["--lr must be a positive number, got -1.0"]),
        (b"x" * 5000, ["--val-fraction", "0.9"], ["--val-fraction", "got 0.9"]),
        (b"x" * 5000, ["--seq-len", "1"], ["--seq-len must be between 2 and 10000, got 1"]),
        (b"x" * 5000, ["--seq-len", "20000"], ["--seq-len must be between 2 and 10000"]),
        (b"x" * 5000, ["--batch-size", "0"], ["--batch-size must be between 1 and 65536"]),
        (b"x" * 5000, ["--batch-size", "10000000"], ["--batch-size must be between 1 and 65536"]),
        (
            b"x" * 5000,
            ["--batch-size", "65536", "--seq-len", "10000", "--units", "4096"],
            ["need at least", "GiB of memory", "lower --batch-size, --seq-len or --units"],
        ),
        (b"x" * 5000, ["--strategy", "tpu"], ["--strategy must be one of"]),
        (b"x" * 5000, ["--layers", "0"], ["--layers must be between 1 and 8, got 0"]),
        (b"x" * 5000, ["--layers", "9"], ["--layers must be between 1 and 8, got 9"]),
        (b"x" * 5000, ["--dropout", "1"], ["--dropout must be at least 0 and below 1, got 1.0"]),
        (b"x" * 5000, ["--dropout", "-0.1"], ["--dropout must be at least 0", "got -0.1"]),
        (b"x" * 5000, ["--dropout", "nan"], ["--dropout must be at least 0", "got nan"]),
        (b"x" * 5000, ["--patience", "-1"], ["--patience must be at least 0, got -1"]),
    ],
)
def test_train_bad_input(tmp_path, corpus_bytes, extra, needles):
    corpus = tmp_path / "missing.txt"
    if corpus_bytes is not None:
        corpus = tmp_path / "corpus.txt"
        corpus.write_bytes(corpus_bytes)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(corpus), "--out", str(out), *extra])
    assert_one_line_error(result, *needles)
    assert not out.exists(), "a failed train must not leave a run directory"


def test_train_directory_as_corpus(tmp_path):
    result = runner.invoke(app, ["train", str(tmp_path), "--out", str(tmp_path / "run")])
    assert_one_line_error(result, "is a directory")


def test_existing_run_needs_resume_or_force(tmp_path, tiny_corpus, trained_run):
    before = {p.name: p.stat().st_mtime_ns for p in trained_run.iterdir()}
    result = runner.invoke(app, ["train", str(tiny_corpus), "--out", str(trained_run)])
    assert_one_line_error(result, "already holds a run", "--resume", "--force")
    assert {p.name: p.stat().st_mtime_ns for p in trained_run.iterdir()} == before


def test_force_replaces_a_run(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    args = [
        "train",
        str(tiny_corpus),
        "--out",
        str(out),
        *_tiny_args(),
        "--epochs",
        "1",
        "--no-samples",
        "-q",
    ]
    assert runner.invoke(app, args).exit_code == 0
    (out / "samples.txt").write_text("old", encoding="utf-8")
    result = runner.invoke(app, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert not (out / "samples.txt").exists()


def test_out_that_is_not_a_run_is_refused(tmp_path, tiny_corpus):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete", encoding="utf-8")
    for extra in ([], ["--force"]):
        result = runner.invoke(app, ["train", str(tiny_corpus), "--out", str(out), *extra])
        assert_one_line_error(result, "holds no gru-edge run")
    assert (out / "thesis.tex").read_text(encoding="utf-8") == "do not delete"


def test_resume_against_another_corpus(tmp_path, trained_run):
    other = tmp_path / "other.txt"
    other.write_text("a different corpus entirely. " * 40, encoding="utf-8")
    result = runner.invoke(app, ["train", str(other), "--out", str(trained_run), "--resume"])
    assert_one_line_error(result, "is not the corpus this run was trained on")


def test_resume_with_a_changed_option(tiny_corpus, trained_run):
    result = runner.invoke(
        app,
        [
            "train",
            str(tiny_corpus),
            "--out",
            str(trained_run),
            "--resume",
            "--units",
            "64",
            "--epochs",
            "5",
        ],
    )
    assert_one_line_error(result, "--units 64 differs from the run's 16")


def test_resume_without_a_run(tmp_path, tiny_corpus):
    result = runner.invoke(
        app, ["train", str(tiny_corpus), "--out", str(tmp_path / "none"), "--resume"]
    )
    assert_one_line_error(result, "holds no resumable run")


def test_resume_of_a_finished_run_needs_more_epochs(tiny_corpus, trained_run):
    result = runner.invoke(app, ["train", str(tiny_corpus), "--out", str(trained_run), "--resume"])
    assert_one_line_error(result, "already completed 2 epochs", "larger --epochs")


def test_train_without_the_train_extra(tmp_path, tiny_corpus, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # `import tensorflow` now fails
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(tiny_corpus), "--out", str(out)])
    assert_one_line_error(result, "pip install 'gru-edge[train]'")
    assert not out.exists()


@pytest.mark.parametrize(
    ("state_text", "needle"),
    [
        ("{not json", "is not valid JSON"),
        ('{"epochs_done": 3}', "is not a gru-edge training state"),
    ],
)
def test_resume_with_a_damaged_state_file(tmp_path, tiny_corpus, trained_run, state_text, needle):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "state.json").write_text(state_text, encoding="utf-8")
    result = runner.invoke(
        app, ["train", str(tiny_corpus), "--out", str(run), "--resume", "--epochs", "5"]
    )
    assert_one_line_error(result, needle)
