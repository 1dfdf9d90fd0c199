"""Model files from elsewhere that try something: a tensor kept outside the file, in each place
ONNX allows one, and metadata that onnx.helper cannot write (raw bytes, repeated keys).

Each external-data model is a contract model whose ``dense_b`` (or, where no operator reads a
tensor, an extra one) says its data is in EXTERNAL_FILE, and the data is really there: had the
loader not refused, onnxruntime would have read it from the current directory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx_models import OPSET, make_model

EXTERNAL_FILE = "weights.bin"


def external_tensor(name: str, array: np.ndarray) -> TensorProto:
    """A tensor whose data ONNX would read from EXTERNAL_FILE, offset 0."""
    tensor = numpy_helper.from_array(array, name)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", EXTERNAL_FILE), ("offset", "0")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _sparse(name: str, array: np.ndarray) -> onnx.SparseTensorProto:
    indices = numpy_helper.from_array(np.arange(array.size, dtype=np.int64), f"{name}_indices")
    return helper.make_sparse_tensor(external_tensor(name, array), indices, list(array.shape))


def _constant(output: str, name: str, array: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [output], value=external_tensor(name, array))


def _branch(name: str, output: str, array: np.ndarray) -> onnx.GraphProto:
    out = helper.make_tensor_value_info(output, TensorProto.FLOAT, list(array.shape))
    return helper.make_graph([_constant(output, name, array)], f"{name}_graph", [], [out])


def _if(output: str, branch: onnx.GraphProto, cond: str = "always") -> list[onnx.NodeProto]:
    true = helper.make_tensor(f"{cond}_value", TensorProto.BOOL, [], [True])
    return [
        helper.make_node("Constant", [], [cond], value=true),
        helper.make_node("If", [cond], [output], then_branch=branch, else_branch=branch),
    ]


def _function(nodes: list[onnx.NodeProto]) -> onnx.FunctionProto:
    return helper.make_function("local", "Bias", [], ["b"], nodes, [helper.make_opsetid("", OPSET)])


# Each takes (model, its graph, the Add node that adds dense_b, the tensor's name, dense_b's
# values) with dense_b's initializer already removed, and puts the tensor back from outside.
_Place = Callable[[onnx.ModelProto, onnx.GraphProto, onnx.NodeProto, str, np.ndarray], object]


def _nested(name: str, bias: np.ndarray) -> list[onnx.NodeProto]:
    out = helper.make_tensor_value_info("outer_out", TensorProto.FLOAT, list(bias.shape))
    inner = _if("outer_out", _branch(name, "inner_out", bias), cond="inner_cond")
    return _if("dense_b", helper.make_graph(inner, "outer", [], [out]))


def _default_attribute(name: str, bias: np.ndarray) -> onnx.FunctionProto:
    constant = helper.make_node("Constant", [], ["b"])
    constant.attribute.append(
        onnx.AttributeProto(name="value", ref_attr_name="w", type=onnx.AttributeProto.TENSOR)
    )
    function = _function([constant])
    function.attribute_proto.append(helper.make_attribute("w", external_tensor(name, bias)))
    return function


def _use_function(model: onnx.ModelProto, function: onnx.FunctionProto) -> None:
    model.functions.append(function)
    model.opset_import.append(helper.make_opsetid("local", 1))
    model.graph.node.insert(0, helper.make_node("Bias", [], ["dense_b"], domain="local"))


def _initializer(where, tensor, add: onnx.NodeProto) -> None:
    where.append(tensor)
    add.input[1] = tensor.values.name if isinstance(tensor, onnx.SparseTensorProto) else tensor.name


def _extra(graph: onnx.GraphProto, add: onnx.NodeProto, values: list, bias: np.ndarray) -> None:
    """No operator reads a list of tensors or graphs: keep dense_b and add them as an extra
    attribute, which onnxruntime would refuse only after the loader has looked."""
    graph.initializer.append(numpy_helper.from_array(bias, "dense_b"))
    add.attribute.append(helper.make_attribute("extra", values))


def _training_info(model: onnx.ModelProto, graph, add, name: str, bias: np.ndarray) -> None:
    graph.initializer.append(numpy_helper.from_array(bias, "dense_b"))
    init = helper.make_graph([], "init", [], [], initializer=[external_tensor(name, bias)])
    model.training_info.add().initialization.CopyFrom(init)


PLACES: dict[str, _Place] = {
    "graph initializer": lambda m, g, add, name, bias: _initializer(
        g.initializer, external_tensor(name, bias), add
    ),
    "sparse initializer": lambda m, g, add, name, bias: _initializer(
        g.sparse_initializer, _sparse(name, bias), add
    ),
    "node attribute t": lambda m, g, add, name, bias: g.node.insert(
        0, _constant("dense_b", name, bias)
    ),
    "node attribute sparse_tensor": lambda m, g, add, name, bias: g.node.insert(
        0, helper.make_node("Constant", [], ["dense_b"], sparse_value=_sparse(name, bias))
    ),
    "node attribute tensors": lambda m, g, add, name, bias: _extra(
        g, add, [external_tensor(name, bias)], bias
    ),
    "node attribute sparse_tensors": lambda m, g, add, name, bias: _extra(
        g, add, [_sparse(name, bias)], bias
    ),
    "subgraph": lambda m, g, add, name, bias: g.node.extend(
        _if("dense_b", _branch(name, "branch_out", bias))
    ),
    "subgraph list": lambda m, g, add, name, bias: _extra(
        g, add, [_branch(name, "out", bias)], bias
    ),
    "nested subgraph": lambda m, g, add, name, bias: g.node.extend(_nested(name, bias)),
    "function node": lambda m, g, add, name, bias: _use_function(
        m, _function([_constant("b", name, bias)])
    ),
    "function attribute default": lambda m, g, add, name, bias: _use_function(
        m, _default_attribute(name, bias)
    ),
    "subgraph in a function": lambda m, g, add, name, bias: _use_function(
        m, _function(_if("b", _branch(name, "branch_out", bias)))
    ),
    "training info": _training_info,
}


def write_external_in(folder: Path, where: str, **kwargs) -> tuple[Path, str]:
    """A contract model with one tensor stored as external data in ``where`` (a PLACES key),
    and that data in ``folder``/EXTERNAL_FILE; returns the model's path and the tensor's name."""
    model = make_model(**kwargs)
    graph = model.graph
    (bias_proto,) = [t for t in graph.initializer if t.name == "dense_b"]
    graph.initializer.remove(bias_proto)
    bias = numpy_helper.to_array(bias_proto)
    add = next(n for n in graph.node if n.op_type == "Add")
    name = where.replace(" ", "_")
    PLACES[where](model, graph, add, name, bias)
    (Path(folder) / EXTERNAL_FILE).write_bytes(bias.tobytes())
    path = Path(folder) / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    return path, name


def with_raw_metadata(data: bytes, key: bytes, value: bytes) -> bytes:
    """A serialized model plus one metadata_props entry of raw bytes (protobuf merges a field
    appended to a message, so this is the model with one more entry)."""
    return data + _field(14, _field(1, key) + _field(2, value))


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def shared_subgraph_ort(levels: int = 60) -> bytes:
    """An ORT-format model whose graph nests ``levels`` deep, each graph's one node having an
    attribute that lists the next graph twice (FlatBuffers let two references share a table):
    2**levels paths in a few kilobytes."""
    import flatbuffers
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs import (
        Attribute,
        Graph,
        InferenceSession,
        Model,
        Node,
        OperatorSetId,
    )

    builder = flatbuffers.Builder(1024)
    graph = _ort_graph(builder, Graph, [])
    for _ in range(levels):
        name = builder.CreateString("branches")
        Attribute.StartGraphsVector(builder, 2)
        builder.PrependUOffsetTRelative(graph)
        builder.PrependUOffsetTRelative(graph)
        graphs = builder.EndVector()
        node = _graphs_node(builder, Attribute, Node, graphs, name)
        graph = _ort_graph(builder, Graph, [node])
    domain = builder.CreateString("")
    OperatorSetId.Start(builder)
    OperatorSetId.AddDomain(builder, domain)
    OperatorSetId.AddVersion(builder, OPSET)
    opset = OperatorSetId.End(builder)
    Model.StartOpsetImportVector(builder, 1)
    builder.PrependUOffsetTRelative(opset)
    opsets = builder.EndVector()
    Model.Start(builder)
    Model.AddIrVersion(builder, 8)
    Model.AddOpsetImport(builder, opsets)
    Model.AddGraph(builder, graph)
    return _finish_ort(builder, InferenceSession, Model.End(builder))


def shared_vector_ort(graphs: int = 300, nodes: int = 300) -> bytes:
    """An ORT-format model whose one node lists ``graphs`` distinct graphs that all share one
    vector of ``nodes`` references to one node: graphs x nodes tables to read in a few KB."""
    import flatbuffers
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs import (
        Attribute,
        Graph,
        InferenceSession,
        Model,
        Node,
    )

    builder = flatbuffers.Builder(1024)
    Node.Start(builder)
    node = Node.End(builder)
    Graph.StartNodesVector(builder, nodes)
    for _ in range(nodes):
        builder.PrependUOffsetTRelative(node)
    shared = builder.EndVector()
    tables = []
    for index in range(graphs):
        Graph.Start(builder)
        Graph.AddNodes(builder, shared)
        Graph.AddMaxNodeIndex(builder, index + 1)  # a field apart, so no two tables dedupe
        tables.append(Graph.End(builder))
    Attribute.StartGraphsVector(builder, graphs)
    for table in reversed(tables):
        builder.PrependUOffsetTRelative(table)
    vector = builder.EndVector()
    top = _ort_graph(builder, Graph, [_graphs_node(builder, Attribute, Node, vector)])
    Model.Start(builder)
    Model.AddGraph(builder, top)
    return _finish_ort(builder, InferenceSession, Model.End(builder))


def _graphs_node(
    builder, attribute_module, node_module, graphs: int, name: int | None = None
) -> int:
    """A node whose one attribute lists the graphs of the finished vector ``graphs``."""
    attribute_module.Start(builder)
    if name is not None:
        attribute_module.AddName(builder, name)
    attribute_module.AddGraphs(builder, graphs)
    attribute = attribute_module.End(builder)
    node_module.StartAttributesVector(builder, 1)
    builder.PrependUOffsetTRelative(attribute)
    attributes = builder.EndVector()
    node_module.Start(builder)
    node_module.AddAttributes(builder, attributes)
    return node_module.End(builder)


def _finish_ort(builder, session_module, model: int) -> bytes:
    """The ORT-format file of a finished Model table."""
    session_module.Start(builder)
    session_module.AddModel(builder, model)
    builder.Finish(session_module.End(builder), file_identifier=b"ORTM")
    return bytes(builder.Output())


def _ort_graph(builder, graph_module, nodes: list[int]) -> int:
    graph_module.StartNodesVector(builder, len(nodes))
    for node in reversed(nodes):
        builder.PrependUOffsetTRelative(node)
    vector = builder.EndVector()
    graph_module.Start(builder)
    graph_module.AddNodes(builder, vector)
    return graph_module.End(builder)


def write_ort_twin(onnx_bytes: bytes, path: Path) -> Path:
    """``onnx_bytes`` converted to the ORT format by onnxruntime itself, as `export --ort`
    converts (exporter.mobile: constant folding off, which the generator check relies on),
    written to ``path``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(path)
    options.add_session_config_entry("session.save_model_format", "ORT")
    options.log_severity_level = 4
    ort.InferenceSession(
        onnx_bytes,
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=["NchwcTransformer", "ConstantFolding"],
    )
    return path
