"""Stacked GRUs with dropout (`train --layers 2 --dropout 0.2`): training, the fused export,
parity with Keras in window mode and in a stateful rollout, and `sample` on the file."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from cli_checks import assert_one_line_error
from parity_checks import rollout_diffs
from run_fixtures import TINY
from typer.testing import CliRunner

from gru_edge.cli import app
from gru_edge.exporter.validate import softmax
from gru_edge.trainer import rundir
from gru_edge.trainer.config import TrainConfig

pytestmark = pytest.mark.train  # needs the [train] extra (TensorFlow)

ATOL = 1e-5
LAYERS, UNITS = 2, TINY["units"]
WIDTH = LAYERS * UNITS  # the one state: layer 0's units, then layer 1's

runner = CliRunner()


@pytest.fixture(scope="module")
def stacked_run(tmp_path_factory, tiny_corpus):
    from gru_edge.trainer.config import TrainOptions
    from gru_edge.trainer.train import train

    out = tmp_path_factory.mktemp("runs") / "stacked"
    train(tiny_corpus, out, TrainOptions(**TINY, layers=LAYERS, dropout=0.2), quiet=True)
    return out


@pytest.fixture(scope="module")
def stacked_export(tmp_path_factory, stacked_run):
    from gru_edge.exporter.export import export_run

    out = tmp_path_factory.mktemp("onnx") / "stacked.onnx"
    return export_run(stacked_run, out, log=lambda _m: None)


@pytest.fixture(scope="module")
def keras_side(stacked_run):
    from gru_edge.trainer.keras_files import load_keras_model
    from gru_edge.trainer.model import build_stepper, step_function

    model = load_keras_model(stacked_run / "model.keras", "FIX", units=UNITS, layers=LAYERS)
    vocab = rundir.read_vocab(stacked_run, "the fixture run is broken")
    return model, step_function(build_stepper(model)), vocab


@pytest.fixture(scope="module")
def onnx_step(stacked_export):
    session = ort.InferenceSession(str(stacked_export.path), providers=["CPUExecutionProvider"])
    return lambda ids, state: tuple(
        session.run(["logits", "state_out"], {"ids": ids, "state": state})
    )


def test_stacked_run_records_its_layers_and_writes_samples(stacked_run, keras_side):
    info = json.loads((stacked_run / "config.json").read_text(encoding="utf-8"))
    assert (info["config"]["layers"], info["config"]["dropout"]) == (LAYERS, 0.2)
    model = keras_side[0]
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["GRU", "Dropout", "GRU", "Dropout", "Dense"]
    samples = (stacked_run / "samples.txt").read_text(encoding="utf-8")
    assert samples.count("----- temperature") == TINY["epochs"] * len(TrainConfig().temperatures)


def test_stacked_export_is_one_fused_gru_per_layer(stacked_export):
    assert all(c.ok for c in stacked_export.comparisons)
    assert all(c.atol == ATOL for c in stacked_export.comparisons if hasattr(c, "atol"))
    assert sum(c.name.startswith(("greedy", "sampled")) for c in stacked_export.comparisons) == 3
    assert stacked_export.ops.count("GRU") == LAYERS
    step_ops = stacked_export.ops[: stacked_export.ops.index("Greater")]
    assert not {"Loop", "Scan", "If"} & set(step_ops) and stacked_export.ops[-1] == "If"
    model = onnx.load(str(stacked_export.path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert (meta["layers"], meta["units"], meta["format"]) == ("2", str(UNITS), "gru-edge/2")
    widths = [v.type.tensor_type.shape.dim[1].dim_value for v in model.graph.input[1:2]]
    assert [v.name for v in model.graph.input[:2]] == ["ids", "state"] and widths == [WIDTH]


def test_the_stacked_generator_writes_the_host_loops_text(stacked_export):
    from gru_edge.runtime.generator import Generator

    gen = Generator.load(stacked_export.path, device="cpu")
    for seed in range(6):
        for settings in ({"temperature": 0}, {"temperature": 1.0}, {"top_k": 4, "top_p": 0.9}):
            graph = gen.generate("The ", 600, seed=seed, engine="graph", **settings)
            assert graph == gen.generate("The ", 600, seed=seed, engine="host", **settings)


def test_stacked_window_mode_matches_keras(keras_side, onnx_step):
    model, keras_step, vocab = keras_side
    ids = np.random.default_rng(5).integers(0, len(vocab), (8, TINY["seq_len"]), dtype=np.int64)
    zero = np.zeros((8, WIDTH), np.float32)
    o_logits, o_state = onnx_step(ids, zero)
    k_logits, k_state = keras_step(ids, zero)
    reference = model.predict(np.eye(len(vocab), dtype=np.float32)[ids], verbose=0)
    assert o_state.shape == (8, WIDTH)
    assert np.abs(softmax(o_logits) - reference).max() <= ATOL
    assert np.abs(softmax(o_logits) - softmax(k_logits)).max() <= ATOL
    assert np.abs(o_state - k_state).max() <= ATOL
    # Layer 0 (the one reading characters) comes first: its slice is the first GRU's output.
    first = model.layers[0](np.eye(len(vocab), dtype=np.float32)[ids]).numpy()[:, -1]
    assert np.abs(o_state[:, :UNITS] - first).max() <= ATOL


def test_stacked_stateful_rollout_matches_keras(keras_side, onnx_step, tiny_corpus):
    _, keras_step, vocab = keras_side
    text = tiny_corpus.read_text(encoding="utf-8")[:300]
    worst_p, worst_s = rollout_diffs(keras_step, onnx_step, vocab.encode(text), WIDTH)
    assert len(text) == 300
    assert worst_p <= ATOL and worst_s <= ATOL


@pytest.mark.parametrize("mode", ["stateful", "window"])
def test_sample_on_a_stacked_file_is_deterministic(stacked_export, mode):
    args = ["sample", str(stacked_export.path), "-l", "60", "--seed", "7", "--mode", mode]
    first, again = runner.invoke(app, args), runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert first.stdout == again.stdout and len(first.stdout) >= 60


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--layers", "1", "--layers 1 differs from the run's 2"),
        ("--dropout", "0", "--dropout 0.0 differs from the run's 0.2"),
    ],
)
def test_resume_refuses_other_layers_or_dropout(stacked_run, tiny_corpus, option, value, needle):
    before = {p.name: p.stat().st_mtime_ns for p in stacked_run.iterdir()}
    args = ["train", str(tiny_corpus), "--out", str(stacked_run), "--resume", option, value]
    assert_one_line_error(runner.invoke(app, args), needle)
    assert {p.name: p.stat().st_mtime_ns for p in stacked_run.iterdir()} == before


def test_bench_peers_write_the_same_text_on_stacked_grus(stacked_run, stacked_export, tmp_path):
    import subprocess

    from gru_edge.bench_peers import prepare_peers, worker_command
    from gru_edge.runtime.generator import Generator

    generator = Generator.load(stacked_export.path, device="cpu")
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps(list(generator.vocab)), encoding="utf-8")
    files = prepare_peers(stacked_run, vocab)
    for kind, model in (("numpy", files.npz), ("litert", files.tflite)):
        command = worker_command(kind, model, vocab, 1, "first", 200)
        text = subprocess.run(command, capture_output=True, check=True).stdout.decode()
        assert text == generator.generate(length=200, seed=1), kind
