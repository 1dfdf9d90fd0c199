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
        result, f"--opset {opset} is outside", f"(7 to {max(OPSET_TO_IR_VERSION)}:", "try 18"
    )
    assert not out.exists()


def test_export_names_but_keeps_the_temporary_files_a_kill_left(tmp_path, trained_run):
    out = tmp_path / "m.onnx"
    names = [  # an --ort export killed mid-way leaves all three
        ".m.onnx.a1b2c3d4.tmp.onnx",
        ".m.ort.e5f6g7h8.tmp.ort",
        ".m.required_operators.config.i9j0k1l2.tmp.config",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"half a file")
    (tmp_path / ".other.onnx.a1b2c3d4.tmp.onnx").write_bytes(b"another --out's")
    result = runner.invoke(app, ["export", str(trained_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "note: 3 temporary file(s) from an interrupted export" in result.stdout
    assert all(name in result.stdout for name in names) and ".other" not in result.stdout
    assert all((tmp_path / name).read_bytes() == b"half a file" for name in names)
    assert out.stat().st_size > 0


def _stepper_with(change):
    from gru_edge.trainer.model import build_stepper

    def tampered(model):
        stepper = build_stepper(model)
        layer = stepper.get_layer("logits")
        kernel, bias = layer.get_weights()
        layer.set_weights([change(kernel), bias])
        return stepper

    return tampered


def test_a_nan_weight_is_named_as_a_nan(tmp_path, trained_run, monkeypatch):
    import numpy as np

    import gru_edge.exporter.export as export_module

    def with_nan(kernel):
        kernel = kernel.copy()
        kernel[0, 0] = np.nan
        return kernel

    monkeypatch.setattr(export_module, "build_stepper", _stepper_with(with_nan))
    out = tmp_path / "nan.onnx"
    with pytest.raises(ExportValidationError) as caught:
        export_module.export_run(trained_run, out, log=lambda _m: None)
    message = str(caught.value)
    assert "window probabilities vs trained model: NaN in the ONNX output" in message
    assert "NaN in the ONNX and the Keras outputs" in message
    # the generator stage still ran, and says why it could not finish
    assert "(generator: could not run (the model computed NaN logits" in message
    assert "inf" not in message and "\n" not in message
    assert not out.exists() and not list(tmp_path.iterdir())


def test_every_validation_stage_runs_and_one_error_names_them_all(
    tmp_path, trained_run, monkeypatch
):
    import gru_edge.exporter.export as export_module
    import gru_edge.runtime.generator_pick as graph_module

    # the step does not match the trained model, and the generator draws other noise
    monkeypatch.setattr(export_module, "build_stepper", _stepper_with(lambda k: k * 1.01))
    monkeypatch.setattr(graph_module, "GOLDEN", graph_module.GOLDEN ^ 1)
    lines: list[str] = []
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportValidationError) as caught:
        export_module.export_run(trained_run, out, ort_format=True, log=lines.append)
    message = str(caught.value)
    assert "the ONNX model does not match Keras (window probabilities vs trained model" in message
    assert "generator does not write what the model does (generator, sampled" in message
    assert "\n" not in message and message.endswith("; nothing written")
    # the .ort stage ran too (it matches its .onnx), and nothing of the three was written
    assert any(line.startswith("- .ort rollout logits vs .onnx") for line in lines)
    assert not list(tmp_path.iterdir())


def test_export_validates_the_generator_and_writes_gru_edge_2(tmp_path, trained_run):
    out = tmp_path / "m.onnx"
    result = runner.invoke(app, ["export", str(trained_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for line in (
        "- generator, greedy vs Keras stepper: 500 characters identical ok",
        "- generator, sampled, temperature 1.0 vs host loop: 500 characters identical ok",
        "- generator, sampled, temperature 0.8, top-k 10, top-p 0.9 vs host loop: 500 characters",
    ):
        assert line in result.stdout
    # the log lists the ops at every depth: the cell's, and the pick's inside the generator
    ops = next(line for line in result.stdout.splitlines() if "; ops: " in line)
    assert {"Gemm", "Tanh", "Scan", "If", "ArgMax"} <= set(ops.split("; ops: ")[1][:-1].split())
    info = runner.invoke(app, ["info", str(out), "--json"])
    assert json.loads(info.stdout)["metadata"]["format"] == "gru-edge/2"


def test_a_generator_that_draws_other_noise_fails_and_writes_nothing(
    tmp_path, trained_run, monkeypatch
):
    import gru_edge.runtime.generator_pick as graph_module
    from gru_edge.exporter.export import export_run

    monkeypatch.setattr(graph_module, "GOLDEN", graph_module.GOLDEN ^ 1)  # not the spec's stream
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportValidationError) as caught:
        export_run(trained_run, out, log=lambda _m: None)
    message = str(caught.value)
    assert "generator does not write what the model does" in message and "\n" not in message
    assert "sampled, temperature 1.0 vs host loop: MISMATCH from character" in message
    assert "greedy" not in message  # greedy uses no noise: still identical
    assert not out.exists() and not list(tmp_path.iterdir())


def test_below_opset_18_the_file_is_gru_edge_1_and_samples_on_the_host(tmp_path, trained_run):
    out = tmp_path / "m17.onnx"
    result = runner.invoke(app, ["export", str(trained_run), "--out", str(out), "--opset", "17"])
    assert result.exit_code == 0, result.output
    assert "writing a gru-edge/1 file, sampled by the host loop only" in result.stdout
    assert "generator," not in result.stdout
    info = json.loads(runner.invoke(app, ["info", str(out), "--json"]).stdout)
    assert info["metadata"]["format"] == "gru-edge/1" and info["generator"] is False
    sampled = runner.invoke(app, ["sample", str(out), "--length", "30", "--seed", "1", "--json"])
    assert json.loads(sampled.stdout)["engine"] == "host"
    refused = runner.invoke(app, ["sample", str(out), "--engine", "graph"])
    assert_one_line_error(refused, "gru-edge/1 file, without the in-graph generator")


def test_a_vocabulary_of_thousands_exports_small_validates_and_samples(tmp_path_factory):
    """A CJK-sized vocabulary: the file grows with vocab x units (projected rows), not vocab^2."""
    import random

    from gru_edge.exporter.export import export_run
    from gru_edge.runtime.generator import Generator
    from gru_edge.trainer.config import TrainOptions
    from gru_edge.trainer.train import train

    folder = tmp_path_factory.mktemp("cjk")
    chars = [chr(0x4E00 + i) for i in range(2995)] + list("。，、\n ")
    rng = random.Random(1)
    text = "".join(chars) + "".join(rng.choices(chars, [1 / (i + 1) for i in range(3000)], k=8000))
    corpus = folder / "cjk.txt"
    corpus.write_text(text, encoding="utf-8")
    options = TrainOptions(
        units=16,
        seq_len=10,
        step=5,
        epochs=1,
        batch_size=16,
        steps_per_epoch=2,
        validation_steps=1,
        seed=3,
        samples=False,
    )
    train(corpus, folder / "run", options, quiet=True)
    report = export_run(folder / "run", folder / "cjk.onnx", log=lambda _m: None)
    identity_bytes = 3000 * 3000 * 4
    assert report.size_bytes < identity_bytes / 10  # ~0.6 MB against 36 MB of identity
    assert all(c.ok for c in report.comparisons)
    gen = Generator.load(folder / "cjk.onnx", device="cpu")
    assert len(gen.vocab) == 3000
    graph = gen.generate("一", 200, seed=4)
    assert graph == gen.generate("一", 200, seed=4, engine="host") and len(graph) == 200


def test_fp16_weights_halve_the_file_and_sample_the_same_on_both_engines(tmp_path, trained_run):
    full, half = tmp_path / "m32.onnx", tmp_path / "m16.onnx"
    assert runner.invoke(app, ["export", str(trained_run), "--out", str(full)]).exit_code == 0
    result = runner.invoke(
        app, ["export", str(trained_run), "--out", str(half), "--weights", "fp16"]
    )
    assert result.exit_code == 0, result.output
    assert "storing 6 weight tensors as float16" in result.stdout
    assert "(atol 0.005) ok" in result.stdout and "greedy vs host loop" in result.stdout
    # The weights take half the bytes (on this tiny model the metadata is most of the file; on
    # the quickstart's GRU(128) the whole file is 54% of the float32 one, see README).
    import onnx

    weights = sum(
        t.ByteSize()
        for t in onnx.load(str(full)).graph.initializer
        if t.data_type == onnx.TensorProto.FLOAT and len(t.float_data) + len(t.raw_data) >= 64
    )
    saved = full.stat().st_size - half.stat().st_size
    assert 0.45 * weights <= saved <= 0.55 * weights
    info = json.loads(runner.invoke(app, ["info", str(half), "--json"]).stdout)
    assert info["metadata"]["weights"] == "float16"
    assert (
        json.loads(runner.invoke(app, ["info", str(full), "--json"]).stdout)["metadata"]["weights"]
        == "float32"
    )
    args = ["--length", "300", "--seed", "3", "-t", "0.8"]
    graph = runner.invoke(app, ["sample", str(half), *args, "--engine", "graph"]).stdout
    assert graph == runner.invoke(app, ["sample", str(half), *args, "--engine", "host"]).stdout


def test_weights_beyond_float16_are_a_one_line_error(tmp_path, trained_run, monkeypatch):
    import gru_edge.exporter.export as export_module
    from gru_edge.trainer.model import build_stepper

    def huge(model):
        stepper = build_stepper(model)
        layer = stepper.get_layer("logits")
        kernel, bias = layer.get_weights()
        kernel[0, 0] = 1e6
        layer.set_weights([kernel, bias])
        return stepper

    monkeypatch.setattr(export_module, "build_stepper", huge)
    out = tmp_path / "m.onnx"
    result = runner.invoke(
        app, ["export", str(trained_run), "--out", str(out), "--weights", "fp16"]
    )
    assert_one_line_error(result, "beyond float16's range", "--weights fp32")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_ort_format_twin_and_operator_config(tmp_path, trained_run):
    out = tmp_path / "m.onnx"
    result = runner.invoke(app, ["export", str(trained_run), "--out", str(out), "--ort"])
    assert result.exit_code == 0, result.output
    ort_file, config = tmp_path / "m.ort", tmp_path / "m.required_operators.config"
    assert ort_file.read_bytes()[4:8] == b"ORTM"
    assert ".ort rollout logits vs .onnx (500 steps): max diff = 0 " in result.stdout
    assert "generator, .ort, sampled, temperature 1.0 vs .onnx: 500 characters identical" in (
        result.stdout
    )
    ops = config.read_text(encoding="utf-8")
    assert "Gemm" in ops and "Scan" in ops and "BitwiseXor" in ops and ".tmp" not in ops
    args = ["--prime", "The ", "--length", "200", "--seed", "9", "-t", "0.7", "--top-k", "8"]
    expected = runner.invoke(app, ["sample", str(out), *args]).stdout
    for engine in ("graph", "host"):
        sampled = runner.invoke(app, ["sample", str(ort_file), *args, "--engine", engine])
        assert sampled.exit_code == 0 and sampled.stdout == expected
    info = json.loads(runner.invoke(app, ["info", str(ort_file), "--json"]).stdout)
    assert info["generator"] and info["metadata"]["format"] == "gru-edge/2"
    assert (
        info["metadata"]["vocabulary"] if "vocabulary" in info["metadata"] else info["vocabulary"]
    )
    # Not replaced without --force, and a broken .ort is one line.
    again = runner.invoke(app, ["export", str(trained_run), "--out", str(out), "--ort", "--force"])
    assert again.exit_code == 0
    other = tmp_path / "n.onnx"
    (tmp_path / "n.ort").write_bytes(b"keep")
    refused = runner.invoke(app, ["export", str(trained_run), "--out", str(other), "--ort"])
    assert_one_line_error(refused, "n.ort already exists", "--force")
    assert (tmp_path / "n.ort").read_bytes() == b"keep" and not other.exists()
    (tmp_path / "cut.ort").write_bytes(ort_file.read_bytes()[:4000])
    broken = runner.invoke(app, ["sample", str(tmp_path / "cut.ort")])
    assert_one_line_error(broken, "cut.ort is not an ORT-format model")


def test_bad_weights_value(tmp_path, trained_run):
    result = runner.invoke(
        app, ["export", str(trained_run), "--out", str(tmp_path / "m.onnx"), "--weights", "int8"]
    )
    assert_one_line_error(result, "--weights must be fp32 or fp16, got 'int8'")
