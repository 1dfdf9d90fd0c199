"""Shared fixtures. First the runtime's: contract ONNX files built with onnx.helper (see
onnx_models.py), session-scoped because building them costs more than most tests. The
TensorFlow-side fixtures are appended in their own section at the end."""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx_models import make_model, write_model
from tool_checks import pytest_unconfigure  # noqa: F401  (the skipped-tools summary)

from gru_edge.runtime.generator import Generator

# --- runtime fixtures: contract ONNX files ----------------------------------------------------


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def small_model(models_dir) -> Path:
    """GRU(16) over the 70-character test vocabulary, seq_len 40: quick to run."""
    return write_model(models_dir / "small.onnx", units=16, seq_len=40, seed=1)


@pytest.fixture(scope="session")
def bench_model(models_dir) -> Path:
    """GRU(128) over 70 characters: the size the speed targets are stated for."""
    return write_model(models_dir / "gru128.onnx", units=128, seq_len=40, seed=2)


@pytest.fixture(scope="session")
def no_seq_len_model(models_dir) -> Path:
    return write_model(models_dir / "no_seq_len.onnx", units=16, seq_len=None, seed=3)


@pytest.fixture(scope="session")
def small_proto():
    """The ModelProto behind small_model, for the numpy reference step."""
    return make_model(units=16, seq_len=40, seed=1)


@pytest.fixture(scope="session")
def gen(small_model) -> Generator:
    return Generator.load(small_model, device="cpu", threads=1)


# --- TensorFlow-side fixtures (tiny trained run, its ONNX export) ---------------------------
from run_fixtures import exported_model, tiny_corpus, trained_run  # noqa: E402,F401

TRAIN_FIXTURES = {"tiny_corpus", "trained_run", "exported_model"}


def pytest_collection_modifyitems(items):
    """A test that uses a TensorFlow-side fixture needs the [train] extra: mark it `train`, so
    the edge install's run (`pytest -m "not train"`) leaves it out."""
    for item in items:
        if TRAIN_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.train)
