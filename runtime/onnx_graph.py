"""An ONNX file's main graph as runtime.generator_spec describes graphs, read from the protobuf
wire format without the onnx package: nodes with their attributes (subgraphs at any depth),
inputs and outputs with their types, and initializers. The loader compares the generator part
with the one gru-edge derives from the file's step (runtime.generator_check).

Field numbers are from onnx/onnx.proto. Tensors are kept as raw bytes only when stored in
``raw_data`` (as gru-edge writes them); any other storage reads as "no raw data", which never
equals a tensor gru-edge writes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from gru_edge.runtime.generator_spec import ATTRIBUTE_KINDS, Attr, Graph, Node, Tensor, ValueInfo
from gru_edge.runtime.onnx_proto import ProtoError, _fields, _text, _varint  # one wire reader

_MAX_DEPTH = 64
_M_GRAPH = 7
_G_NODE, _G_NAME, _G_INITIALIZER, _G_INPUT, _G_OUTPUT = 1, 2, 5, 11, 12
_N_INPUT, _N_OUTPUT, _N_NAME, _N_OP_TYPE, _N_ATTRIBUTE, _N_DOMAIN = 1, 2, 3, 4, 5, 7
_T_DIMS, _T_DATA_TYPE, _T_NAME, _T_RAW = 1, 2, 8, 9
_A_NAME, _A_F, _A_I, _A_S, _A_T, _A_G = 1, 2, 3, 4, 5, 6
_A_FLOATS, _A_INTS, _A_STRINGS, _A_TENSORS, _A_GRAPHS, _A_TYPE, _A_REF = 7, 8, 9, 10, 11, 20, 21


def read_main_graph(data: bytes) -> Graph:
    """The model's graph; raise ProtoError if there is none or the bytes are broken."""
    buf = memoryview(data)
    graph = None
    for num, wire, a, b in _fields(buf, 0, len(buf)):
        if num == _M_GRAPH and wire == 2:
            graph = (a, b)  # protobuf: the last occurrence wins
    if graph is None:
        raise ProtoError("no graph")
    return _graph(buf, *graph, 1)


def _graph(buf: memoryview, start: int, end: int, depth: int) -> Graph:
    if depth > _MAX_DEPTH:
        raise ProtoError(f"graphs nested more than {_MAX_DEPTH} deep")
    graph = Graph("", [], [], [])
    for num, wire, a, b in _fields(buf, start, end):
        if wire != 2:
            continue
        if num == _G_NODE:
            graph.nodes.append(_node(buf, a, b, depth))
        elif num == _G_NAME:
            graph.name = _text(buf, a, b)
        elif num == _G_INITIALIZER:
            graph.initializers.append(_tensor(buf, a, b))
        elif num == _G_INPUT:
            graph.inputs.append(_value_info(buf, a, b))
        elif num == _G_OUTPUT:
            graph.outputs.append(_value_info(buf, a, b))
    return graph


def _node(buf: memoryview, start: int, end: int, depth: int) -> Node:
    node = Node("", (), ())
    inputs, outputs, attrs = [], [], []
    for num, wire, a, b in _fields(buf, start, end):
        if wire != 2:
            continue
        if num == _N_INPUT:
            inputs.append(_text(buf, a, b))
        elif num == _N_OUTPUT:
            outputs.append(_text(buf, a, b))
        elif num == _N_NAME:
            node.name = _text(buf, a, b)
        elif num == _N_OP_TYPE:
            node.op_type = _text(buf, a, b)
        elif num == _N_DOMAIN:
            node.domain = _text(buf, a, b)
        elif num == _N_ATTRIBUTE:
            attrs.append(_attribute(buf, a, b, depth))
    node.inputs, node.outputs, node.attrs = tuple(inputs), tuple(outputs), tuple(attrs)
    return node


def _attribute(buf: memoryview, start: int, end: int, depth: int) -> Attr:
    """An attribute by its declared type (what onnxruntime reads); a reference to a function's
    attribute reads as kind "ref", which no generator node has."""
    name, kind_number, ref = "", 0, False
    one: dict[int, object] = {}
    many: dict[int, list] = {_A_FLOATS: [], _A_INTS: [], _A_STRINGS: [], _A_TENSORS: []}
    graphs: list = []
    for num, wire, a, b in _fields(buf, start, end):
        if num == _A_NAME and wire == 2:
            name = _text(buf, a, b)
        elif num == _A_TYPE and wire == 0:
            kind_number = a
        elif num == _A_REF and wire == 2:
            ref = True
        elif num == _A_F and wire == 5:
            one[num] = _float32(a)
        elif num == _A_I and wire == 0:
            one[num] = _signed(a)
        elif num == _A_S and wire == 2:
            one[num] = bytes(buf[a:b])
        elif num == _A_T and wire == 2:
            one[num] = _tensor(buf, a, b)
        elif num == _A_G and wire == 2:
            one[num] = _graph(buf, a, b, depth + 1)
        elif num == _A_FLOATS:
            many[num] += [_float32(v) for v in _packed(buf, wire, a, b, fixed=True)]
        elif num == _A_INTS:
            many[num] += [_signed(v) for v in _packed(buf, wire, a, b, fixed=False)]
        elif num == _A_STRINGS and wire == 2:
            many[num].append(bytes(buf[a:b]))
        elif num == _A_TENSORS and wire == 2:
            many[num].append(_tensor(buf, a, b))
        elif num == _A_GRAPHS and wire == 2:
            graphs.append(_graph(buf, a, b, depth + 1))
    kind = "ref" if ref else ATTRIBUTE_KINDS.get(kind_number, f"type {kind_number}")
    fields = {"float": _A_F, "int": _A_I, "string": _A_S, "tensor": _A_T, "graph": _A_G}
    if kind in fields:
        return Attr(name, kind, one.get(fields[kind]))
    lists = {"floats": _A_FLOATS, "ints": _A_INTS, "strings": _A_STRINGS, "tensors": _A_TENSORS}
    if kind in lists:
        return Attr(name, kind, tuple(many[lists[kind]]))
    return Attr(name, kind, tuple(graphs) if kind == "graphs" else None)


def _tensor(buf: memoryview, start: int, end: int) -> Tensor:
    name, elem, dims, raw = "", 0, [], None
    for num, wire, a, b in _fields(buf, start, end):
        if num == _T_NAME and wire == 2:
            name = _text(buf, a, b)
        elif num == _T_DATA_TYPE and wire == 0:
            elem = a
        elif num == _T_DIMS:
            dims += [_signed(v) for v in _packed(buf, wire, a, b, fixed=False)]
        elif num == _T_RAW and wire == 2:
            raw = bytes(buf[a:b])
    return Tensor(name, elem, tuple(dims), raw)


def _value_info(buf: memoryview, start: int, end: int) -> ValueInfo:
    """A ValueInfoProto: name, and a tensor type's element type and shape when stated."""
    info = ValueInfo("")
    for num, wire, a, b in _fields(buf, start, end):
        if num == 1 and wire == 2:
            info.name = _text(buf, a, b)
        elif num == 2 and wire == 2:  # TypeProto
            for n, w, c, d in _fields(buf, a, b):
                if n == 1 and w == 2:  # tensor_type
                    info.elem, info.shape = _tensor_type(buf, c, d)
    return info


def _tensor_type(buf: memoryview, start: int, end: int) -> tuple[int | None, tuple | None]:
    elem, shape = None, None
    for num, wire, a, b in _fields(buf, start, end):
        if num == 1 and wire == 0:
            elem = a
        elif num == 2 and wire == 2:  # TensorShapeProto
            dims: list[int | str] = []
            for n, w, c, d in _fields(buf, a, b):
                if n == 1 and w == 2:  # Dimension: dim_value or dim_param
                    dim: int | str = "?"
                    for m, x, e, f in _fields(buf, c, d):
                        if m == 1 and x == 0:
                            dim = _signed(e)
                        elif m == 2 and x == 2:
                            dim = _text(buf, e, f)
                    dims.append(dim)
            shape = tuple(dims)
    return elem, shape


def _packed(buf: memoryview, wire: int, a: int, b: int, *, fixed: bool) -> Iterator[int]:
    """A repeated scalar field's values: one unpacked value, or a packed run of them."""
    if wire != 2:
        yield a
        return
    if fixed:
        if (b - a) % 4:
            raise ProtoError("packed fixed32 field of a length not a multiple of 4")
        yield from (struct.unpack_from("<I", buf, p)[0] for p in range(a, b, 4))
        return
    pos = a
    while pos < b:
        value, pos = _varint(buf, pos, b)
        yield value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _float32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))[0]


def read_attribute(data: bytes) -> Attr:
    """A serialized AttributeProto (onnxruntime's operator schemas hold their defaults so)."""
    return _attribute(memoryview(data), 0, len(data), 1)
