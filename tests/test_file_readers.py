"""The file readers stay linear in the file: subgraphs an ORT-format file shares are visited once,
metadata is refused by its running size and count, and a corrupt ORT-format file says what is
wrong with it."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from hostile_models import (
    shared_subgraph_ort,
    shared_vector_ort,
    with_raw_metadata,
    write_ort_twin,
)
from onnx_models import make_model

from gru_edge.runtime.errors import ModelFileError
from gru_edge.runtime.loader import load_model
from gru_edge.runtime.onnx_proto import (
    MAX_METADATA_ENTRIES,
    MetadataLimitError,
    MetadataLimits,
    inspect_model,
)
from gru_edge.runtime.ort_format import inspect_ort_model

_EMPTY_ENTRY = b"\x72\x00"  # ModelProto field 14 (metadata_props), length 0


@pytest.fixture(scope="module")
def ort_model(tmp_path_factory) -> Path:
    """The small contract model converted to the ORT format by onnxruntime itself."""
    path = tmp_path_factory.mktemp("ort") / "small.ort"
    return write_ort_twin(make_model(units=8).SerializeToString(), path)


def _refusal(path: Path, **kwargs) -> str:
    with pytest.raises(ModelFileError) as caught:
        load_model(path, device="cpu", **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_shared_subgraphs_are_walked_once():
    # 2**60 paths: the reader before this fix never returned
    data = shared_subgraph_ort(60)
    assert len(data) < 8000
    facts = inspect_ort_model(data)
    assert facts.has_graph and facts.opset == 18


def test_a_vector_shared_by_many_graphs_is_refused_past_the_files_size(tmp_path):
    data = shared_vector_ort(300, 300)  # 90,000 node references in a few KB
    assert len(data) < 20_000
    path = tmp_path / "vector.ort"
    path.write_bytes(data)
    message = _refusal(path)
    assert "is not an ORT-format model" in message
    assert "references the same tables more often than its size allows" in message


def test_a_file_of_shared_subgraphs_is_refused_in_one_line(tmp_path):
    path = tmp_path / "shared.ort"
    path.write_bytes(shared_subgraph_ort(60))
    assert "has no 'vocabulary' metadata" in _refusal(path)


def test_an_ort_file_still_reads_and_loads(ort_model):
    facts = inspect_ort_model(ort_model.read_bytes())
    assert facts.opset == 18 and dict(facts.metadata)[b"format"] == b"gru-edge/2"
    assert load_model(ort_model, device="cpu").has_generator


@pytest.mark.parametrize(
    "cut, fragment",
    [
        (lambda d: d[:2000], "an offset or length points outside the file's 2,000 bytes"),
        (lambda d: d[:4] + b"ORTM" + b"\xff" * 8, "an offset or length points outside"),
        (lambda d: b"\xff\xff\xff\x7fORTM" + d[8:], "an offset or length points outside"),
    ],
)
def test_a_corrupt_ort_file_says_what_is_wrong(tmp_path, ort_model, cut, fragment):
    path = tmp_path / "corrupt.ort"
    path.write_bytes(cut(ort_model.read_bytes()))
    message = _refusal(path)
    assert "is not an ORT-format model" in message and fragment in message
    assert "(error)" not in message


def test_empty_metadata_entries_stop_the_reader_at_the_entry_limit(small_proto):
    data = small_proto.SerializeToString() + _EMPTY_ENTRY * 4_000_000  # 8 MB, 4 million entries
    tracemalloc.start()
    try:
        with pytest.raises(MetadataLimitError) as caught:
            inspect_model(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.entries == MAX_METADATA_ENTRIES + 1
    assert peak < 4_000_000  # a list of every entry took ~75 bytes each


def test_big_metadata_stops_the_reader_at_the_byte_limit(small_proto):
    data = small_proto.SerializeToString()
    for index in range(100):
        data = with_raw_metadata(data, f"k{index}".encode(), b"x" * 1000)
    with pytest.raises(MetadataLimitError) as caught:
        inspect_model(data, MetadataLimits(max_bytes=10_000))
    assert caught.value.entries < 30  # of the ~115 in the file


def test_the_loader_refuses_an_entry_flood_in_one_line(tmp_path, small_proto):
    path = tmp_path / "flood.onnx"
    path.write_bytes(small_proto.SerializeToString() + _EMPTY_ENTRY * 1_000_000)
    message = _refusal(path)
    assert f"metadata entries, over the {MAX_METADATA_ENTRIES:,}-entry limit" in message
    assert "re-export" in message


def test_ort_metadata_is_refused_by_its_running_size(ort_model):
    with pytest.raises(MetadataLimitError) as caught:
        inspect_ort_model(ort_model.read_bytes(), MetadataLimits(max_bytes=100))
    assert "over the 100-byte limit" in str(caught.value)
    with pytest.raises(MetadataLimitError):
        inspect_ort_model(ort_model.read_bytes(), MetadataLimits(max_entries=3))
