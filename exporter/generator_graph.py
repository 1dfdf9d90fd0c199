"""The generator in onnx protos: runtime.generator_build describes it (without the ``onnx``
package, so the loader can derive it again to check a file), this turns the description into
the nodes, initializers, inputs and outputs a ModelProto gains. Only the exporter and the tests
build graphs; the runtime just runs and checks them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import onnx
from onnx import helper, numpy_helper

from gru_edge.runtime.generator_build import LATEST, META_GENERATOR, MIN_OPSET, build_generator
from gru_edge.runtime.generator_pick import PREFIX
from gru_edge.runtime.generator_spec import ATTRIBUTE_KINDS, Attr, Graph, Node, Tensor, ValueInfo

__all__ = ["MIN_OPSET", "add_generator", "graphs", "step_graph"]


def add_generator(
    model: onnx.ModelProto, vocab_size: int, state_width: int, version: str = LATEST
) -> None:
    """Add the generator to a contract step model, in place (see runtime.generator_build),
    and name its ``version`` in the metadata (META_GENERATOR), which the loader derives it by.
    A writer that replaces the metadata afterwards must keep that key."""
    graph = model.graph
    gen = build_generator(step_graph(graph), vocab_size, state_width, version)
    nodes = [_node(n) for n in gen.nodes]
    replaced = {node.outputs for node in gen.moved}  # version 4: the cell is the step now
    kept = [node for node in graph.node if tuple(node.output) not in replaced]
    del graph.node[:]
    graph.node.extend(kept)
    graph.input.extend(_value_info(info) for info in gen.inputs)
    graph.initializer.extend(_tensor(t) for t in gen.defaults)
    graph.node.extend(nodes)
    graph.initializer.extend(_tensor(t) for t in gen.constants)
    if replaced:
        _drop_unread(graph)
    graph.output.extend(_value_info(info) for info in gen.outputs)
    kept = [p for p in model.metadata_props if p.key != META_GENERATOR]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=META_GENERATOR, value=version)
    opset = next(o for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset.version < MIN_OPSET:
        raise ValueError(f"the generator needs opset {MIN_OPSET} or newer, got {opset.version}")


def _drop_unread(graph: onnx.GraphProto) -> None:
    """Remove the top-level nodes and initializers nothing reads any more (what only the
    replaced step read: its one-hot table, a float16 weight's Cast of it, axes constants)."""
    while True:
        read = _reads(graph) | {o.name for o in graph.output}
        unread = [
            n
            for n in graph.node
            if not n.name.startswith(PREFIX) and not any(o in read for o in n.output)
        ]
        for node in unread:
            graph.node.remove(node)
        if not unread:
            break
    kept = [t for t in graph.initializer if t.name in read or t.name.startswith(PREFIX)]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _reads(graph: onnx.GraphProto) -> set[str]:
    """Every name a node of ``graph`` or of its subgraphs reads."""
    return {name for sub in graphs(graph) for node in sub.node for name in node.input}


def graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph in it, depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from graphs(attr.g)


def step_graph(graph: onnx.GraphProto) -> Graph:
    """A step graph's nodes (each keeping its proto as ``origin``) and initializer names."""
    return Graph(
        graph.name,
        [_spec_node(node) for node in graph.node],
        [],
        [],
        [Tensor(t.name, t.data_type, tuple(t.dims), _raw(t)) for t in graph.initializer],
    )


def _raw(tensor: onnx.TensorProto) -> bytes | None:
    # As the loader reads a file's tensors: raw bytes, or None for any other storage.
    return tensor.raw_data if tensor.HasField("raw_data") else None


def _spec_node(node: onnx.NodeProto) -> Node:
    attrs = tuple(_spec_attr(a) for a in node.attribute)
    return Node(
        node.op_type, tuple(node.input), tuple(node.output), node.name, attrs, node.domain, node
    )


def _spec_attr(attr: onnx.AttributeProto) -> Attr:
    kind = ATTRIBUTE_KINDS.get(attr.type, f"type {attr.type}")
    value: Any = helper.get_attribute_value(attr)
    if kind in ("ints", "floats", "strings", "graphs", "tensors"):
        value = tuple(value)
    return Attr(attr.name, kind, value)  # graphs and tensors stay protos: only copied


def _node(node: Node) -> onnx.NodeProto:
    if node.origin is not None:  # a copy of a step node: everything but its names as it was
        copy = onnx.NodeProto()
        copy.CopyFrom(node.origin)
        copy.name = node.name
        copy.input[:] = list(node.inputs)
        copy.output[:] = list(node.outputs)
        return copy
    values = {a.name: _attr_value(a) for a in node.attrs}
    return helper.make_node(
        node.op_type,
        list(node.inputs),
        list(node.outputs),
        name=node.name,
        domain=node.domain or None,
        **values,
    )


def _attr_value(attr: Attr) -> Any:
    if attr.kind == "graph":
        return _graph(attr.value)
    if attr.kind == "tensor":
        return _tensor(attr.value)
    if attr.kind in ("ints", "floats", "strings"):
        return list(attr.value)
    return attr.value


def _graph(graph: Graph) -> onnx.GraphProto:
    return helper.make_graph(
        [_node(n) for n in graph.nodes],
        graph.name,
        [_value_info(i) for i in graph.inputs],
        [_value_info(o) for o in graph.outputs],
        initializer=[_tensor(t) for t in graph.initializers],
    )


def _tensor(tensor: Tensor) -> onnx.TensorProto:
    return numpy_helper.from_array(tensor.array(), tensor.name)


def _value_info(info: ValueInfo) -> onnx.ValueInfoProto:
    elem = info.elem if info.elem is not None else onnx.TensorProto.UNDEFINED
    shape = None if info.shape is None else list(info.shape)
    return helper.make_tensor_value_info(info.name, elem, shape)
