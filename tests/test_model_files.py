"""Model files from elsewhere: external data in every place a tensor can live, metadata that
onnxruntime's map would hide or choke on, vocabularies that are not text, opsets and IR
versions outside onnxruntime's range, and onnxruntime's own log lines."""

from __future__ import annotations

import json
import re

import onnxruntime as ort
import pytest
from cli_checks import assert_load_refused
from hostile_models import EXTERNAL_FILE, PLACES, with_raw_metadata, write_external_in
from onnx import helper
from onnx_models import DEFAULT_VOCAB, make_model, write_model

from gru_edge.runtime import loader
from gru_edge.runtime.errors import onnxruntime_message
from gru_edge.runtime.loader import load_model
from gru_edge.runtime.onnx_proto import inspect_model


@pytest.mark.parametrize("where", list(PLACES))
def test_external_data_is_refused_wherever_the_tensor_lives(tmp_path, monkeypatch, where):
    path, name = write_external_in(tmp_path, where, units=8)
    # The data is right there in the working directory, where onnxruntime would look.
    monkeypatch.chdir(tmp_path)
    assert (tmp_path / EXTERNAL_FILE).stat().st_size == 70 * 4
    assert name in inspect_model(path.read_bytes()).external_tensors
    assert_load_refused(path, "stores tensors as external data", name)


def test_external_tensor_names_are_quoted_and_cut(tmp_path, monkeypatch):
    path, _ = write_external_in(tmp_path, "graph initializer", units=8)
    # Same length, so the protobuf stays well-formed.
    data = path.read_bytes().replace(b"graph_initializer", b"graph\ninitialize\x1b")
    path.write_bytes(data)
    monkeypatch.chdir(tmp_path)
    assert_load_refused(path, "external data ('graph\\ninitialize\\x1b')")


# --- metadata, read from the protobuf ----------------------------------------------------------


def _with_metadata(tmp_path, key: bytes, value: bytes):
    path = tmp_path / "meta.onnx"
    path.write_bytes(with_raw_metadata(make_model(units=8).SerializeToString(), key, value))
    return path


@pytest.mark.parametrize(
    "key, value, fragments",
    [
        (b"units", b"8", ["metadata key 'units' more than once"]),
        (b"vocabulary", b'["a"]', ["metadata key 'vocabulary' more than once"]),
        (b"bad\xffkey", b"x", ["a metadata key is not valid UTF-8", "byte 0xff at offset 3"]),
        (b"note", b"caf\xe9", ["value of metadata key 'note' is not valid UTF-8", "0xe9"]),
        (b"note", b"\xed\xa0\x80", ["value of metadata key 'note' is not valid UTF-8"]),
    ],
    ids=["repeated units", "repeated vocabulary", "key not UTF-8", "value not UTF-8", "surrogate"],
)
def test_metadata_onnxruntime_would_hide_or_choke_on_is_refused(tmp_path, key, value, fragments):
    assert_load_refused(_with_metadata(tmp_path, key, value), *fragments, "re-export")


def test_metadata_is_read_in_file_order_as_onnxruntime_shows_it(small_model):
    model = load_model(small_model, device="cpu")
    session_map = dict(model.session.get_modelmeta().custom_metadata_map)
    assert model.metadata == session_map and list(model.metadata)[0] == "format"


# --- vocabulary entries ------------------------------------------------------------------------


def _vocab_json(entry: str) -> str:
    return json.dumps([entry, *DEFAULT_VOCAB[1:]], ensure_ascii=True)


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("[" * 100_000 + "]" * 100_000, "nests JSON arrays or objects more than 32 deep"),
        ('[{"a": ' * 5000 + "1" + "}]" * 5000, "nests JSON arrays or objects more than 32 deep"),
        (_vocab_json("\ud800"), "entry 0 is '\\ud800', a lone surrogate"),
        (_vocab_json("\udfff"), "entry 0 is '\\udfff', a lone surrogate"),
        (_vocab_json("\x1b"), "entry 0 is '\\x1b', a control character"),
        (_vocab_json("\x00"), "entry 0 is '\\x00', a control character"),
        (_vocab_json("\r"), "entry 0 is '\\r', a control character"),
        (_vocab_json("\x9b"), "entry 0 is '\\x9b', a control character"),
        (_vocab_json("x" * 10_000), "entry 0 is 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..., not one"),
    ],
    ids=[
        "deep arrays",
        "deep objects",
        "surrogate",
        "low surrogate",
        "escape",
        "NUL",
        "CR",
        "C1 CSI",
        "long entry",
    ],
)
def test_vocabularies_that_are_not_text_are_refused(tmp_path, raw, fragment):
    path = write_model(tmp_path / "v.onnx", units=8, metadata={"vocabulary": raw})
    message = assert_load_refused(path, fragment)
    assert len(message) < 400


@pytest.mark.parametrize("char", ["\xa0", "\u200d", "\xad", "\ue000", "\u2028", "\U0010fffd"])
def test_text_characters_beyond_printable_ones_are_kept(tmp_path, char):
    path = write_model(tmp_path / "ok.onnx", units=8, metadata={"vocabulary": _vocab_json(char)})
    assert load_model(path, device="cpu").vocab[0] == char


# --- opset and IR version ----------------------------------------------------------------------


def _model_with(tmp_path, *, opset=None, ir=None, drop_opset=False):
    model = make_model(units=8)
    if opset is not None:
        model.opset_import[0].version = opset
    if drop_opset:
        del model.opset_import[:]
    if ir is not None:
        model.ir_version = ir
    return write_model(tmp_path / "versions.onnx", model)


_OPSET_RANGE = re.compile(r"this onnxruntime \(([\d.]+)\) runs opsets 7 to (\d+); ")


@pytest.mark.parametrize(
    "kwargs, uses",
    [
        ({"opset": 99}, "uses ai.onnx opset 99"),
        ({"opset": 1_000_000}, "uses ai.onnx opset 1000000"),
        ({"opset": 6}, "uses ai.onnx opset 6"),
        ({"opset": 1}, "uses ai.onnx opset 1"),
        ({"drop_opset": True}, "imports no ai.onnx opset"),
    ],
)
def test_opsets_onnxruntime_cannot_run_are_refused_with_the_whole_range(tmp_path, kwargs, uses):
    message = assert_load_refused(
        _model_with(tmp_path, **kwargs), uses, "--opset N, with N in that range"
    )
    version, newest = _OPSET_RANGE.search(message).groups()
    assert version == ort.__version__
    # onnxruntime's own refusal of opset 99 names the same newest opset as gru-edge's range.
    try:
        ort.InferenceSession(_model_with(tmp_path, opset=99).read_bytes())
    except Exception as exc:
        assert f"till opset {newest}" in str(exc)
    else:
        pytest.fail("onnxruntime ran opset 99")


def test_ir_versions_onnxruntime_cannot_read_are_refused_with_the_range(tmp_path):
    message = assert_load_refused(_model_with(tmp_path, ir=99), "has ONNX IR version 99")
    assert re.search(r"reads IR versions up to \d+; re-export it", message), message
    assert "..." not in message


def test_onnxruntime_messages_lose_their_cpp_locations():
    messages = {
        "[ONNXRuntimeError] : 1 : FAIL : /onnxruntime_src/onnxruntime/core/graph/model.cc:256 "
        "onnxruntime::Model::Model(onnx::ModelProto&&, const onnxruntime::PathString&, "
        "const onnxruntime::logging::Logger&) Unsupported model IR version: 99, max supported "
        "IR version: 14\n": "Unsupported model IR version: 99, max supported IR version: 14",
        "[ONNXRuntimeError] : 1 : FAIL : Exception during initialization: /ort/rnn_helpers.h:45 "
        "onnxruntime::rnn::detail::Direction onnxruntime::rnn::detail::MakeDirection(const "
        "std::string&) Invalid 'direction' argument of 'sideways'": "Exception during "
        "initialization: Invalid 'direction' argument of 'sideways'",
        # A location without a signature keeps its words, parentheses and all.
        "[ONNXRuntimeError] : 1 : FAIL : tensorprotoutils.cc:1730 Validate Initializer 'b': "
        "raw_data size (12 bytes) does not match": "Validate Initializer 'b': raw_data size "
        "(12 bytes) does not match",
        "Load model failed:\n bad graph": "Load model failed: bad graph",
    }
    for raw, expected in messages.items():
        assert onnxruntime_message(raw) == expected
    assert len(onnxruntime_message("x" * 1000)) == 300


# --- onnxruntime's own log lines -----------------------------------------------------------------


@pytest.fixture
def loud_onnxruntime():
    """onnxruntime's default logger at INFO, as if gru-edge had not silenced it yet; the
    silencing is undone so that load_model does it again, and redone afterwards."""
    loader.quiet_onnxruntime.cache_clear()
    ort.set_default_logger_severity(1)
    yield
    loader.quiet_onnxruntime.cache_clear()
    loader.quiet_onnxruntime()


def test_a_load_prints_nothing_of_onnxruntimes_logs(small_model, capfd, loud_onnxruntime):
    # At INFO, creating a session logs its allocators through the default logger.
    load_model(small_model, device="cpu")
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_a_session_that_fails_to_initialize_prints_only_the_error(
    tmp_path, capfd, loud_onnxruntime
):
    # onnxruntime logs this failure at ERROR level before raising it. A step-only file: with
    # the generator, the edited step no longer matches the generator's copies of it, which the
    # loader refuses before onnxruntime sees the file.
    model = make_model(units=8, generator=False)
    gru = next(n for n in model.graph.node if n.op_type == "GRU")
    gru.attribute.append(helper.make_attribute("direction", "sideways"))
    path = write_model(tmp_path / "sideways.onnx", model)
    message = assert_load_refused(path, "Invalid 'direction' argument of 'sideways'")
    assert "onnxruntime_src" not in message
    assert capfd.readouterr().err == ""
