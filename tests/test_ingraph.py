"""The generator inside the model file (gru-edge/2): the same ids as the host loop for the same
seed, chunks that do not matter, gru-edge/1 clients unchanged, and malformed generators refused.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx_models import DEFAULT_VOCAB, make_model, write_model

from gru_edge.runtime import ingraph
from gru_edge.runtime.errors import ModelFileError, UsageError
from gru_edge.runtime.generator import Generator
from gru_edge.runtime.loader import load_model

SETTINGS = [
    {"temperature": 0.0},
    {"temperature": 0.5},
    {"temperature": 1.0},
    {"temperature": 1.2},
    {"temperature": 1.0, "top_k": 5},
    {"temperature": 0.8, "top_p": 0.9},
    {"temperature": 1.2, "top_k": 20, "top_p": 0.7},
]


@pytest.fixture(scope="module")
def gen128(bench_model) -> Generator:
    return Generator.load(bench_model, device="cpu", threads=1)


@pytest.mark.parametrize(
    "settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items())
)
def test_graph_and_host_write_the_same_text_for_many_seeds(gen128, settings):
    for seed in range(12):
        run = gen128.start("The woods ", 1000, seed=seed, engine="graph", **settings)
        graph = "".join(run.pieces)
        assert run.info.engine == "graph"
        run = gen128.start("The woods ", 1000, seed=seed, engine="host", **settings)
        host = "".join(run.pieces)
        assert run.info.engine == "host"
        assert graph == host, (
            seed,
            next(i for i, (a, b) in enumerate(zip(graph, host, strict=False)) if a != b),
        )


@pytest.mark.parametrize("settings", SETTINGS[::2])
def test_batches_match_too_and_rows_differ(gen, settings):
    graph = gen.generate_batch_ids(5, "ab", 300, seed=9, engine="graph", **settings)
    host = gen.generate_batch_ids(5, "ab", 300, seed=9, engine="host", **settings)
    assert np.array_equal(graph, host)
    if settings["temperature"] > 0:
        assert len({row.tobytes() for row in graph}) == 5


def test_auto_takes_the_graph_and_stream_equals_generate(gen):
    text = gen.generate("The ", 500, seed=4)
    assert gen.start("The ", 500, seed=4).info.engine == "graph"
    assert "".join(gen.stream("The ", 500, seed=4)) == text
    assert gen.generate("The ", 500, seed=4, engine="host") == text
    # window mode is the host loop's
    assert gen.start("The ", 5, seed=4, mode="window").info.engine == "host"


@pytest.mark.parametrize("first, most", [(1, 1), (3, 7), (32, 2048)])
def test_chunk_sizes_do_not_change_the_text(gen, monkeypatch, first, most):
    expected = gen.generate("Fire ", 700, seed=2, temperature=0.9, top_k=30)
    monkeypatch.setattr(ingraph, "FIRST_CHUNK", first)
    monkeypatch.setattr(ingraph, "MAX_CHUNK", most)
    assert gen.generate("Fire ", 700, seed=2, temperature=0.9, top_k=30) == expected


def test_a_long_prime_goes_through_the_graph_in_the_host_loops_pieces(gen, monkeypatch):
    import gru_edge.runtime.generation

    monkeypatch.setattr(gru_edge.runtime.generation, "PRIME_CHUNK", 7)
    prime = "Shall I compare thee to a summer's day? " * 3
    for n in (1, 3):
        graph = gen.generate_batch(n, prime, 60, seed=5, engine="graph")
        assert graph == gen.generate_batch(n, prime, 60, seed=5, engine="host")


def test_a_gru_edge_1_client_feeds_ids_and_state_and_gets_the_step(small_model, models_dir):
    # The same weights without the generator: a client of the old contract sees the same step
    # (to rounding: from generator version 4 the file computes it as the cell, generator_cell).
    old = write_model(models_dir / "old.onnx", units=16, seq_len=40, seed=1, generator=False)
    new_s = ort.InferenceSession(str(small_model), providers=["CPUExecutionProvider"])
    old_s = ort.InferenceSession(str(old), providers=["CPUExecutionProvider"])
    assert [i.name for i in new_s.get_inputs()] == ["ids", "state"]
    ids = np.random.default_rng(0).integers(0, 70, (3, 9))
    feeds = {"ids": ids, "state": np.zeros((3, 16), np.float32)}
    for a, b in zip(
        new_s.run(["logits", "state_out"], feeds),
        old_s.run(["logits", "state_out"], feeds),
        strict=False,
    ):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    generated, gen_state, sums = new_s.run(["generated", "gen_state", "logit_sums"], feeds)
    assert generated.shape == (3, 0) and sums.shape == (3, 0)
    assert np.array_equal(gen_state, feeds["state"])  # steps 0: the state back as it came


def test_plain_onnxruntime_generates_with_the_documented_protocol(small_model, gen):
    """The specified protocol, with onnxruntime alone: prime, then chunks continued by the last
    id, gen_state and offset, gives what gru-edge writes."""
    session = ort.InferenceSession(str(small_model), providers=["CPUExecutionProvider"])
    vocab = list(gen.vocab)
    ids = np.array([[vocab.index(c) for c in "The "]], np.int64)
    state = np.zeros((1, 16), np.float32)
    out, offset = [], 0
    for steps in (10, 1, 89):
        generated, state, sums = session.run(
            ["generated", "gen_state", "logit_sums"],
            {
                "ids": ids,
                "state": state,
                "steps": np.array(steps, np.int64),
                "temperature": np.array(0.7, np.float32),
                "seed": np.array(11, np.int64),
                "offset": np.array(offset, np.int64),
            },
        )
        assert np.isfinite(sums).all()
        out += [vocab[i] for i in generated[0]]
        ids, offset = generated[:, -1:], offset + steps
    assert "".join(out) == gen.generate("The ", 100, seed=11, temperature=0.7)


def test_a_gru_edge_1_file_runs_the_host_loop_and_refuses_the_graph(models_dir):
    old = Generator.load(
        write_model(models_dir / "old1.onnx", units=16, seed=1, generator=False), device="cpu"
    )
    assert not old.model.has_generator and old.metadata["format"] == "gru-edge/1"
    assert len(old.generate("The ", 50, seed=1)) == 50
    assert old.start("The ", 50, seed=1).info.engine == "host"
    with pytest.raises(ModelFileError, match="gru-edge/1 file, without the in-graph generator"):
        old.generate("The ", 5, engine="graph")


def test_window_mode_on_the_graph_engine_is_a_usage_error(gen):
    with pytest.raises(UsageError, match="--mode window runs on the host loop"):
        gen.generate("a", 5, mode="window", engine="graph")


def _without_input_default(model: onnx.ModelProto, name: str) -> None:
    # The input stays, its default goes: a client would have to feed it.
    kept = [t for t in model.graph.initializer if t.name != name]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda m: _without_input_default(m, "seed"),
            "its generator is not the one gru-edge writes for its step (input 'seed' has no "
            "default)",
        ),
        (
            lambda m: m.metadata_props[0].__setattr__("value", "gru-edge/1"),
            "says format 'gru-edge/1' but has the in-graph generator",
        ),
        (
            lambda m: m.metadata_props[0].__setattr__("value", "gru-edge/9"),
            "says format 'gru-edge/9'; this gru-edge reads gru-edge/1 and gru-edge/2 files",
        ),
    ],
)
def test_malformed_generators_are_one_line_errors(tmp_path, edit, message):
    model = make_model(units=8, seed=3)
    assert model.metadata_props[0].key == "format"
    edit(model)
    path = write_model(tmp_path / "bad.onnx", model)
    with pytest.raises(ModelFileError) as info:
        load_model(path, device="cpu")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_generator_missing_from_a_gru_edge_2_file_is_refused(tmp_path):
    model = make_model(units=8, seed=3, generator=False)
    model.metadata_props[0].value = "gru-edge/2"
    with pytest.raises(ModelFileError, match="lacks the in-graph generator"):
        load_model(write_model(tmp_path / "nogen.onnx", model), device="cpu")


def test_a_huge_length_streams_in_bounded_chunks(gen, monkeypatch):
    sizes = []
    real = ingraph.GraphEngine._call

    def spy(self, ids, state, steps, offset, feeds):
        sizes.append(steps)
        return real(self, ids, state, steps, offset, feeds)

    monkeypatch.setattr(ingraph.GraphEngine, "_call", spy)
    stream = gen.stream("a", 10**12, seed=1)
    taken = [next(stream) for _ in range(20000)]
    assert len(taken) == 20000 and max(sizes) <= ingraph.CHUNK_VALUES // len(DEFAULT_VOCAB)
    assert sizes[0] == ingraph.FIRST_CHUNK  # the first character after one short call


def test_a_batch_mismatch_fed_to_the_raw_graph_is_refused(small_model):
    session = ort.InferenceSession(str(small_model), providers=["CPUExecutionProvider"])
    feeds = {
        "ids": np.zeros((2, 1), np.int64),
        "state": np.zeros((3, 16), np.float32),
        "steps": np.array(5, np.int64),
    }
    with pytest.raises(Exception, match="(?i)dimension|shape|batch"):
        session.run(["generated"], feeds)


def test_stream_pieces_are_one_call_each_on_the_graph_and_one_character_on_the_host(gen):
    text = gen.generate("The ", 3000, seed=8)
    pieces = list(gen.stream_pieces("The ", 3000, seed=8))
    assert "".join(pieces) == text
    assert gen.start("The ", 3000, seed=8).info.engine == "graph"
    assert len(pieces[0]) == ingraph.FIRST_CHUNK and len(pieces[1]) == 2 * ingraph.FIRST_CHUNK
    host = list(gen.stream_pieces("The ", 300, seed=8, engine="host"))
    assert "".join(host) == text[:300] and {len(p) for p in host} == {1}
