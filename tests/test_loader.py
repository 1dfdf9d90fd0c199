"""Loading files from elsewhere: every refusal, the wire-format reader, provider resolution."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx_models import BROKEN, make_model, write_external_data_model, write_model

from gru_edge.runtime.contract import TensorSpec, check_contract
from gru_edge.runtime.errors import DeviceError, ModelFileError, UsageError
from gru_edge.runtime.generator import Generator
from gru_edge.runtime.loader import MAX_THREADS, check_threads, load_model
from gru_edge.runtime.onnx_proto import ProtoError, inspect_model
from gru_edge.runtime.providers import CPU, CUDA, check_session_providers, resolve_providers


def _refused(path, fragment, **kwargs):
    with pytest.raises(ModelFileError) as info:
        load_model(path, device="cpu", **kwargs)
    message = str(info.value)
    assert fragment in message, message
    assert "\n" not in message
    return message


def test_a_contract_file_loads_with_everything_the_runtime_needs(small_model):
    model = load_model(small_model, device="cpu", threads=1)
    assert (model.units, model.seq_len, len(model.vocab)) == (16, 40, 70)
    assert model.providers == [CPU] and model.provider == CPU
    assert (model.opset, model.ir_version, model.producer) == (18, 8, "gru-edge-tests")
    assert model.file_size == small_model.stat().st_size
    assert model.metadata["format"] == "gru-edge/2" and model.warnings == ()
    assert [s.describe() for s in model.inputs] == [
        "ids int64 [batch, time]",
        "state float32 [batch, 16]",
        "steps int64 []",
        "temperature float32 []",
        "top_k int64 []",
        "top_p float32 []",
        "seed int64 []",
        "offset int64 []",
        "row_temperature float32 [rows]",
        "row_top_k int64 [rows]",
        "row_top_p float32 [rows]",
        "row_seed int64 [rows]",
        "row_offset int64 [rows]",
    ]
    assert [s.describe() for s in model.outputs] == [
        "logits float32 [batch, 70]",
        "state_out float32 [batch, 16]",
        "generated int64 [batch, steps]",
        "gen_state float32 [batch, 16]",
        "logit_sums float32 [batch, steps]",
    ]
    assert model.has_generator


def test_a_stacked_file_carries_every_layer_in_one_state(tmp_path):
    # 2 layers of 8 units: the one state input is 16 wide, layer 0 first (runtime/contract.py).
    path = write_model(tmp_path / "two.onnx", units=16, metadata={"layers": "2", "units": "8"})
    model = load_model(path, device="cpu")
    assert (model.layers, model.units, model.state_width) == (2, 8, 16)
    generator = Generator(model)
    assert generator.state_width == 16
    assert generator.generate("a", 30, seed=4) == generator.generate("a", 30, seed=4)


def test_seq_len_may_be_absent(no_seq_len_model):
    assert load_model(no_seq_len_model, device="cpu").seq_len is None


@pytest.mark.parametrize("case", list(BROKEN))
def test_contract_breaches_are_refused(tmp_path, case):
    kwargs, fragment = BROKEN[case]
    path = write_model(tmp_path / "broken.onnx", units=16, **kwargs)
    message = _refused(path, fragment)
    assert str(path) in message and "re-export" in message


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda d: d / "missing.onnx", "model file not found"),
        (lambda d: d, "is a directory"),
        (lambda d: _write(d / "empty.onnx", b""), "is empty"),
        (lambda d: _write(d / "text.onnx", b"this is not a model"), "is not an ONNX model"),
        (lambda d: _write(d / "cut.onnx", _small_bytes()[:5000]), "truncated or corrupt"),
        (lambda d: _write(d / "nograph.onnx", b"\x08\x07"), "it holds no graph"),
        (lambda d: _fifo(d / "pipe.onnx"), "not a regular file"),
    ],
)
def test_unreadable_files_are_refused(tmp_path, make, fragment):
    _refused(make(tmp_path), fragment)


def test_files_over_the_size_cap_are_refused(small_model):
    _refused(small_model, "over the 1,000-byte limit", max_bytes=1000)


def test_metadata_over_the_cap_is_refused(small_model):
    _refused(small_model, "bytes of metadata, over the 100-byte limit", max_metadata_bytes=100)


def test_external_data_is_refused_even_when_the_data_file_is_at_hand(tmp_path, monkeypatch):
    path = write_external_data_model(tmp_path / "external.onnx", units=16)
    assert (tmp_path / "external.onnx.data").exists()
    # onnxruntime resolves external data from the working directory even for a model given
    # as bytes: with the data file there it would load it.
    monkeypatch.chdir(tmp_path)
    message = _refused(path, "stores tensors as external data")
    assert "'W'" in message and "more)" in message and "self-contained" in message


@pytest.mark.parametrize("threads", [0, -1, 257, 99999, True, 2.5, "4"])
def test_threads_must_be_in_range(small_model, threads):
    with pytest.raises(UsageError) as info:
        load_model(small_model, device="cpu", threads=threads)
    assert f"--threads must be 1 to 256, got {threads!r}" in str(info.value)


@pytest.mark.parametrize("threads", [None, 1, MAX_THREADS])
def test_threads_in_range_are_accepted(threads):
    check_threads(threads)  # no session: 256 threads would really start
    assert MAX_THREADS == 256


# --- check_contract on hand-made signatures ---------------------------------------------------


def _specs(**changes):
    specs = {
        "ids": TensorSpec("ids", "tensor(int64)", ("batch", "time")),
        "state": TensorSpec("state", "tensor(float)", ("batch", 16)),
        "logits": TensorSpec("logits", "tensor(float)", ("batch", 70)),
        "state_out": TensorSpec("state_out", "tensor(float)", ("batch", 16)),
    }
    for name, shape in changes.items():
        specs[name] = TensorSpec(name, specs[name].type, shape)
    return [specs["ids"], specs["state"]], [specs["logits"], specs["state_out"]]


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({}, None),
        ({"ids": (None, None)}, None),  # unnamed dynamic dims are fine
        ({"state_out": ("batch", 32)}, "'state' is 16 wide but 'state_out' is 32"),
        ({"state": ("batch", "units")}, "'state' has shape [batch, units]"),
        ({"logits": ("batch", None)}, "'logits' has shape [batch, ?]"),
        ({"ids": ("batch",)}, "'ids' has shape [batch], the contract says rank 2"),
        ({"logits": None}, "'logits' has shape [?], the contract says rank 2"),
        ({"ids": ("batch", 100)}, "'ids' has a fixed time size 100"),
        ({"state": (4, 16)}, "'state' has a fixed batch size 4"),
    ],
)
def test_check_contract(changes, fragment):
    inputs, outputs = _specs(**changes)
    if fragment is None:
        assert check_contract(inputs, outputs, "m.onnx") == (16, 70, False)
    else:
        with pytest.raises(ModelFileError) as info:
            check_contract(inputs, outputs, "m.onnx")
        assert fragment in str(info.value)


def test_check_contract_wants_exactly_the_contract_names():
    inputs, outputs = _specs()
    extra = TensorSpec("extra", "tensor(float)", ("batch", 3))
    for ins, outs in ((inputs[:1], outputs), (inputs, [*outputs, extra])):
        with pytest.raises(ModelFileError, match="the gru-edge contract is inputs"):
            check_contract(ins, outs, "m.onnx")


# --- the wire-format reader --------------------------------------------------------------------


def test_inspect_model_reads_opset_ir_and_producer():
    facts = inspect_model(make_model(units=8).SerializeToString())
    assert (facts.opset, facts.ir_version, facts.producer) == (18, 8, "gru-edge-tests")
    assert facts.external_tensors == []


def test_inspect_model_finds_external_tensors_inside_subgraphs():
    tensor = helper.make_tensor("hidden", TensorProto.FLOAT, [1], [0.0])
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.float_data[:]
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../secret.bin"
    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=tensor)],
        "branch",
        [],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1])],
    )
    node = helper.make_node("If", ["cond"], ["out"], then_branch=branch, else_branch=branch)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    assert inspect_model(model.SerializeToString()).external_tensors == ["hidden", "hidden"]


@pytest.mark.parametrize(
    "data",
    [b"\x0f", b"\x08", b"\x3a\x05ab", b"\x0b\x00", b"\xff" * 11],
    ids=["wire-7", "cut-varint", "cut-field", "group", "long-varint"],
)
def test_inspect_model_rejects_broken_wire_format(data):
    with pytest.raises(ProtoError):
        inspect_model(data)


# --- providers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "device, available, expected",
    [
        ("cpu", [CPU], [CPU]),
        ("cpu", [CUDA, CPU], [CPU]),
        ("auto", [CPU], [CPU]),
        ("auto", ["AzureExecutionProvider", CPU], [CPU]),
        ("auto", [CUDA, CPU], [CUDA, CPU]),
        ("cuda", [CUDA, CPU], [CUDA, CPU]),
        ("cuda", [CPU], DeviceError("offers only CPUExecutionProvider")),
        ("cuda", [], DeviceError("offers only none")),
        ("gpu", [CPU], UsageError("device must be one of auto, cpu, cuda")),
    ],
)
def test_resolve_providers(device, available, expected):
    if isinstance(expected, Exception):
        with pytest.raises(type(expected)) as info:
            resolve_providers(device, available)
        assert str(expected) in str(info.value)
        if isinstance(expected, DeviceError):
            assert "pip install 'gru-edge[gpu]'" in str(info.value)
            assert "cuDNN" in str(info.value)
    else:
        assert resolve_providers(device, available) == expected


@pytest.mark.parametrize(
    "device, requested, actual, outcome",
    [
        ("cpu", [CPU], [CPU], None),
        ("auto", [CUDA, CPU], [CUDA, CPU], None),
        ("cuda", [CUDA, CPU], [CUDA, CPU], None),
        ("auto", [CUDA, CPU], [CPU], "warning"),
        ("cuda", [CUDA, CPU], [CPU], "error"),
    ],
)
def test_check_session_providers(device, requested, actual, outcome):
    if outcome == "error":
        with pytest.raises(DeviceError, match="could not start it"):
            check_session_providers(device, requested, actual)
    elif outcome == "warning":
        assert "using the CPU" in check_session_providers(device, requested, actual)
    else:
        assert check_session_providers(device, requested, actual) is None


@pytest.mark.filterwarnings("ignore:Specified provider:UserWarning")
def test_a_cuda_fallback_is_caught_after_the_session_starts(small_model):
    # Pretend this onnxruntime offers CUDA: the session silently falls back to the CPU.
    offered = [CUDA, CPU]
    with pytest.raises(DeviceError, match="could not start it"):
        load_model(small_model, device="cuda", available=offered)
    model = load_model(small_model, device="auto", available=offered)
    assert model.provider == CPU and "using the CPU" in model.warnings[0]


def test_cuda_on_a_cpu_only_install_names_what_to_install(small_model):
    import onnxruntime as ort

    if CUDA in ort.get_available_providers():
        pytest.skip("this onnxruntime offers CUDA")
    with pytest.raises(DeviceError, match=r"pip install 'gru-edge\[gpu\]'"):
        load_model(small_model, device="cuda")


# --- helpers -------------------------------------------------------------------------------------


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _small_bytes() -> bytes:
    return make_model(units=16).SerializeToString()


def _fifo(path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(path)
    return path


def test_the_test_model_is_valid_onnx():
    onnx.checker.check_model(make_model(units=4), full_check=True)
    assert np.asarray(make_model(units=4).graph.input[0].type.tensor_type.elem_type) == 7


@pytest.mark.parametrize(
    "device, error, outcome",
    [
        ("auto", "CUDA failure 100: no CUDA-capable device is detected", "warning"),
        ("cuda", "CUDA failure 100: no CUDA-capable device is detected", DeviceError),
        ("cuda", "Load model failed: bad graph", ModelFileError),
    ],
)
def test_a_session_that_fails_on_cuda(small_model, monkeypatch, capsys, device, error, outcome):
    import onnxruntime as ort

    import gru_edge.runtime.loader

    real = ort.InferenceSession

    def fake(data, sess_options=None, providers=None, **kwargs):
        assert kwargs.get("enable_fallback") == 0  # onnxruntime's fallback prints to stdout
        if CUDA in providers:
            raise RuntimeError(error)
        return real(data, sess_options=sess_options, providers=providers, **kwargs)

    monkeypatch.setattr(gru_edge.runtime.loader.ort, "InferenceSession", fake)
    if outcome == "warning":
        model = load_model(small_model, device=device, available=[CUDA, CPU])
        assert model.provider == CPU and "using the CPU" in model.warnings[0]
    else:
        with pytest.raises(outcome, match=error.split(":")[0]):
            load_model(small_model, device=device, available=[CUDA, CPU])
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(("threads", "expected"), [(None, 1), (1, 1), (2, 2)])
def test_threads_default_to_one_intra_op_thread(threads, expected):
    from gru_edge.runtime.loader import DEFAULT_THREADS, session_options

    assert DEFAULT_THREADS == 1
    assert session_options(threads).intra_op_num_threads == expected
