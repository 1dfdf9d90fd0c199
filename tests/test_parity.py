"""Parity: the exported ONNX file computes what the Keras model computes."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from parity_checks import rollout_diffs

from gru_edge.exporter.validate import softmax
from gru_edge.runtime.generation import generate_ids
from gru_edge.runtime.sampler import SamplingSettings
from gru_edge.trainer import rundir

pytestmark = pytest.mark.train  # needs the [train] extra (TensorFlow)

ATOL = 1e-5


@pytest.fixture(scope="module")
def keras_side(trained_run):
    from gru_edge.trainer.model import build_stepper, step_function
    from gru_edge.trainer.tf_env import load_tf

    _, keras = load_tf()
    model = keras.models.load_model(trained_run / "model.keras", compile=False)
    config = json.loads((trained_run / "config.json").read_text(encoding="utf-8"))
    vocab = rundir.read_vocab(trained_run, "the fixture run is broken")
    return model, step_function(build_stepper(model)), config, vocab


@pytest.fixture(scope="module")
def onnx_step(exported_model):
    session = ort.InferenceSession(str(exported_model), providers=["CPUExecutionProvider"])

    def step(ids, state):
        logits, state_out = session.run(["logits", "state_out"], {"ids": ids, "state": state})
        return logits, state_out

    return step


def test_window_mode_matches_keras(keras_side, onnx_step):
    model, keras_step, config, vocab = keras_side
    units, seq_len = config["config"]["units"], config["config"]["seq_len"]
    ids = np.random.default_rng(5).integers(0, len(vocab), (16, seq_len), dtype=np.int64)
    zero = np.zeros((16, units), np.float32)
    o_logits, o_state = onnx_step(ids, zero)
    reference = model.predict(np.eye(len(vocab), dtype=np.float32)[ids], verbose=0)
    k_logits, k_state = keras_step(ids, zero)
    assert o_logits.shape == (16, len(vocab)) and o_state.shape == (16, units)
    assert np.abs(softmax(o_logits) - reference).max() <= ATOL
    assert np.abs(o_state - k_state).max() <= ATOL


def test_500_step_stateful_rollout_matches_keras(keras_side, onnx_step, tiny_corpus):
    _, keras_step, config, vocab = keras_side
    text = tiny_corpus.read_text(encoding="utf-8")[:500]
    units = config["config"]["units"]
    worst_p, worst_s = rollout_diffs(keras_step, onnx_step, vocab.encode(text), units)
    assert len(text) == 500
    assert worst_p <= ATOL and worst_s <= ATOL


def test_window_from_zero_state_equals_stepping_one_by_one(keras_side, onnx_step):
    _, _, config, vocab = keras_side
    units, seq_len = config["config"]["units"], config["config"]["seq_len"]
    ids = np.random.default_rng(9).integers(0, len(vocab), (3, seq_len), dtype=np.int64)
    w_logits, w_state = onnx_step(ids, np.zeros((3, units), np.float32))
    state = np.zeros((3, units), np.float32)
    for t in range(seq_len):
        logits, state = onnx_step(ids[:, t : t + 1], state)
    assert np.abs(logits - w_logits).max() <= ATOL
    assert np.abs(state - w_state).max() <= ATOL


def _text(step, vocab, units, length, settings, seed):
    ids = generate_ids(
        step,
        [vocab.index("\n")],
        length,
        state_width=units,
        settings=settings,
        seed=seed,
    )
    return vocab.decode(int(row[0]) for row in ids)


def test_greedy_500_characters_identical(keras_side, onnx_step):
    _, keras_step, config, vocab = keras_side
    units = config["config"]["units"]
    greedy = SamplingSettings(temperature=0)
    keras_text = _text(keras_step, vocab, units, 500, greedy, seed=0)
    assert keras_text == _text(onnx_step, vocab, units, 500, greedy, seed=0)
    assert len(keras_text) == 500


def test_1000_sampled_characters_identical_with_same_seed(keras_side, onnx_step):
    _, keras_step, config, vocab = keras_side
    units = config["config"]["units"]
    settings = SamplingSettings(temperature=1.0)
    keras_text = _text(keras_step, vocab, units, 1000, settings, seed=42)
    assert keras_text == _text(onnx_step, vocab, units, 1000, settings, seed=42)
    assert len(set(keras_text)) > 5  # really sampled, not stuck on one character


def test_a_one_layer_graph_is_the_gru_cell_then_the_generator(exported_model):
    # tf2onnx's fused GRU (checked against Keras at export) is replaced by generator version 4's
    # cell: weights prepared once, a Scan of the cell over the ids, the logits' Gemm.
    model = onnx.load(str(exported_model))
    assert all(node.name.startswith("gen/") for node in model.graph.node)
    ops = [node.op_type for node in model.graph.node]
    assert ops[-4:] == ["Scan", "Gemm", "Greater", "If"]  # the step; steps > 0, else nothing
    assert {"Squeeze", "Transpose", "Split", "Gather"} <= set(ops) and "GRU" not in ops


def test_graph_signature_is_the_contract(exported_model, trained_run):
    model = onnx.load(str(exported_model))
    config = json.loads((trained_run / "config.json").read_text(encoding="utf-8"))
    units, vocab_size = config["config"]["units"], config["vocab_size"]

    def sig(values):
        return {
            v.name: (
                v.type.tensor_type.elem_type,
                [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim],
            )
            for v in values
        }

    int64, float32 = onnx.TensorProto.INT64, onnx.TensorProto.FLOAT
    assert sig(model.graph.input) == {
        "ids": (int64, ["batch", "time"]),
        "state": (float32, ["batch", units]),
        **{n: (int64, []) for n in ("steps", "top_k", "seed", "offset")},
        **{n: (float32, []) for n in ("temperature", "top_p")},
        **{f"row_{n}": (int64, ["rows"]) for n in ("top_k", "seed", "offset")},
        **{f"row_{n}": (float32, ["rows"]) for n in ("temperature", "top_p")},
    }
    assert sig(model.graph.output) == {
        "logits": (float32, ["batch", vocab_size]),
        "state_out": (float32, ["batch", units]),
        "generated": (int64, ["batch", "steps"]),
        "gen_state": (float32, ["batch", units]),
        "logit_sums": (float32, ["batch", "steps"]),
    }
    names = ("steps", "temperature", "top_k", "top_p", "seed", "offset")
    defaults = {
        t.name: onnx.numpy_helper.to_array(t).item()
        for t in model.graph.initializer
        if t.name in names
    }
    assert [defaults[n] for n in names] == [
        0,
        1.0,
        0,
        1.0,
        0,
        0,
    ]
    rows = [t for t in model.graph.initializer if t.name.startswith("row_")]
    assert len(rows) == 5 and all(list(t.dims) == [0] for t in rows)  # empty: the scalars
    assert {p.key: p.value for p in model.metadata_props}["generator"] == "4"


@pytest.mark.parametrize(
    "settings",
    [
        {"temperature": 0},
        {"temperature": 0.5},
        {"temperature": 1.0},
        {"temperature": 1.2},
        {"temperature": 1.0, "top_k": 5},
        {"temperature": 0.9, "top_p": 0.8},
    ],
)
def test_the_exported_generator_writes_the_host_loops_text(exported_model, settings):
    from gru_edge.runtime.generator import Generator

    gen = Generator.load(exported_model, device="cpu")
    for seed in range(8):
        graph = gen.generate("The ", 1000, seed=seed, engine="graph", **settings)
        assert graph == gen.generate("The ", 1000, seed=seed, engine="host", **settings)


def test_metadata_round_trips_hard_characters(exported_model, trained_run):
    from run_fixtures import HARD_CHARS

    vocab = json.loads((trained_run / "vocab.json").read_text(encoding="utf-8"))
    props = ort.InferenceSession(str(exported_model)).get_modelmeta().custom_metadata_map
    stored = json.loads(props["vocabulary"])
    assert stored == vocab
    assert set(HARD_CHARS) <= set(stored)
    assert "\U0001f642" in stored  # outside the BMP, still one character
    config = json.loads((trained_run / "config.json").read_text(encoding="utf-8"))
    assert json.loads(props["units"]) == config["config"]["units"]
    assert json.loads(props["seq_len"]) == config["config"]["seq_len"]
    assert props["corpus_sha256"] == config["corpus"]["sha256"]
    assert json.loads(props["best_val_bpc"]) == pytest.approx(config["best_val_bpc"])
    for key in (
        "text_policy",
        "tensorflow_version",
        "tf2onnx_version",
        "opset",
        "created",
        "epochs_trained",
        "gru_edge_version",
    ):
        assert props[key], key
