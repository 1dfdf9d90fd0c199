"""A small reader of the protobuf wire format, enough to inspect an ONNX file without the onnx
package (which the bare install lacks: see the README for the measured trade-off).

It finds tensors stored as external data, which onnxruntime would read from the current
directory even for a model loaded from bytes, wherever ONNX lets a tensor live: graph
initializers and sparse initializers, node attributes (t, tensors, sparse_tensor(s)), the graphs
of attributes (g, graphs) at any depth, local functions (their nodes and their attributes'
default values) and training-info graphs. It also returns the metadata_props entries as raw
bytes, in file order, because onnxruntime's map hides repeated keys and cannot hold bytes that
are not UTF-8, and reads the opset, IR version and producer for `info`.
Field numbers are from onnx/onnx.proto.

The metadata is refused by its running size and entry count as it is read (MetadataLimits), so
a file of millions of empty entries costs what the limit allows, not a list of all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

DEFAULT_MAX_METADATA_BYTES = 1024 * 1024
# The exporter writes ~20 entries; 64 MB of empty ones were 32 million, read before refusal.
MAX_METADATA_ENTRIES = 4096
_MAX_DEPTH = 64  # graphs nest inside node attributes (If, Loop, Scan); real models nest a few

# ModelProto
_M_IR_VERSION, _M_PRODUCER, _M_PRODUCER_VERSION, _M_GRAPH = 1, 2, 3, 7
_M_OPSET, _M_METADATA, _M_TRAINING_INFO, _M_FUNCTIONS = 8, 14, 20, 25
# GraphProto
_G_NODE, _G_INITIALIZER, _G_SPARSE_INITIALIZER = 1, 5, 15
# NodeProto, FunctionProto, TrainingInfoProto
_N_ATTRIBUTE = 5
_F_NODE, _F_ATTRIBUTE_PROTO = 7, 11
_T_GRAPHS = (1, 2)  # initialization, algorithm
# AttributeProto
_A_TENSORS, _A_GRAPHS, _A_SPARSE = (5, 10), (6, 11), (22, 23)
# TensorProto, SparseTensorProto
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION, _EXTERNAL = 8, 13, 14, 1
_SPARSE_PARTS = (1, 2)  # values, indices


class ProtoError(ValueError):
    """The bytes are not a well-formed protobuf message."""


class MetadataLimitError(ProtoError):
    """The metadata passed a limit while it was read; ``entries`` were read when it stopped."""

    def __init__(self, message: str, entries: int) -> None:
        super().__init__(message)
        self.entries = entries


@dataclass(frozen=True)
class MetadataLimits:
    """How much metadata a reader accepts: key and value bytes in all, and entries."""

    max_bytes: int = DEFAULT_MAX_METADATA_BYTES
    max_entries: int = MAX_METADATA_ENTRIES

    def counter(self) -> MetadataCounter:
        """A running count against these limits, for one file."""
        return MetadataCounter(self)


class MetadataCounter:
    """Counts metadata entries as a reader meets them; raises MetadataLimitError past a limit."""

    def __init__(self, limits: MetadataLimits) -> None:
        self.limits = limits
        self.entries = 0
        self.size = 0

    def add(self, size: int) -> None:
        """One more entry of ``size`` key and value bytes."""
        self.entries += 1
        self.size += size
        if self.size > self.limits.max_bytes:
            raise MetadataLimitError(
                f"carries {self.size:,}+ bytes of metadata, over the "
                f"{self.limits.max_bytes:,}-byte limit",
                self.entries,
            )
        if self.entries > self.limits.max_entries:
            raise MetadataLimitError(
                f"carries {self.entries:,}+ metadata entries, over the "
                f"{self.limits.max_entries:,}-entry limit",
                self.entries,
            )


@dataclass
class ProtoFacts:
    """What the loader wants to know about an ONNX ModelProto."""

    ir_version: int | None = None
    producer: str = ""
    opset: int | None = None  # of the default ("" or "ai.onnx") domain
    has_graph: bool = False
    external_tensors: list[str] = field(default_factory=list)
    metadata: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value), in order


def inspect_model(data: bytes, limits: MetadataLimits | None = None) -> ProtoFacts:
    """Walk a serialized ModelProto; raise ProtoError if the wire format is broken, and
    MetadataLimitError as soon as its metadata passes ``limits``."""
    facts = ProtoFacts()
    counter = (limits or MetadataLimits()).counter()
    name = version = ""
    buf = memoryview(data)
    for num, wire, a, b in _fields(buf, 0, len(buf)):
        if wire == 0 and num == _M_IR_VERSION:
            facts.ir_version = a
        elif wire != 2:
            continue
        elif num == _M_PRODUCER:
            name = _text(buf, a, b)
        elif num == _M_PRODUCER_VERSION:
            version = _text(buf, a, b)
        elif num == _M_GRAPH:
            facts.has_graph = True
            _graph(buf, a, b, facts, 1)
        elif num == _M_OPSET:
            domain, opset = _opset(buf, a, b)
            if domain in ("", "ai.onnx") and opset is not None:
                facts.opset = opset
        elif num == _M_METADATA:
            counter.add(_entry_size(buf, a, b))  # before copying: a refusal copies nothing
            facts.metadata.append(_entry(buf, a, b))
        elif num == _M_TRAINING_INFO:
            for n, w, c, d in _fields(buf, a, b):
                if n in _T_GRAPHS and w == 2:
                    _graph(buf, c, d, facts, 1)
        elif num == _M_FUNCTIONS:
            _function(buf, a, b, facts)
    facts.producer = f"{name} {version}".strip()
    return facts


def _function(buf: memoryview, start: int, end: int, facts: ProtoFacts) -> None:
    for num, wire, a, b in _fields(buf, start, end):
        if wire != 2:
            continue
        if num == _F_NODE:
            _node(buf, a, b, facts, 1)
        elif num == _F_ATTRIBUTE_PROTO:  # an attribute's default value
            _attribute(buf, a, b, facts, 1)


def _graph(buf: memoryview, start: int, end: int, facts: ProtoFacts, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ProtoError(f"graphs nested more than {_MAX_DEPTH} deep")
    for num, wire, a, b in _fields(buf, start, end):
        if wire != 2:
            continue
        if num == _G_NODE:
            _node(buf, a, b, facts, depth)
        elif num == _G_INITIALIZER:
            _tensor(buf, a, b, facts)
        elif num == _G_SPARSE_INITIALIZER:
            _sparse(buf, a, b, facts)


def _node(buf: memoryview, start: int, end: int, facts: ProtoFacts, depth: int) -> None:
    for num, wire, a, b in _fields(buf, start, end):
        if num == _N_ATTRIBUTE and wire == 2:
            _attribute(buf, a, b, facts, depth)


def _attribute(buf: memoryview, start: int, end: int, facts: ProtoFacts, depth: int) -> None:
    for num, wire, a, b in _fields(buf, start, end):
        if wire != 2:
            continue
        if num in _A_TENSORS:
            _tensor(buf, a, b, facts)
        elif num in _A_GRAPHS:
            _graph(buf, a, b, facts, depth + 1)
        elif num in _A_SPARSE:
            _sparse(buf, a, b, facts)


def _sparse(buf: memoryview, start: int, end: int, facts: ProtoFacts) -> None:
    for num, wire, a, b in _fields(buf, start, end):
        if num in _SPARSE_PARTS and wire == 2:
            _tensor(buf, a, b, facts)


def _tensor(buf: memoryview, start: int, end: int, facts: ProtoFacts) -> None:
    name = ""
    external = False
    for num, wire, a, b in _fields(buf, start, end):
        if num == _TENSOR_NAME and wire == 2:
            name = _text(buf, a, b)
        elif (num == _TENSOR_EXTERNAL_DATA and wire == 2) or (
            num == _TENSOR_DATA_LOCATION and wire == 0 and a == _EXTERNAL
        ):
            external = True
    if external:
        facts.external_tensors.append(name or "(unnamed)")


def _opset(buf: memoryview, start: int, end: int) -> tuple[str, int | None]:
    domain, version = "", None
    for num, wire, a, b in _fields(buf, start, end):
        if num == 1 and wire == 2:
            domain = _text(buf, a, b)
        elif num == 2 and wire == 0:
            version = a
    return domain, version


def _entry(buf: memoryview, start: int, end: int) -> tuple[bytes, bytes]:
    """A StringStringEntryProto's key and value, undecoded (the last of each wins, as in
    protobuf; an absent one is empty)."""
    key = value = b""
    for num, wire, a, b in _fields(buf, start, end):
        if num == 1 and wire == 2:
            key = bytes(buf[a:b])
        elif num == 2 and wire == 2:
            value = bytes(buf[a:b])
    return key, value


def _entry_size(buf: memoryview, start: int, end: int) -> int:
    """The bytes a StringStringEntryProto's key and value hold (what _entry would copy)."""
    size = 0
    for num, wire, a, b in _fields(buf, start, end):
        if num in (1, 2) and wire == 2:
            size += b - a
    return size


def _text(buf: memoryview, start: int, end: int) -> str:
    return bytes(buf[start:end]).decode("utf-8", errors="replace")


def _fields(buf: memoryview, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield (field number, wire type, a, b): a varint's or a fixed field's value in a, or a
    length-delimited field's byte range as a..b. One-byte keys and lengths are read inline
    (the loader parses every node of a file's generator on each load: ~15% of the check)."""
    while pos < end:
        key = buf[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(buf, pos, end)
        num, wire = key >> 3, key & 7
        if num == 0:
            raise ProtoError(f"field number 0 at byte {pos}")
        if wire == 2:
            size = buf[pos] if pos < end else 0x80
            if size < 0x80:
                pos += 1
            else:
                size, pos = _varint(buf, pos, end)
            if pos + size > end:
                raise ProtoError(f"field {num} runs past the end of its message at byte {pos}")
            yield num, wire, pos, pos + size
            pos += size
        elif wire == 0:
            value, pos = _varint(buf, pos, end)
            yield num, wire, value, 0
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > end:
                raise ProtoError(f"field {num} runs past the end of its message")
            yield num, wire, int.from_bytes(buf[pos : pos + width], "little"), 0
            pos += width
        else:
            raise ProtoError(f"unsupported wire type {wire} at byte {pos}")


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ProtoError(f"truncated or overlong varint at byte {pos}")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
