"""`gru-edge export`: validation that can fail, and every bad input from the issue."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
from cli_checks import assert_one_line_error
from typer.testing import CliRunner

from gru_edge.cli import app
from gru_edge.runtime.errors import ExportValidationError

pytestmark = pytest.mark.train  # needs the [train] extra (TensorFlow)

runner = CliRunner()


def test_export_cli_prints_the_comparisons(tmp_path, trained_run):
    out = tmp_path / "m.onnx"
    result = runner.invoke(app, ["export", str(trained_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "- window probabilities vs trained model: max diff =" in result.stdout
    assert "rollout state_out (500 steps)" in result.stdout and "atol 1e-05" in result.stdout
    assert out.stat().st_size > 0
    assert not list(tmp_path.glob(".*.tmp*"))


def test_altered_weights_fail_validation_and_write_nothing(tmp_path, trained_run, monkeypatch):
    import gru_edge.exporter.export as export_module
    from gru_edge.trainer.model import build_stepper

    def tampered(model):
        stepper = build_stepper(model)
        layer = stepper.get_layer("logits")
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel * 1.01, bias])
        return stepper

    monkeypatch.setattr(export_module, "build_stepper", tampered)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportValidationError) as caught:
        export_module.export_run(trained_run, out, log=lambda _m: None)
    message = str(caught.value)
    assert "window probabilities vs trained model: max diff =" in message
    assert "\n" not in message
    assert not out.exists()
    assert not list(tmp_path.iterdir())


def test_atol_zero_is_honoured(tmp_path, trained_run):
    # Float32 GRU kernels differ in their last bits between TF and onnxruntime: atol 0 must fail.
    result = runner.invoke(
        app, ["export", str(trained_run), "--out", str(tmp_path / "m.onnx"), "--atol", "0"]
    )
    assert_one_line_error(result, "does not match Keras", "MISMATCH")
    assert not (tmp_path / "m.onnx").exists()


def _broken_run(tmp_path, trained_run, breakage):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    breakage(run)
    return run


def _shrink_vocab(run):
    vocab = json.loads((run / "vocab.json").read_text(encoding="utf-8"))
    (run / "vocab.json").write_text(json.dumps(vocab[:-1]), encoding="utf-8")


def _set_config(key, value):
    def change(run):
        info = json.loads((run / "config.json").read_text(encoding="utf-8"))
        info["config"][key] = value
        (run / "config.json").write_text(json.dumps(info), encoding="utf-8")

    return change


@pytest.mark.parametrize(
    ("breakage", "needles"),
    [
        (lambda run: shutil.rmtree(run), ["run directory not found"]),
        (lambda run: (run / "model.keras").unlink(), ["has no model.keras"]),
        (lambda run: (run / "vocab.json").unlink(), ["has no vocab.json"]),
        (lambda run: (run / "config.json").unlink(), ["has no config.json"]),
        (lambda run: (run / "config.json").write_text("{oops"), ["is not valid JSON"]),
        (_shrink_vocab, ["predicts", "characters, but the run's vocabulary has"]),
        (lambda run: (run / "config.json").write_text("[]"), ['has no "format"']),
        (
            lambda run: (run / "config.json").write_text('{"format": "gru-edge-run/1"}'),
            ["lacks or garbles config, config.seq_len"],
        ),
        (_set_config("layers", "two"), ["lacks or garbles config.layers"]),
        (_set_config("layers", 2), ["has 1 GRU layer, but the run's config.json says 2"]),
    ],
)
def test_export_bad_run_dir(tmp_path, trained_run, breakage, needles):
    run = _broken_run(tmp_path, trained_run, breakage)
    out = tmp_path / "m.onnx"
    result = runner.invoke(app, ["export", str(run), "--out", str(out)])
    assert_one_line_error(result, *needles)
    assert not out.exists()


def test_existing_out_needs_force(tmp_path, trained_run):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"precious")
    result = runner.invoke(app, ["export", str(trained_run), "--out", str(out)])
    assert_one_line_error(result, "already exists", "--force")
    assert out.read_bytes() == b"precious"
    result = runner.invoke(app, ["export", str(trained_run), "--out", str(out), "--force", "-q"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] != b"precious"


@pytest.mark.parametrize(
    ("make_out", "needles"),
    [
        (lambda tmp: tmp / "no" / "such" / "m.onnx", ["folder", "does not exist"]),
        (lambda tmp: tmp, ["is a directory"]),
        (
            lambda tmp: (tmp / "file.txt").write_text("x") and tmp / "file.txt" / "m.onnx",
            ["does not exist"],
        ),
    ],
)
def test_unwritable_out(tmp_path, trained_run, make_out, needles):
    out = make_out(tmp_path)
    result = runner.invoke(app, ["export", str(trained_run), "--out", str(out)])
    assert_one_line_error(result, *needles)


def test_export_without_the_train_extra(tmp_path, trained_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    result = runner.invoke(app, ["export", str(trained_run), "--out", str(tmp_path / "m.onnx")])
    assert_one_line_error(result, "pip install 'gru-edge[train]'")


@pytest.mark.parametrize("opset", [1, 6, 19, 21])
def test_opset_outside_the_supported_range(tmp_path, trained_run, opset):
    from tf2onnx.constants import OPSET_TO_IR_VERSION

    out = tmp_path / "m.onnx"
    result = runner.invoke(
        app, ["export", str(trained_run), "--out", str(out), "--opset", str(opset)]
    )
    assert_one_line_error(
        result, f"--opset {opset} is outside", f"(7 to {max(OPSET_TO_IR_VERSION)}:", "try 17"
    )
    assert not out.exists()


def test_export_names_but_keeps_the_temporary_files_a_kill_left(tmp_path, trained_run):
    out = tmp_path / "m.onnx"
    stale = tmp_path / ".m.onnx.a1b2c3d4.tmp.onnx"
    stale.write_bytes(b"half an onnx file")
    result = runner.invoke(app, ["export", str(trained_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "note: 1 temporary file(s) from an interrupted export" in result.stdout
    assert ".m.onnx.a1b2c3d4.tmp.onnx" in result.stdout
    assert stale.read_bytes() == b"half an onnx file" and out.stat().st_size > 0
