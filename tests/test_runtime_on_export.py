"""The runtime on a file the exporter wrote (a tiny trained run): the two halves agree."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from gru_edge.cli import app
from runtime.generator import Generator
from runtime.loader import load_model


def test_the_runtime_loads_what_the_exporter_writes(exported_model, trained_run):
    config = json.loads((trained_run / "config.json").read_text(encoding="utf-8"))
    vocab = json.loads((trained_run / "vocab.json").read_text(encoding="utf-8"))
    model = load_model(exported_model, device="cpu")
    assert model.vocab == vocab
    assert model.units == config["config"]["units"]
    assert model.seq_len == config["config"]["seq_len"]
    assert model.opset is not None and model.metadata["format"] == "gru-edge/1"


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
    assert "gru-edge/1" in result.stdout and "ids int64" in result.stdout


def test_the_package_exposes_generator_without_loading_onnxruntime_at_import():
    import subprocess
    import sys

    code = (
        "import sys, gru_edge\n"
        "assert 'onnxruntime' not in sys.modules, 'import gru_edge loaded onnxruntime'\n"
        "from gru_edge import Generator\n"
        "import runtime.generator\n"
        "assert Generator is runtime.generator.Generator\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
