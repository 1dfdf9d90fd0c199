"""`gru-edge info RUN_DIR`, the run's facts, curves.png, and the Python API (train, export)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_checks import assert_one_line_error
from typer.testing import CliRunner

import gru_edge
from gru_edge.cli import app
from gru_edge.runtime.errors import RunDirError, UsageError
from gru_edge.trainer import rundir
from gru_edge.trainer.facts import read_facts

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def test_a_trained_run_has_curves_and_info_shows_its_facts(trained_run):
    assert (trained_run / "curves.png").read_bytes()[:8] == PNG
    result = runner.invoke(app, ["info", str(trained_run)])
    assert result.exit_code == 0, result.output
    facts = read_facts(trained_run)
    assert f"2 of 2 ({facts.training_seconds:.1f} s of training)" in result.stdout
    assert f"best epoch  {facts.best_epoch}: val_loss {facts.best_val_loss:.4f}" in result.stdout
    assert f"{facts.best_val_bpc:.3f} bits/char" in result.stdout
    assert "completed all 2 epochs (--epochs 2)" in result.stdout
    assert str(trained_run / "curves.png") in result.stdout and "patience 3" in result.stdout


def test_info_run_dir_json(trained_run):
    result = runner.invoke(app, ["info", str(trained_run), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["epochs_completed"] == 2 and len(data["history"]) == 2
    assert data["curves"] == str(trained_run / "curves.png")
    assert data["config"]["units"] == 16 and data["stop_reason"].startswith("completed")
    assert data["best_val_bpc"] == pytest.approx(data["best_val_loss"] / 0.6931471805599453)


def _fake_run(folder: Path, history: str | None) -> Path:
    """A run directory by hand (no TensorFlow): config.json, and history.csv if given."""
    folder.mkdir()
    info = {
        "format": rundir.RUN_FORMAT,
        "config": {"seq_len": 10, "units": 4, "layers": 1, "epochs": 3},
        "text_policy": "nfc",
        "corpus": {"path": "c.txt", "sha256": "ab", "chars": 100, "val_chars": 10},
        "vocab_size": 5,
        "best_epoch": 1,
        "best_val_loss": 1.0,
        "best_val_bpc": 1.4427,
    }
    (folder / "config.json").write_text(json.dumps(info), encoding="utf-8")
    if history is not None:
        (folder / "history.csv").write_text(history, encoding="utf-8")
    return folder


HEADER = "epoch,loss,val_loss,val_bpc,lr,seconds\n"


def test_info_on_an_unfinished_run_without_pictures(tmp_path):
    run = _fake_run(tmp_path / "r", HEADER + "1,1.5,nan,nan,0.01,2.5\n")
    result = runner.invoke(app, ["info", str(run)])
    assert result.exit_code == 0, result.output
    assert "1 of 3 (2.5 s of training)" in result.stdout
    assert "not finished (interrupted, or training now)" in result.stdout
    assert "none (a run from before curves.png)" in result.stdout
    data = json.loads(runner.invoke(app, ["info", str(run), "--json"]).stdout)
    assert data["history"][0]["val_loss"] is None  # NaN is no JSON


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (lambda p: p.mkdir(), ["is not a gru-edge run directory (no config.json)"]),
        (
            lambda p: (p.mkdir(), (p / "config.json").write_text("{}", encoding="utf-8")),
            ['has no "format"', "gru-edge-run/1"],
        ),
        (lambda p: _fake_run(p, "garbage\n1,2\n"), ["history.csv is damaged", "columns"]),
        (lambda p: _fake_run(p, HEADER + "1,x,1,1,1,1\n"), ["line 2 is not a row of numbers"]),
        (lambda p: _fake_run(p, HEADER + "2,1,1,1,1,1\n"), ["line 2 is epoch 2, not 1"]),
        (
            lambda p: _fake_run(p, None) and (p / "history.csv").write_bytes(b"\xff\xfe"),
            ["history.csv is damaged"],
        ),
    ],
)
def test_info_bad_run_dirs(tmp_path, make, needles):
    make(tmp_path / "r")
    assert_one_line_error(runner.invoke(app, ["info", str(tmp_path / "r")]), *needles)


def test_info_model_file_is_unchanged_for_a_missing_path(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "nope.onnx")])
    assert_one_line_error(result, "nope.onnx")


@pytest.mark.train  # matplotlib comes with the [train] extra
def test_write_curves_without_a_validation_split(tmp_path):
    from gru_edge.trainer.curves import write_curves

    rows = [{"epoch": e, "loss": 2.0 / e, "val_loss": float("nan"), "lr": 0.01} for e in (1, 2)]
    path = write_curves(tmp_path, rows, 2)
    assert path.read_bytes()[:8] == PNG and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_the_api_is_lazy_and_public():
    assert {"train", "export", "RunFacts"} <= set(gru_edge.__all__)
    from gru_edge import RunFacts, export, train
    from gru_edge.api import export as api_export
    from gru_edge.api import train as api_train

    assert (train, export) == (api_train, api_export) and RunFacts.__name__ == "RunFacts"


@pytest.mark.parametrize(
    ("options", "error", "needle"),
    [
        ({"unit": 8}, UsageError, "train() has no option 'unit'; the options are seq_len"),
        ({"units": "8"}, UsageError, "option units must be a whole number, got '8'"),
        ({"units": 8.5}, UsageError, "option units must be a whole number, got 8.5"),
        ({"patience": True}, UsageError, "option patience must be a whole number"),
        ({"samples": 1}, UsageError, "option samples must be True or False, got 1"),
        ({"temperatures": ["hot"]}, UsageError, "must be a sequence of numbers"),
        ({"units": 0}, UsageError, "--units must be between 1 and 4096, got 0"),
        ({"patience": -1}, UsageError, "--patience must be at least 0, got -1"),
    ],
)
def test_api_train_checks_options_like_the_cli(tmp_path, options, error, needle):
    corpus = tmp_path / "c.txt"
    corpus.write_text("x" * 5000, encoding="utf-8")
    with pytest.raises(error) as caught:
        gru_edge.train(corpus, tmp_path / "run", **options)
    assert needle in str(caught.value)
    assert not (tmp_path / "run").exists()


def test_api_errors_are_the_cli_errors(tmp_path):
    with pytest.raises(RunDirError, match="run directory not found"):
        gru_edge.export(tmp_path / "none", tmp_path / "m.onnx")
    with pytest.raises(gru_edge.CorpusError, match="corpus not found"):
        gru_edge.train(tmp_path / "none.txt", tmp_path / "run")


@pytest.mark.train
def test_notebook_example_runs(tmp_path, tiny_corpus):
    env = {**os.environ, "GRU_EDGE_CORPUS": str(tiny_corpus), "GRU_EDGE_WORK": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "notebook.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "completed all 3 epochs (--epochs 3)" in proc.stdout
    assert f"curves: {tmp_path / 'notebook' / 'curves.png'}" in proc.stdout
    assert "UsageError: --units must be between 1 and 4096, got -1" in proc.stdout
    assert (tmp_path / "notebook.onnx").stat().st_size > 0
    assert (tmp_path / "notebook" / "curves.png").read_bytes()[:8] == PNG
