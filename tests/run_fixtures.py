"""Session fixtures for the TensorFlow side: a tiny corpus, a tiny trained run, its ONNX export.

Imported by conftest.py. Everything is generated here, in pytest's temporary folders.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Characters the metadata must round-trip: newline, tab, em dash, curly quotes, accented letters
# (precomposed, as NFC leaves them) and one outside the BMP.
HARD_CHARS = "\n\t—“”‘’éÅ🙂"
# A tiny model: trains in seconds, still a real GRU with a real vocabulary.
TINY = {
    "units": 16,
    "seq_len": 20,
    "step": 3,
    "epochs": 2,
    "batch_size": 32,
    "steps_per_epoch": 8,
    "validation_steps": 2,
    "lr": 0.02,
    "seed": 1234,
    "sample_length": 40,
}


def make_corpus(folder: Path) -> Path:
    text = (REPO / "poems.txt").read_text(encoding="utf-8")[:3000]
    extra = "\n".join(f"“{w}” — ‘café’\tÅ 🙂" for w in ("one", "two", "three"))
    path = folder / "corpus.txt"
    path.write_text(text + "\n" + extra + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_corpus) -> Path:
    from gru_edge.trainer.config import TrainOptions
    from gru_edge.trainer.train import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(tiny_corpus, out, TrainOptions(**TINY), quiet=True)
    return out


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory, trained_run) -> Path:
    from gru_edge.exporter.export import export_run

    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_run(trained_run, out, log=lambda _m: None)
    return out
