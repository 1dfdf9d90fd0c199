"""Generator version 2 on: every setting per row (the ``row_*`` inputs), as a batching server
feeds them; a scalar still means every row, and files of every version load and write the same
text (version 3 computes version 2's values by cheaper nodes)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_models import make_model, write_model
from typer.testing import CliRunner

from gru_edge.cli import app
from gru_edge.exporter.generator_graph import add_generator
from gru_edge.runtime import contract
from gru_edge.runtime.generator import Generator
from gru_edge.runtime.generator_build import VERSIONS
from gru_edge.runtime.ingraph import RowSettings, call, call_rows
from gru_edge.runtime.loader import load_model
from gru_edge.runtime.ortstep import OrtStep
from gru_edge.runtime.randomness import gumbel_rows
from gru_edge.runtime.sampler import SamplingSettings, sample_ids

VOCAB = 70  # onnx_models' default vocabulary
UNITS = 8
STEPS = 300
# Five rows, each unlike the others: greedy among sampled rows, top-k and top-p on some rows
# only, seeds at both ends of the range, streams part-way through.
ROWS = RowSettings(
    temperature=np.array([1.0, 0.0, 0.7, 1.3, 1.0], np.float32),
    top_k=np.array([0, 5, 3, 0, 10], np.int64),
    top_p=np.array([1.0, 0.9, 1.0, 0.8, 0.5], np.float32),
    seed=np.array([7, 7, 123, 2**63 - 1, 0], np.int64),
    offset=np.array([0, 5, 100, 3, 0], np.int64),
)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("rows") / "m.onnx", units=UNITS, seed=5, scale=1.0)


def _row(rows: RowSettings, r: int) -> tuple[SamplingSettings, int, int]:
    k, p = int(rows.top_k[r]), float(rows.top_p[r])
    settings = SamplingSettings(
        float(rows.temperature[r]), top_k=k if k > 0 else None, top_p=p if p < 1 else None
    )
    return settings, int(rows.seed[r]), int(rows.offset[r])


def _host(session, ids: np.ndarray, rows: RowSettings, steps: int) -> np.ndarray:
    """The reference: the file's step on the whole batch, each row sampled on the host with
    its own settings and its own stream (runtime.sampler, runtime.randomness)."""
    batch = len(ids)
    step = OrtStep(session, batch=batch, state_width=UNITS, vocab_size=VOCAB)
    state = np.zeros((batch, UNITS), np.float32)
    out = np.zeros((batch, steps), np.int64)
    logits, state = step(ids, state)
    for t in range(steps):
        for r in range(batch):
            settings, seed, offset = _row(rows, r)
            keys = np.array([seed], np.uint64)
            g = gumbel_rows(keys, np.array([offset + t], np.uint64), VOCAB)[0, 0]
            out[r, t] = sample_ids(logits[r : r + 1], settings, settings.t32 * g)[0]
        logits, state = step(out[:, t : t + 1], state)
    return out


def test_each_row_is_sampled_with_its_own_settings_and_stream(model_path):
    session = load_model(model_path, device="cpu", threads=1).session
    ids = np.array([[3], [3], [10], [0], [69]], np.int64)
    state = np.zeros((5, UNITS), np.float32)
    generated, _, sums = call_rows(session, ids, state, STEPS, ROWS, vocab_size=VOCAB, width=UNITS)
    assert np.isfinite(sums).all()
    np.testing.assert_array_equal(generated, _host(session, ids, ROWS, STEPS))
    assert len({tuple(row) for row in generated}) == 5  # the rows differ from each other


def test_chunks_of_a_row_call_continue_each_stream(model_path):
    session = load_model(model_path, device="cpu", threads=1).session
    ids = np.array([[1], [2], [3], [4], [5]], np.int64)
    state = np.zeros((5, UNITS), np.float32)
    whole = call_rows(session, ids, state, 60, ROWS, vocab_size=VOCAB, width=UNITS)[0]
    first, state1, _ = call_rows(session, ids, state, 25, ROWS, vocab_size=VOCAB, width=UNITS)
    later = RowSettings(**{**ROWS.__dict__, "offset": ROWS.offset + 25})
    rest = call_rows(session, first[:, -1:], state1, 35, later, vocab_size=VOCAB, width=UNITS)[0]
    np.testing.assert_array_equal(whole, np.concatenate([first, rest], axis=1))


def test_scalars_mean_every_row_as_before(model_path):
    # Row seeds s, s + 1, ... and the same other settings on every row: the scalar call.
    session = load_model(model_path, device="cpu", threads=1).session
    ids = np.array([[1], [2], [3]], np.int64)
    state = np.zeros((3, UNITS), np.float32)
    scalar = {
        contract.INPUT_TEMPERATURE: np.array(0.8, np.float32),
        contract.INPUT_TOP_K: np.array(6, np.int64),
        contract.INPUT_TOP_P: np.array(0.95, np.float32),
        contract.INPUT_SEED: np.array(41, np.int64),
        contract.INPUT_OFFSET: np.array(9, np.int64),
    }
    rows = RowSettings(
        temperature=np.full(3, 0.8, np.float32),
        top_k=np.full(3, 6),
        top_p=np.full(3, 0.95, np.float32),
        seed=np.array([41, 42, 43]),
        offset=np.full(3, 9),
    )
    by_scalars = call(session, ids, state, 80, scalar, VOCAB, UNITS)[0]
    by_rows = call_rows(session, ids, state, 80, rows, vocab_size=VOCAB, width=UNITS)[0]
    np.testing.assert_array_equal(by_scalars, by_rows)


def test_every_row_greedy_takes_the_greedy_body(model_path):
    session = load_model(model_path, device="cpu", threads=1).session
    ids = np.array([[1], [2]], np.int64)
    state = np.zeros((2, UNITS), np.float32)
    rows = RowSettings(
        temperature=np.zeros(2, np.float32),
        top_k=np.array([0, 3]),
        top_p=np.array([1.0, 0.5], np.float32),
        seed=np.array([1, 2]),
        offset=np.array([0, 4]),
    )
    got = call_rows(session, ids, state, 50, rows, vocab_size=VOCAB, width=UNITS)[0]
    np.testing.assert_array_equal(got, _host(session, ids, rows, 50))


@pytest.mark.parametrize(
    "settings",
    [{}, {"temperature": 0.0}, {"temperature": 0.6, "top_k": 4}, {"top_p": 0.7, "seed": 9}],
    ids=["default", "greedy", "top-k", "top-p"],
)
def test_every_generator_version_writes_the_same_text(version_files, settings):
    texts = {
        (path.name, engine): Generator.load(path, device="cpu", threads=1).generate(
            "ab", 200, engine=engine, **{"seed": 1, **settings}
        )
        for path in version_files
        for engine in ("graph", "host")
    }
    assert len(texts) == 2 * len(VERSIONS) and len(set(texts.values())) == 1, texts
    first, *later = (load_model(path).session.get_inputs() for path in version_files)
    assert all(first != inputs for inputs in later)  # version 1 has no row inputs


def test_info_says_which_files_take_settings_per_row(version_files):
    for version, path in zip(VERSIONS, version_files, strict=True):
        shown = CliRunner().invoke(app, ["info", str(path)]).stdout
        row = next(
            line for line in shown.splitlines() if "generator in the file" in " ".join(line.split())
        )
        assert row.endswith("per call") == (version == "1"), row
        assert ("settings per row (version 2 on)" in row) == (version != "1"), row


@pytest.fixture(scope="module")
def version_files(tmp_path_factory):
    """The same weights with the generator of every version, in VERSIONS' order."""
    folder, paths = tmp_path_factory.mktemp("versions"), []
    for version in VERSIONS:
        model = make_model(units=UNITS, seed=5, scale=1.0, generator=False)
        add_generator(model, VOCAB, UNITS, version)
        for p in model.metadata_props:
            if p.key == "format":
                p.value = "gru-edge/2"
        paths.append(write_model(folder / f"v{version}.onnx", model))
    return paths
