"""A file whose generator is not the one gru-edge writes for its step is refused in one line
(runtime.generator_check), by the loader and so by `sample` (either engine), `info`, `bench`
and `web`; genuine files of every kind load. And whatever a model returns is checked by the
engines (runtime.checked_run), for files that reach them some other way."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from cli_checks import assert_load_refused, assert_one_line_error
from onnx_models import make_model, write_model
from tampered_models import (
    EDITS,
    failing_reshape,
    five_thousand_wide,
    golden_constant,
    ids_shifted,
    one_wide,
    tampered,
)
from typer.testing import CliRunner

from gru_edge.cli import app
from gru_edge.exporter.generator_graph import add_generator
from gru_edge.exporter.mobile import write_ort
from gru_edge.exporter.precision import store_float16
from gru_edge.runtime.errors import ModelFileError
from gru_edge.runtime.generator import Generator
from gru_edge.runtime.generator_build import LATEST
from gru_edge.runtime.generator_check import check_generator
from gru_edge.runtime.ingraph import GraphEngine
from gru_edge.runtime.loader import load_model
from gru_edge.runtime.onnx_graph import read_main_graph
from gru_edge.runtime.ort_graph import read_ort_main_graph, schema_defaults
from gru_edge.runtime.ortstep import OrtStep
from gru_edge.runtime.randomness import GOLDEN
from gru_edge.runtime.sampler import SamplingSettings

runner = CliRunner()
EDITED = "its generator is not the one gru-edge writes for its step"


@pytest.mark.parametrize("name", sorted(EDITS))
def test_every_edit_is_refused_in_one_line_naming_what_differs(tmp_path, name):
    edit, needle = EDITS[name]
    path = write_model(tmp_path / "edited.onnx", tampered(edit))
    assert_load_refused(path, needle)


@pytest.mark.parametrize("name", sorted(n for n in EDITS if "step" not in n and "name" not in n))
def test_the_structural_comparison_used_for_ort_files_refuses_them_too(name):
    # `.ort` files are compared by what they compute (onnxruntime optimised them, renaming
    # values), so a renamed node passes there; every edit of what is computed fails.
    edit, _ = EDITS[name]
    graph = read_main_graph(tampered(edit).SerializeToString())
    with pytest.raises(ModelFileError, match=EDITED):
        check_generator(graph, 70, LATEST, "f.ort", schema_defaults(18))
    genuine = read_main_graph(make_model(units=8, seed=3).SerializeToString())
    check_generator(genuine, 70, LATEST, "f.ort", schema_defaults(18))


@pytest.fixture(scope="module")
def edited_file(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("edited") / "m.onnx", tampered(golden_constant))


@pytest.mark.parametrize(
    "args",
    [
        ["sample", "{m}", "--length", "20"],
        ["sample", "{m}", "--length", "20", "--engine", "host"],
        ["sample", "{m}", "--length", "20", "--engine", "graph"],
        ["info", "{m}"],
        ["info", "{m}", "--json"],
        ["bench", "{m}", "--repeats", "1"],
        ["web", "{m}", "--out", "{out}"],
    ],
)
def test_every_command_refuses_an_edited_generator(edited_file, tmp_path, args):
    out = tmp_path / "site"
    result = runner.invoke(app, [a.format(m=edited_file, out=out) for a in args])
    assert_one_line_error(result, EDITED, "constant 'gen/s/c", "re-export")
    assert result.stdout == "" and not out.exists()


def test_an_unknown_generator_version_is_refused(tmp_path):
    path = write_model(tmp_path / "v9.onnx", make_model(units=8, metadata={"generator": "9"}))
    assert_load_refused(path, "generator version '9'", "upgrade gru-edge")


# --- genuine files of every kind load ---------------------------------------------------------


def _fp16_model():
    model = make_model(units=8, seed=3, generator=False, metadata={"format": "gru-edge/2"})
    store_float16(model)
    add_generator(model, 70, 8)
    return model


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_model(units=8, seed=3),
        _fp16_model,
        lambda: make_model(units=16, seed=3, metadata={"layers": "2", "units": "8"}),
        lambda: make_model(units=8, vocab=list("abcdefg"), seed=3),
    ],
    ids=["fp32", "fp16", "two layers", "vocab 7"],
)
def test_genuine_files_load_and_both_engines_agree(tmp_path, make):
    path = write_model(tmp_path / "m.onnx", make())
    gen = Generator.load(path, device="cpu", threads=1)
    assert gen.model.has_generator
    text = gen.generate("a", 60, seed=3, temperature=0.8, engine="graph")
    assert text == gen.generate("a", 60, seed=3, temperature=0.8, engine="host")


@pytest.mark.parametrize("make", [lambda: make_model(units=8, seed=3), _fp16_model])
def test_ort_files_as_export_writes_them_load_and_an_edited_one_is_refused(tmp_path, make):
    model = make()
    onnx_path = write_model(tmp_path / "m.onnx", model)
    ort_path = tmp_path / "m.ort"
    write_ort(model.SerializeToString(), ort_path, tmp_path / "m.config", lambda _p: None)
    # onnxruntime optimised it (MatMul + Add fused into Gemm, defaults written out) ...
    ops = _ops(read_ort_main_graph(ort_path.read_bytes()))
    assert "Gemm" in ops and "Scan" in ops
    loaded = Generator.load(ort_path, device="cpu", threads=1)
    expected = Generator.load(onnx_path, device="cpu", threads=1)
    args = {"seed": 5, "temperature": 0.7, "top_k": 9}
    assert loaded.generate("ab", 80, **args) == expected.generate("ab", 80, **args)
    # ... and one bit of the random stream's constant, flipped in the flatbuffer, is refused.
    data = ort_path.read_bytes()
    golden = np.array(GOLDEN, dtype="<u8").tobytes()
    assert data.count(golden) == 1
    edited = tmp_path / "edited.ort"
    edited.write_bytes(data.replace(golden, np.array(GOLDEN ^ 1, dtype="<u8").tobytes()))
    assert_load_refused(edited, EDITED, "what output 'generated' is computed from")


def _ops(graph) -> set[str]:
    ops = set()
    for node in graph.nodes:
        ops.add(node.op_type)
        for attr in node.attrs:
            if attr.kind == "graph":
                ops |= _ops(attr.value)
    return ops


def test_a_real_export_loads(exported_model):
    assert load_model(exported_model, device="cpu").has_generator


# --- the engines check what a call returns ---------------------------------------------------


def _engine(model, batch: int = 1) -> GraphEngine:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return GraphEngine(session, batch=batch, vocab_size=70, width=8)


def _generate(engine: GraphEngine, length: int = 200) -> list:
    settings = SamplingSettings(temperature=1.0)
    return list(engine.generate(np.array([3, 4]), length, settings, seed=1))


@pytest.mark.parametrize(
    "model, needle",
    [
        (tampered(one_wide), "generated output is int64 [1, 1], where the contract asks for "),
        (tampered(ids_shifted), "returned id 10"),
        (tampered(lambda m: ids_shifted(m, -1000)), "returned id -"),
        (tampered(failing_reshape), "onnxruntime failed while running the model"),
    ],
    ids=["1 wide", "ids 1000 up", "ids negative", "Reshape fails"],
)
def test_the_graph_engine_refuses_what_the_contract_does_not_allow(model, needle):
    with pytest.raises(ModelFileError) as info:
        _generate(_engine(model))
    message = str(info.value)
    assert needle in message and "\n" not in message and "onnxruntime_src" not in message


def test_the_graph_engine_refuses_a_generated_output_too_wide():
    with pytest.raises(ModelFileError, match=r"generated output is int64 \[1, 160000\]"):
        _generate(_engine(tampered(five_thousand_wide)), 32)


def test_the_host_step_refuses_logits_of_another_width():
    model = make_model(units=8, generator=False, logits_width=71)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    step = OrtStep(session, batch=1, state_width=8, vocab_size=70)
    state = np.zeros((1, 8), dtype=np.float32)
    with pytest.raises(ModelFileError, match=r"logits output is float32 \[1, 71\].*\[1, 70\]"):
        step(np.array([[1, 2]], dtype=np.int64), state)  # a prime: a plain run
    with pytest.raises(ModelFileError, match="onnxruntime failed while running the model"):
        step(step.ids_buffer, step._a)  # a bound one-id step: onnxruntime refuses the buffer


def test_a_step_only_file_gets_the_steps_limits_too(tmp_path):
    from tampered_models import allocating_step

    model = make_model(units=8, seed=3, generator=False)
    allocating_step(model)
    path = write_model(tmp_path / "old.onnx", model)
    assert_load_refused(
        path, "step node 'alloc' is a 'ConstantOfShape', which no gru-edge step holds"
    )
    assert not load_model(write_model(tmp_path / "ok.onnx", generator=False, units=8)).has_generator


def test_the_structural_comparison_digests_each_subgraph_once(monkeypatch):
    # An If's outputs each need its branches' digest; computed per output, nested Ifs cost
    # 3^depth (an .ort check took 480 ms): each subgraph is digested once per side.
    from gru_edge.runtime.generator_structure import Structure

    calls = []
    original = Structure.subgraph
    monkeypatch.setattr(Structure, "subgraph", lambda self, g: calls.append(g) or original(self, g))
    graph = read_main_graph(make_model(units=8, seed=3).SerializeToString())
    check_generator(graph, 70, LATEST, "f.ort", schema_defaults(18))
    assert len(calls) == 2 * _graph_attributes(graph)


def _graph_attributes(graph) -> int:
    return sum(
        1 + _graph_attributes(a.value) for n in graph.nodes for a in n.attrs if a.kind == "graph"
    )
