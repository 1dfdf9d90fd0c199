"""Generator version 4 (runtime.generator_cell): a one-layer file's step becomes a GRU cell of
plain nodes (a Scan of it over the ids), the generator's Scan body the same cell, and no fused
GRU is left. The step computes what tf2onnx's did, and a window ends in the same bits as its
ids stepped one at a time."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from onnx_models import make_model

from gru_edge.exporter.generator_graph import add_generator, graphs
from gru_edge.exporter.precision import store_float16
from gru_edge.runtime.generator_build import VERSION_3, VERSION_4
from gru_edge.runtime.generator_pick import PREFIX

STEP_SCAN = PREFIX + "step_Scan"


def _built(version: str, fp16: bool = False, vocab: list[str] | None = None, identity=False):
    model = make_model(generator=False, seed=3, units=8, vocab=vocab)
    if fp16:
        store_float16(model)
    if identity:  # a node find_cell does not know
        model.graph.node.insert(2, helper.make_node("Identity", ["x"], ["x_copy"]))
    add_generator(model, 70 if vocab is None else len(vocab), 8, version)
    return model


def _scan_ops(model) -> set[str]:
    scans = [n for g in graphs(model.graph) for n in g.node if n.op_type == "Scan"]
    return {n.op_type for scan in scans for g in graphs(scan.attribute[0].g) for n in g.node}


@pytest.mark.parametrize(
    "kwargs", [{}, {"fp16": True}, {"vocab": list("abcdefg")}], ids=["fp32", "fp16", "vocab 7"]
)
def test_a_one_layer_step_gets_the_cell_and_its_scan_body_no_fused_gru(kwargs):
    model = _built(VERSION_4, **kwargs)
    assert STEP_SCAN in [n.name for n in model.graph.node]
    everywhere = {n.op_type for g in graphs(model.graph) for n in g.node}
    assert not {"GRU", "OneHot", "MatMul"} & everywhere  # tf2onnx's step is gone ...
    read = {name for g in graphs(model.graph) for n in g.node for name in n.input}
    assert all(t.name in read for t in model.graph.initializer)  # ... with what only it read
    assert "Gemm" in _scan_ops(model)
    assert "GRU" in _scan_ops(_built(VERSION_3, **kwargs))


def test_a_step_the_cell_does_not_know_keeps_version_3s_body():
    # (a real two-layer export keeps it too: tests/test_stacked.py)
    model = _built(VERSION_4, identity=True)
    assert STEP_SCAN not in [n.name for n in model.graph.node]
    assert "GRU" in _scan_ops(model)


def _step(model, ids: np.ndarray, state: np.ndarray):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["logits", "state_out"], {"ids": ids, "state": state})


def test_the_step_computes_what_tf2onnxs_step_computes():
    old, new = _built(VERSION_3), _built(VERSION_4)
    rng = np.random.default_rng(0)
    state = rng.normal(size=(3, 8)).astype(np.float32)
    for window in (rng.integers(0, 60, size=(3, 9)), rng.integers(0, 60, size=(3, 1))):
        for a, b in zip(_step(old, window, state), _step(new, window, state), strict=True):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)  # another order of operations


@pytest.mark.parametrize("batch", [1, 3])
def test_a_window_ends_in_the_bits_of_its_ids_stepped_one_at_a_time(batch):
    model = _built(VERSION_4)
    rng = np.random.default_rng(1)
    window = rng.integers(0, 60, size=(batch, 12))
    start = rng.normal(size=(batch, 8)).astype(np.float32)
    whole = _step(model, window, start)
    state = start
    for t in range(window.shape[1]):
        logits, state = _step(model, window[:, t : t + 1], state)
    np.testing.assert_array_equal(whole[0], logits)
    np.testing.assert_array_equal(whole[1], state)


def _gathering_identity_rows(model) -> None:
    """The step's OneHot made a Gather of identity rows, as tf2onnx writes the trainer's step."""
    one_hot = next(n for n in model.graph.node if n.op_type == "OneHot")
    vocab = int(numpy_helper.to_array(_init(model, "depth"))[0])
    for name in ("depth", "onehot_values"):
        model.graph.initializer.remove(_init(model, name))
    model.graph.initializer.append(numpy_helper.from_array(np.eye(vocab, dtype=np.float32), "eye"))
    one_hot.CopyFrom(helper.make_node("Gather", ["eye", "ids"], list(one_hot.output), axis=0))


def _init(model, name: str):
    return next(t for t in model.graph.initializer if t.name == name)


def test_a_step_gathering_identity_rows_gets_the_same_cell_and_drops_the_table():
    model = make_model(generator=False, seed=3, units=8)
    _gathering_identity_rows(model)
    add_generator(model, 70, 8, VERSION_4)
    assert STEP_SCAN in [n.name for n in model.graph.node]
    assert "eye" not in {t.name for t in model.graph.initializer}
    ids = np.random.default_rng(2).integers(0, 70, size=(2, 5))
    state = np.zeros((2, 8), np.float32)
    for a, b in zip(_step(model, ids, state), _step(_built(VERSION_4), ids, state), strict=True):
        np.testing.assert_array_equal(a, b)  # the same table: W^T, whichever way it encoded


def test_a_trained_export_gathering_projected_rows_gets_the_cell(exported_model):
    # The session's tiny model has more characters than 3 x units, so its step gathers rows of
    # the input kernel into a GRU whose W is the identity (trainer.model.projects_input).
    model = onnx.load(str(exported_model))
    ops = {n.op_type for g in graphs(model.graph) for n in g.node}
    assert STEP_SCAN in [n.name for n in model.graph.node] and "GRU" not in ops
