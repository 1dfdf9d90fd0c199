"""The runtime on a file the exporter wrote (a tiny trained run): the two halves agree."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gru_edge.cli import app
from gru_edge.runtime.generator import Generator
from gru_edge.runtime.loader import load_model

pytestmark = pytest.mark.train  # needs the [train] extra (TensorFlow)


def test_the_runtime_loads_what_the_exporter_writes(exported_model, trained_run):
    config = json.loads((trained_run / "config.json").read_text(encoding="utf-8"))
    vocab = json.loads((trained_run / "vocab.json").read_text(encoding="utf-8"))
    model = load_model(exported_model, device="cpu")
    assert model.vocab == vocab
    assert model.units == config["config"]["units"]
    assert model.seq_len == config["config"]["seq_len"]
    assert model.opset is not None and model.metadata["format"] == "gru-edge/2"


def test_the_exported_model_samples_in_both_modes(exported_model):
    gen = Generator.load(exported_model, device="cpu", threads=1)
    prime = "The "
    length = gen.seq_len - len(prime)
    stateful = gen.generate(prime, length, temperature=0)
    assert gen.generate(prime, length, temperature=0, mode="window") == stateful
    texts = gen.generate_batch(3, prime, 50, seed=1)
    assert len(texts) == 3 and all(len(t) == 50 for t in texts)


def test_info_on_the_exported_model(exported_model):
    result = CliRunner().invoke(app, ["info", str(exported_model)])
    assert result.exit_code == 0, result.output
    assert "gru-edge/2" in result.stdout and "ids int64" in result.stdout
