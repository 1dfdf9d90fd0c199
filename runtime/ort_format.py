"""The ORT-format twin of runtime.onnx_proto: the same facts from a `.ort` file (onnxruntime's
FlatBuffers format for its minimal mobile builds), read with the schema bindings that the
onnxruntime wheel ships (they need only the `flatbuffers` package, a dependency of onnxruntime).

Like the ONNX reader it finds tensors whose data lives outside the file (``external_data_offset``)
in initializers, sparse initializers and node attributes at any depth, and returns the
metadata entries as stored, so that the loader applies one set of checks to both formats.

FlatBuffers let one table be referenced from many places, so a file can share a subgraph between
attributes: 60 levels of two references to the same graph are 2^60 paths in 3 KB. The walk visits
each graph once (by its position in the file) and counts every table it reads against a budget
of one per four bytes of the file (a reference is four bytes), so it is linear in the file
whatever the file shares. Metadata is refused by its running size and count as it is read.
"""

from __future__ import annotations

import struct
from typing import Any

from gru_edge.runtime.onnx_proto import MetadataLimits, ProtoError, ProtoFacts

ORT_IDENTIFIER = b"ORTM"  # FlatBuffers file identifier, bytes 4 to 8
_MAX_DEPTH = 64
_MIN_BUDGET = 1024  # tables a tiny file may still read


class _Walk:
    """The state of one walk: the facts, the graphs seen, and the tables left to read."""

    def __init__(self, facts: ProtoFacts, size: int) -> None:
        self.facts = facts
        self.seen: set[int] = set()
        self.budget = max(size // 4, _MIN_BUDGET)

    def spend(self, count: int = 1) -> None:
        self.budget -= count
        if self.budget < 0:
            raise ProtoError(
                "it references the same tables more often than its size allows "
                "(subgraphs shared between attributes)"
            )


def is_ort_format(data: bytes) -> bool:
    """Whether ``data`` looks like an ORT-format model (by content, not by file name)."""
    return len(data) >= 8 and data[4:8] == ORT_IDENTIFIER


def inspect_ort_model(data: bytes, limits: MetadataLimits | None = None) -> ProtoFacts:
    """Walk an ORT-format model; raise ProtoError if it is not one or is broken, and
    MetadataLimitError as soon as its metadata passes ``limits``."""
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py import fbs

    if not is_ort_format(data):
        raise ProtoError("no ORT-format identifier")
    try:
        session = fbs.InferenceSession.InferenceSession.GetRootAs(data, 0)
        model = session.Model()
        if model is None:
            raise ProtoError("no model in the ORT-format file")
        facts = ProtoFacts(ir_version=model.IrVersion(), producer=_text(model.ProducerName()))
        walk = _Walk(facts, len(data))
        counter = (limits or MetadataLimits()).counter()
        for i in range(model.OpsetImportLength()):
            opset = model.OpsetImport(i)
            if _text(opset.Domain()) in ("", "ai.onnx"):
                facts.opset = opset.Version()
        for i in range(model.MetadataPropsLength()):
            entry = model.MetadataProps(i)
            key, value = entry.Key() or b"", entry.Value() or b""
            counter.add(len(key) + len(value))  # before copying: a refusal copies nothing
            facts.metadata.append((bytes(key), bytes(value)))
        graph = model.Graph()
        facts.has_graph = graph is not None
        if graph is not None:
            _graph(graph, walk, 0)
    except ProtoError:
        raise
    except Exception as exc:  # the bindings raise struct/index errors on broken buffers
        raise ProtoError(_broken(exc, len(data))) from None
    return facts


def _broken(exc: Exception, size: int) -> str:
    """What a bindings exception says about the file, in words."""
    # struct/index errors read past the end; TypeError is flatbuffers' "bad number" for an
    # offset that comes out negative
    if isinstance(exc, (struct.error, IndexError, TypeError)):
        return f"an offset or length points outside the file's {size:,} bytes"
    if isinstance(exc, UnicodeDecodeError):
        return "a string is not valid UTF-8"
    return f"unreadable ORT-format data ({type(exc).__name__}: {str(exc)[:80]})"


def _graph(graph: Any, walk: _Walk, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ProtoError(f"graphs nested more than {_MAX_DEPTH} deep")
    if graph._tab.Pos in walk.seen:
        return  # a shared subgraph: its tensors were looked at the first time
    walk.seen.add(graph._tab.Pos)
    walk.spend()
    for i in range(graph.InitializersLength()):
        walk.spend()
        _tensor(graph.Initializers(i), walk.facts)
    for i in range(graph.SparseInitializersLength()):
        walk.spend()
        sparse = graph.SparseInitializers(i)
        for part in (sparse.Values(), sparse.Indices()):
            if part is not None:
                _tensor(part, walk.facts)
    for i in range(graph.NodesLength()):
        walk.spend()
        node = graph.Nodes(i)
        for j in range(node.AttributesLength()):
            walk.spend()
            _attribute(node.Attributes(j), walk, depth)


def _attribute(attribute: Any, walk: _Walk, depth: int) -> None:
    if attribute.T() is not None:
        _tensor(attribute.T(), walk.facts)
    for k in range(attribute.TensorsLength()):
        walk.spend()
        _tensor(attribute.Tensors(k), walk.facts)
    if attribute.G() is not None:
        _graph(attribute.G(), walk, depth + 1)
    for k in range(attribute.GraphsLength()):
        walk.spend()
        _graph(attribute.Graphs(k), walk, depth + 1)


def _tensor(tensor: Any, facts: ProtoFacts) -> None:
    if tensor.ExternalDataOffset() >= 0:
        facts.external_tensors.append(_text(tensor.Name()))


def _text(raw: bytes | None) -> str:
    return (raw or b"").decode("utf-8", errors="replace")
