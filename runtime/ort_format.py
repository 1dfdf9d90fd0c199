"""The ORT-format twin of runtime.onnx_proto: the same facts from a `.ort` file (onnxruntime's
FlatBuffers format for its minimal mobile builds), read with the schema bindings that the
onnxruntime wheel ships (they need only the `flatbuffers` package, a dependency of onnxruntime).

Like the ONNX reader it finds tensors whose data lives outside the file (``external_data_offset``)
in initializers, sparse initializers and node attributes at any depth, and returns the
metadata entries as stored, so that the loader applies one set of checks to both formats.
"""

from __future__ import annotations

from typing import Any

from gru_edge.runtime.onnx_proto import ProtoError, ProtoFacts

ORT_IDENTIFIER = b"ORTM"  # FlatBuffers file identifier, bytes 4 to 8
_MAX_DEPTH = 64


def is_ort_format(data: bytes) -> bool:
    """Whether ``data`` looks like an ORT-format model (by content, not by file name)."""
    return len(data) >= 8 and data[4:8] == ORT_IDENTIFIER


def inspect_ort_model(data: bytes) -> ProtoFacts:
    """Walk an ORT-format model; raise ProtoError if it is not one or is broken."""
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py import fbs

    if not is_ort_format(data):
        raise ProtoError("no ORT-format identifier")
    try:
        session = fbs.InferenceSession.InferenceSession.GetRootAs(data, 0)
        model = session.Model()
        if model is None:
            raise ProtoError("no model in the ORT-format file")
        facts = ProtoFacts(ir_version=model.IrVersion(), producer=_text(model.ProducerName()))
        for i in range(model.OpsetImportLength()):
            opset = model.OpsetImport(i)
            if _text(opset.Domain()) in ("", "ai.onnx"):
                facts.opset = opset.Version()
        for i in range(model.MetadataPropsLength()):
            entry = model.MetadataProps(i)
            facts.metadata.append((bytes(entry.Key() or b""), bytes(entry.Value() or b"")))
        graph = model.Graph()
        facts.has_graph = graph is not None
        if graph is not None:
            _graph(graph, facts, 0)
    except ProtoError:
        raise
    except Exception as exc:  # the bindings raise struct/index errors on truncated buffers
        raise ProtoError(f"broken ORT-format data ({type(exc).__name__})") from None
    return facts


def _graph(graph: Any, facts: ProtoFacts, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ProtoError("graphs nested too deep")
    for i in range(graph.InitializersLength()):
        _tensor(graph.Initializers(i), facts)
    for i in range(graph.SparseInitializersLength()):
        sparse = graph.SparseInitializers(i)
        for part in (sparse.Values(), sparse.Indices()):
            if part is not None:
                _tensor(part, facts)
    for i in range(graph.NodesLength()):
        node = graph.Nodes(i)
        for j in range(node.AttributesLength()):
            attribute = node.Attributes(j)
            if attribute.T() is not None:
                _tensor(attribute.T(), facts)
            for k in range(attribute.TensorsLength()):
                _tensor(attribute.Tensors(k), facts)
            if attribute.G() is not None:
                _graph(attribute.G(), facts, depth + 1)
            for k in range(attribute.GraphsLength()):
                _graph(attribute.Graphs(k), facts, depth + 1)


def _tensor(tensor: Any, facts: ProtoFacts) -> None:
    if tensor.ExternalDataOffset() >= 0:
        facts.external_tensors.append(_text(tensor.Name()))


def _text(raw: bytes | None) -> str:
    return (raw or b"").decode("utf-8", errors="replace")
