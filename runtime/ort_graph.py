"""An ORT-format file's main graph as runtime.generator_spec describes graphs: the twin of
runtime.onnx_graph for `.ort` files, read with the FlatBuffers bindings the onnxruntime wheel
ships. A subgraph stored once but referenced twice (FlatBuffers can share tables; no file
gru-edge writes does) is refused rather than walked once per path."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from gru_edge.runtime.generator_spec import ATTRIBUTE_KINDS, Attr, Graph, Node, Tensor, ValueInfo
from gru_edge.runtime.onnx_proto import ProtoError

_MAX_DEPTH = 64
_TENSOR_TYPE = 1  # TypeInfoValue.tensor_type
_DIM_VALUE, _DIM_PARAM = 1, 2  # DimensionValueType


def read_ort_main_graph(data: bytes) -> Graph:
    """The model's graph; raise ProtoError if there is none or the bytes are broken."""
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py import fbs

    try:
        model = fbs.InferenceSession.InferenceSession.GetRootAs(data, 0).Model()
        graph = model.Graph() if model is not None else None
        if graph is None:
            raise ProtoError("no graph")
        return _Reader(fbs).graph(graph, 1)
    except ProtoError:
        raise
    except Exception as exc:  # the bindings raise struct/index errors on broken buffers
        raise ProtoError(f"broken ORT-format data ({type(exc).__name__})") from None


class _Reader:
    def __init__(self, fbs: Any):
        self._fbs = fbs
        self._seen: set[int] = set()

    def graph(self, graph: Any, depth: int) -> Graph:
        if depth > _MAX_DEPTH:
            raise ProtoError(f"graphs nested more than {_MAX_DEPTH} deep")
        if graph._tab.Pos in self._seen:
            raise ProtoError("a subgraph is shared between nodes")
        self._seen.add(graph._tab.Pos)
        infos = {}
        for i in range(graph.NodeArgsLength()):
            info = self._value_info(graph.NodeArgs(i))
            infos[info.name] = info
        inputs = [_text(graph.Inputs(i)) for i in range(graph.InputsLength())]
        outputs = [_text(graph.Outputs(i)) for i in range(graph.OutputsLength())]
        nodes = [graph.Nodes(i) for i in range(graph.NodesLength())]
        return Graph(
            "",
            [self._node(n, depth) for n in nodes if n is not None],
            [infos.get(name, ValueInfo(name)) for name in inputs],
            [infos.get(name, ValueInfo(name)) for name in outputs],
            [_tensor(graph.Initializers(i)) for i in range(graph.InitializersLength())],
        )

    def _node(self, node: Any, depth: int) -> Node:
        return Node(
            _text(node.OpType()),
            tuple(_text(node.Inputs(i)) for i in range(node.InputsLength())),
            tuple(_text(node.Outputs(i)) for i in range(node.OutputsLength())),
            _text(node.Name()),
            tuple(self._attr(node.Attributes(i), depth) for i in range(node.AttributesLength())),
            _text(node.Domain()),
        )

    def _attr(self, attr: Any, depth: int) -> Attr:
        kind = ATTRIBUTE_KINDS.get(attr.Type(), f"type {attr.Type()}")
        name = _text(attr.Name())
        value: Any = None
        if kind == "float":
            value = attr.F()
        elif kind == "int":
            value = attr.I()
        elif kind == "string":
            value = bytes(attr.S() or b"")
        elif kind == "tensor":
            value = _tensor(attr.T()) if attr.T() is not None else None
        elif kind == "graph":
            value = self.graph(attr.G(), depth + 1) if attr.G() is not None else None
        elif kind == "floats":
            value = tuple(attr.Floats(i) for i in range(attr.FloatsLength()))
        elif kind == "ints":
            value = tuple(attr.Ints(i) for i in range(attr.IntsLength()))
        elif kind == "strings":
            value = tuple(bytes(attr.Strings(i)) for i in range(attr.StringsLength()))
        return Attr(name, kind, value)

    def _value_info(self, info: Any) -> ValueInfo:
        result = ValueInfo(_text(info.Name()))
        type_info = info.Type()
        if type_info is None or type_info.ValueType() != _TENSOR_TYPE:
            return result
        table = type_info.Value()
        tensor_type = self._fbs.TensorTypeAndShape.TensorTypeAndShape()
        tensor_type.Init(table.Bytes, table.Pos)
        result.elem = tensor_type.ElemType()
        shape = tensor_type.Shape()
        if shape is not None:
            dims: list[int | str] = []
            for i in range(shape.DimLength()):
                value = shape.Dim(i).Value()
                if value is None or value.DimType() not in (_DIM_VALUE, _DIM_PARAM):
                    dims.append("?")
                elif value.DimType() == _DIM_VALUE:
                    dims.append(value.DimValue())
                else:
                    dims.append(_text(value.DimParam()))
            result.shape = tuple(dims)
        return result


def _tensor(tensor: Any) -> Tensor:
    raw = None if tensor.RawDataIsNone() else tensor.RawDataAsNumpy().tobytes()
    dims = tuple(int(tensor.Dims(i)) for i in range(tensor.DimsLength()))
    return Tensor(_text(tensor.Name()), tensor.DataType(), dims, raw)


def _text(raw: bytes | None) -> str:
    return (raw or b"").decode("utf-8", errors="replace")


@functools.cache
def _schemas(opset: int) -> dict[str, dict[str, Attr]]:
    """Default attribute values of the ai.onnx operators as of ``opset`` (~40 ms, once)."""
    from onnxruntime.capi import _pybind_state

    from gru_edge.runtime.onnx_graph import read_attribute

    newest: dict[str, Any] = {}
    for schema in _pybind_state.get_all_operator_schema():
        if schema.domain not in ("", "ai.onnx") or schema.since_version > opset:
            continue
        if schema.name not in newest or schema.since_version > newest[schema.name].since_version:
            newest[schema.name] = schema
    return {
        name: {
            key: read_attribute(attr._default_value)
            for key, attr in schema.attributes.items()
            if attr._default_value
        }
        for name, schema in newest.items()
    }


def schema_defaults(opset: int) -> Callable[[str], dict[str, Attr]]:
    """``op_type -> {attribute name: default}`` for ai.onnx operators as of ``opset``: the
    attributes onnxruntime writes into a `.ort` file's nodes where the ONNX file had none."""
    schemas = _schemas(opset)
    return lambda op_type: schemas.get(op_type, {})
