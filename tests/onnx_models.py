"""Contract-conformant ONNX files for the runtime tests, built with onnx.helper and random weights.

The graph is the shape tf2onnx gives a tf-keras GRU: OneHot(ids) -> Transpose to
[time, batch, vocab] -> GRU (linear_before_reset=1, initial_h = Unsqueeze(state)) ->
Y_h -> Squeeze -> state_out, and MatMul + Add on it -> logits. Tests may use the `onnx`
package; the runtime never does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from gru_edge.exporter.generator_graph import add_generator
from gru_edge.runtime.contract import FORMAT, FORMAT_STEP_ONLY
from gru_edge.runtime.text import TEXT_POLICY

# 70 characters, including the awkward ones: control characters, non-ASCII letters,
# typographic punctuation and a character outside the Basic Multilingual Plane.
HARD_CHARS = ["\n", "\t", "—", "“", "”", "‘", "’", "é", "🙂"]
DEFAULT_VOCAB = sorted(
    set(HARD_CHARS) | set(" abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW.,;:!?'\"-()")
)
assert len(DEFAULT_VOCAB) == 70, len(DEFAULT_VOCAB)

OPSET = 18


def default_metadata(
    vocab: list[str], units: int, seq_len: int | None, generator: bool = True
) -> dict[str, str]:
    """The metadata the exporter writes, with made-up training facts."""
    meta = {
        "format": FORMAT if generator else FORMAT_STEP_ONLY,
        "units": str(units),
        "seq_len": str(seq_len) if seq_len is not None else None,
        "vocab_size": str(len(vocab)),
        "text_policy": TEXT_POLICY,
        "corpus_sha256": "0" * 64,
        "corpus_chars": "12345",
        "epochs_trained": "3",
        "best_epoch": "2",
        "best_val_loss": "1.5",
        "best_val_bpc": "2.16",
        "gru_edge_version": "0.1.0",
        "opset": str(OPSET),
        "created": "2024-01-01T00:00:00Z",
        "vocabulary": _vocab_json(vocab),
    }
    return {k: v for k, v in meta.items() if v is not None}


def make_model(
    *,
    units: int = 128,
    vocab: list[str] | None = None,
    seq_len: int | None = 40,
    seed: int = 0,
    scale: float = 0.5,
    metadata: dict[str, str | None] | None = None,
    ids_name: str = "ids",
    ids_type: int = TensorProto.INT64,
    logits_type: int = TensorProto.FLOAT,
    logits_width: int | None = None,
    static_batch: bool = False,
    edit_weights: Callable[[dict[str, np.ndarray]], None] | None = None,
    generator: bool | None = None,
) -> onnx.ModelProto:
    """A model that follows the contract unless one of the keyword arguments breaks it.

    generator: add gru-edge/2's in-graph generator (exporter.generator_graph); None = unless a
    keyword argument breaks the step's signature (a generator cannot be built on it).

    metadata: keys to override on top of default_metadata; a None value removes the key.
    logits_width: the Dense layer's width (defaults to the vocabulary size).
    edit_weights: changes the weights in place (W, R, B, dense_w, dense_b) before they are
    stored, e.g. to put a NaN in them.
    """
    vocab = list(DEFAULT_VOCAB if vocab is None else vocab)
    v = len(vocab)
    width = v if logits_width is None else logits_width
    rng = np.random.default_rng(seed)

    def weights(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    learned = {
        "W": weights(1, 3 * units, v),
        "R": weights(1, 3 * units, units),
        "B": weights(1, 6 * units) * 0.1,
        "dense_w": weights(units, width),
        "dense_b": weights(width) * 0.1,
    }
    if edit_weights is not None:
        edit_weights(learned)
    inits = [
        numpy_helper.from_array(np.array([v], dtype=np.int64), "depth"),
        numpy_helper.from_array(np.array([0.0, 1.0], dtype=np.float32), "onehot_values"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"),
        *(numpy_helper.from_array(array, name) for name, array in learned.items()),
    ]
    nodes = [
        helper.make_node("OneHot", [ids_name, "depth", "onehot_values"], ["onehot"], axis=-1),
        helper.make_node("Transpose", ["onehot"], ["x"], perm=[1, 0, 2]),
        helper.make_node("Unsqueeze", ["state", "axis0"], ["initial_h"]),
        helper.make_node(
            "GRU",
            ["x", "W", "R", "B", "", "initial_h"],
            ["", "y_h"],
            hidden_size=units,
            linear_before_reset=1,
        ),
        helper.make_node("Squeeze", ["y_h", "axis0"], ["state_out"]),
        helper.make_node("MatMul", ["state_out", "dense_w"], ["dense"]),
        helper.make_node("Add", ["dense", "dense_b"], ["logits_f"]),
    ]
    if ids_type != TensorProto.INT64:  # onnxruntime's OneHot wants int64 ids here
        nodes.insert(0, helper.make_node("Cast", [ids_name], ["ids64"], to=TensorProto.INT64))
        nodes[1].input[0] = "ids64"
    if logits_type == TensorProto.FLOAT:
        nodes[-1].output[0] = "logits"
    else:
        nodes.append(helper.make_node("Cast", ["logits_f"], ["logits"], to=logits_type))
    batch: str | int = 1 if static_batch else "batch"
    graph = helper.make_graph(
        nodes,
        "gru_edge_test",
        inputs=[
            helper.make_tensor_value_info(ids_name, ids_type, [batch, "time"]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [batch, units]),
        ],
        outputs=[
            helper.make_tensor_value_info("logits", logits_type, [batch, width]),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [batch, units]),
        ],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="gru-edge-tests",
        ir_version=8,
    )
    if generator is None:
        generator = (ids_name, ids_type, logits_type, static_batch, logits_width) == (
            "ids",
            TensorProto.INT64,
            TensorProto.FLOAT,
            False,
            None,
        )
    if generator:
        add_generator(model, v, units)
    meta = default_metadata(vocab, units, seq_len, generator)
    meta.update((p.key, p.value) for p in model.metadata_props)  # the generator's version
    for key, value in (metadata or {}).items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return model


def write_model(path: Path, model: onnx.ModelProto | None = None, **kwargs) -> Path:
    """Save ``model`` (or ``make_model(**kwargs)``) as one self-contained file."""
    path = Path(path)
    path.write_bytes((model or make_model(**kwargs)).SerializeToString())
    return path


def write_external_data_model(path: Path, **kwargs) -> Path:
    """A model whose weights live in a side file next to it, as ONNX external data allows."""
    path = Path(path)
    model = make_model(**kwargs)
    onnx.external_data_helper.convert_model_to_external_data(
        model, all_tensors_to_one_file=True, location=f"{path.name}.data", size_threshold=0
    )
    onnx.save_model(model, str(path))
    return path


def numpy_step(
    model: onnx.ModelProto, ids: np.ndarray, state: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A plain-numpy reference for the test graph: Keras' GRU with reset_after=True."""
    w = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    units = w["R"].shape[2]
    wz, wr, wh = np.split(w["W"][0].astype(np.float64), 3)
    rz, rr, rh = np.split(w["R"][0].astype(np.float64), 3)
    b = w["B"][0].astype(np.float64)
    wbz, wbr, wbh, rbz, rbr, rbh = np.split(b, 6)
    h = state.astype(np.float64)
    vocab = w["W"].shape[2]
    for t in range(ids.shape[1]):
        x = np.eye(vocab)[ids[:, t]]
        z = _sigmoid(x @ wz.T + h @ rz.T + wbz + rbz)
        r = _sigmoid(x @ wr.T + h @ rr.T + wbr + rbr)
        hh = np.tanh(x @ wh.T + r * (h @ rh.T + rbh) + wbh)
        h = (1 - z) * hh + z * h
    assert h.shape[1] == units
    logits = h @ w["dense_w"].astype(np.float64) + w["dense_b"]
    return logits, h


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _vocab_json(vocab: list[str]) -> str:
    # Not Vocabulary(...).to_json(): these are meant to be invalid sometimes.
    return json.dumps(list(vocab), ensure_ascii=True)


# Files that break the contract, by what is wrong: make_model keyword arguments, and a fragment
# of the loader's one-line refusal.
BROKEN: dict[str, tuple[dict, str]] = {
    "wrong input name": (
        {"ids_name": "tokens"},
        "the gru-edge contract is inputs ['ids', 'state']",
    ),
    "ids not int64": ({"ids_type": TensorProto.INT32}, "'ids' is int32, the contract says int64"),
    "logits not float32": (
        {"logits_type": TensorProto.DOUBLE},
        "'logits' is float64, the contract says float32",
    ),
    "fixed batch": ({"static_batch": True}, "fixed batch size 1"),
    "no vocabulary": ({"metadata": {"vocabulary": None}}, "has no 'vocabulary' metadata"),
    "vocabulary not JSON": ({"metadata": {"vocabulary": '["a", '}}, "is not JSON"),
    "vocabulary not a list": (
        {"metadata": {"vocabulary": '{"a": 1}'}},
        "must be a non-empty JSON array",
    ),
    "empty vocabulary": ({"metadata": {"vocabulary": "[]"}}, "must be a non-empty JSON array"),
    "two-character entry": (
        {"metadata": {"vocabulary": _vocab_json(["ab", *DEFAULT_VOCAB[1:]])}},
        "vocabulary entry 0 is 'ab', not one character",
    ),
    "duplicate characters": (
        {"metadata": {"vocabulary": _vocab_json([*DEFAULT_VOCAB[:-1], "a"])}},
        "vocabulary repeats ['a']",
    ),
    "vocabulary narrower than logits": (
        {"metadata": {"vocabulary": _vocab_json(DEFAULT_VOCAB[:-1]), "vocab_size": None}},
        "the vocabulary has 69 characters but logits are 70 wide",
    ),
    "units metadata disagrees": ({"metadata": {"units": "64"}}, "'units' metadata is '64'"),
    "state narrower than layers x units": (
        {"metadata": {"layers": "2"}},
        "'state' is 16 wide but the metadata says 2 layers of 16 units",
    ),
    "state width not a multiple of layers": (
        {"metadata": {"layers": "3", "units": None}},
        "'state' is 16 wide but the metadata says 3 layers;",
    ),
    "layers metadata not a number": (
        {"metadata": {"layers": "two"}},
        "'layers' metadata is 'two', expected a positive integer",
    ),
    "vocab_size metadata disagrees": (
        {"metadata": {"vocab_size": "71"}},
        "'vocab_size' metadata is '71', expected 70",
    ),
    "seq_len not a number": (
        {"metadata": {"seq_len": "forty"}},
        "'seq_len' metadata is 'forty', expected a positive integer",
    ),
    "seq_len zero": ({"metadata": {"seq_len": "0"}}, "'seq_len' metadata is '0'"),
}
