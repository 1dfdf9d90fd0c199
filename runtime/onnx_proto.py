"""A small reader of the protobuf wire format, enough to inspect an ONNX file without the onnx
package (which the runtime must not import).

It finds tensors stored as external data, which onnxruntime would read from the current
directory even for a model loaded from bytes, and reads the opset and producer for `info`.
Field numbers are from onnx/onnx.proto.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

_MAX_DEPTH = 64  # graphs nest inside node attributes (If, Loop, Scan); real models nest a few


class ProtoError(ValueError):
    """The bytes are not a well-formed protobuf message."""


@dataclass
class ProtoFacts:
    """What the loader wants to know about an ONNX ModelProto."""

    ir_version: int | None = None
    producer: str = ""
    opset: int | None = None  # of the default ("" or "ai.onnx") domain
    external_tensors: list[str] = field(default_factory=list)


def inspect_model(data: bytes) -> ProtoFacts:
    """Walk a serialized ModelProto; raise ProtoError if the wire format is broken."""
    facts = ProtoFacts()
    name = version = ""
    buf = memoryview(data)
    for num, wire, a, b in _fields(buf, 0, len(buf)):
        if wire == 0 and num == 1:
            facts.ir_version = a
        elif wire != 2:
            continue
        elif num == 2:
            name = _text(buf, a, b)
        elif num == 3:
            version = _text(buf, a, b)
        elif num == 7:
            _graph(buf, a, b, facts, 1)
        elif num == 8:
            domain, opset = _opset(buf, a, b)
            if domain in ("", "ai.onnx") and opset is not None:
                facts.opset = opset
        elif num == 25:  # FunctionProto: its nodes are field 7
            for n, w, c, d in _fields(buf, a, b):
                if n == 7 and w == 2:
                    _node(buf, c, d, facts, 1)
    facts.producer = f"{name} {version}".strip()
    return facts


def _graph(buf: memoryview, start: int, end: int, facts: ProtoFacts, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ProtoError(f"graphs nested more than {_MAX_DEPTH} deep")
    for num, wire, a, b in _fields(buf, start, end):
        if wire != 2:
            continue
        if num == 1:  # node
            _node(buf, a, b, facts, depth)
        elif num == 5:  # initializer
            _tensor(buf, a, b, facts)
        elif num == 15:  # sparse_initializer
            _sparse(buf, a, b, facts)


def _node(buf: memoryview, start: int, end: int, facts: ProtoFacts, depth: int) -> None:
    for num, wire, a, b in _fields(buf, start, end):
        if num != 5 or wire != 2:  # attribute
            continue
        for n, w, c, d in _fields(buf, a, b):
            if w != 2:
                continue
            if n in (5, 10):  # t, tensors
                _tensor(buf, c, d, facts)
            elif n in (6, 11):  # g, graphs
                _graph(buf, c, d, facts, depth + 1)
            elif n in (22, 23):  # sparse_tensor, sparse_tensors
                _sparse(buf, c, d, facts)


def _sparse(buf: memoryview, start: int, end: int, facts: ProtoFacts) -> None:
    for num, wire, a, b in _fields(buf, start, end):
        if num in (1, 2) and wire == 2:  # values, indices
            _tensor(buf, a, b, facts)


def _tensor(buf: memoryview, start: int, end: int, facts: ProtoFacts) -> None:
    name = ""
    external = False
    for num, wire, a, b in _fields(buf, start, end):
        if num == 8 and wire == 2:
            name = _text(buf, a, b)
        elif (num == 13 and wire == 2) or (num == 14 and wire == 0 and a == 1):
            external = True  # external_data entries, or data_location = EXTERNAL
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


def _text(buf: memoryview, start: int, end: int) -> str:
    return bytes(buf[start:end]).decode("utf-8", errors="replace")


def _fields(buf: memoryview, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield (field number, wire type, a, b): a varint's value in a, or a length-delimited
    field's byte range as a..b; fixed-width fields are skipped over."""
    while pos < end:
        key, pos = _varint(buf, pos, end)
        num, wire = key >> 3, key & 7
        if num == 0:
            raise ProtoError(f"field number 0 at byte {pos}")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield num, wire, value, 0
        elif wire == 2:
            size, pos = _varint(buf, pos, end)
            if pos + size > end:
                raise ProtoError(f"field {num} runs past the end of its message at byte {pos}")
            yield num, wire, pos, pos + size
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > end:
                raise ProtoError(f"field {num} runs past the end of its message")
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
