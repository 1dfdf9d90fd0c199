"""A small description of ONNX graphs, free of the ``onnx`` package: what the generator builder
(runtime.generator_build) writes and what the loader reads back from a file to compare.

The exporter turns a description into onnx protos (exporter.generator_graph); the loader
decodes a file's graph into one (runtime.onnx_graph, runtime.ort_graph) and checks that its
generator is the one gru-edge derives from the file's step (runtime.generator_check). Element
and attribute types use ONNX's numbers, named here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# TensorProto.DataType
FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, STRING, BOOL = 1, 2, 3, 4, 5, 6, 7, 8, 9
FLOAT16, DOUBLE, UINT32, UINT64 = 10, 11, 12, 13
NUMPY_TYPES = {
    FLOAT: np.float32,
    UINT8: np.uint8,
    INT8: np.int8,
    UINT16: np.uint16,
    INT16: np.int16,
    INT32: np.int32,
    INT64: np.int64,
    BOOL: np.bool_,
    FLOAT16: np.float16,
    DOUBLE: np.float64,
    UINT32: np.uint32,
    UINT64: np.uint64,
}
ELEMENT_TYPES = {np.dtype(t): e for e, t in NUMPY_TYPES.items()}

# AttributeProto.AttributeType, by the kind names used here
ATTRIBUTE_KINDS = {
    1: "float",
    2: "int",
    3: "string",
    4: "tensor",
    5: "graph",
    6: "floats",
    7: "ints",
    8: "strings",
    9: "tensors",
    10: "graphs",
}
GRAPH_KINDS = ("graph", "graphs")


@dataclass(frozen=True)
class Tensor:
    """A named constant: element type, dims and its little-endian bytes (``data`` None for a
    tensor stored any other way, which never equals one gru-edge writes)."""

    name: str
    elem: int
    dims: tuple[int, ...]
    data: bytes | None

    @classmethod
    def of(cls, name: str, value: Any, dtype: Any) -> Tensor:
        """A tensor holding ``np.array(value, dtype)``."""
        array = np.array(value, dtype=dtype)
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        return cls(name, ELEMENT_TYPES[array.dtype], tuple(array.shape), little.tobytes())

    def array(self) -> np.ndarray:
        """The values as a numpy array."""
        if self.data is None:
            raise ValueError(f"tensor {self.name!r} holds no raw data")
        dtype = np.dtype(NUMPY_TYPES[self.elem]).newbyteorder("<")
        return np.frombuffer(self.data, dtype=dtype).reshape(self.dims)

    def holds(self, want: np.ndarray) -> bool:
        """Whether it holds exactly ``want``'s values, in order, whatever its dims (False for
        data that is not a known element type's, or does not fill its dims)."""
        if self.data is None or self.elem not in NUMPY_TYPES:
            return False
        try:
            got = self.array()
        except ValueError:
            return False
        return got.size == want.size and bool(np.array_equal(got.reshape(-1), want.reshape(-1)))


@dataclass(frozen=True)
class Attr:
    """A node attribute: ``kind`` is one of ATTRIBUTE_KINDS' names; ints, floats and strings
    are tuples, strings are bytes, floats are float32 values (as the file stores them)."""

    name: str
    kind: str
    value: Any


@dataclass
class ValueInfo:
    """A graph input or output: name, element type (None = unstated), shape (None = unstated;
    a dim is an int or a symbolic name)."""

    name: str
    elem: int | None = None
    shape: tuple[int | str, ...] | None = None


@dataclass
class Node:
    """One node. ``origin`` is what a node was read from (the exporter copies an onnx proto's
    fields it does not describe, such as doc strings, from there); it never takes part in a
    comparison."""

    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    name: str = ""
    attrs: tuple[Attr, ...] = ()
    domain: str = ""
    origin: Any = field(default=None, compare=False, repr=False)

    def attr(self, name: str) -> Any:
        """An attribute's value, or None."""
        return next((a.value for a in self.attrs if a.name == name), None)


@dataclass
class Graph:
    """A graph: nodes in order, inputs, outputs, and initializers (a subgraph's constants are
    Constant nodes, as the exporter writes them)."""

    name: str
    nodes: list[Node]
    inputs: list[ValueInfo]
    outputs: list[ValueInfo]
    initializers: list[Tensor] = field(default_factory=list)


def attrs(**values: Any) -> tuple[Attr, ...]:
    """Attributes from Python values, sorted by name as onnx.helper.make_node sorts them."""
    return tuple(_attr(name, values[name]) for name in sorted(values) if values[name] is not None)


def _attr(name: str, value: Any) -> Attr:
    if isinstance(value, Graph):
        return Attr(name, "graph", value)
    if isinstance(value, Tensor):
        return Attr(name, "tensor", value)
    if isinstance(value, str):
        return Attr(name, "string", value.encode("utf-8"))
    if isinstance(value, (bool, int, np.integer)):
        return Attr(name, "int", int(value))
    if isinstance(value, (float, np.floating)):
        return Attr(name, "float", float(np.float32(value)))
    items = list(value)
    if all(isinstance(v, (bool, int, np.integer)) for v in items):
        return Attr(name, "ints", tuple(int(v) for v in items))
    if all(isinstance(v, (float, np.floating)) for v in items):
        return Attr(name, "floats", tuple(float(np.float32(v)) for v in items))
    raise TypeError(f"attribute {name!r}: unsupported value {value!r}")


def has_subgraphs(node: Node) -> bool:
    """Whether a node holds graphs (If, Loop, Scan)."""
    return any(a.kind in GRAPH_KINDS for a in node.attrs)
