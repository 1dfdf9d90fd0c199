"""The generator in onnx protos: runtime.generator_build describes it (without the ``onnx``
package, so the loader can derive it again to check a file), this turns the description into
the nodes, initializers, inputs and outputs a ModelProto gains. Only the exporter and the tests
build graphs; the runtime just runs and checks them."""

from __future__ import annotations

from typing import Any

import onnx
from onnx import helper, numpy_helper

from gru_edge.runtime.generator_build import LATEST, META_GENERATOR, MIN_OPSET, build_generator
from gru_edge.runtime.generator_spec import ATTRIBUTE_KINDS, Attr, Graph, Node, Tensor, ValueInfo

__all__ = ["MIN_OPSET", "add_generator", "step_graph"]


def add_generator(
    model: onnx.ModelProto, vocab_size: int, state_width: int, version: str = LATEST
) -> None:
    """Add the generator to a contract step model, in place (see runtime.generator_build),
    and name its ``version`` in the metadata (META_GENERATOR), which the loader derives it by.
    A writer that replaces the metadata afterwards must keep that key."""
    graph = model.graph
    gen = build_generator(step_graph(graph), vocab_size, state_width, version)
    graph.input.extend(_value_info(info) for info in gen.inputs)
    graph.initializer.extend(_tensor(t) for t in gen.defaults)
    graph.node.extend(_node(n) for n in gen.nodes)
    graph.initializer.extend(_tensor(t) for t in gen.constants)
    graph.output.extend(_value_info(info) for info in gen.outputs)
    kept = [p for p in model.metadata_props if p.key != META_GENERATOR]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=META_GENERATOR, value=version)
    opset = next(o for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset.version < MIN_OPSET:
        raise ValueError(f"the generator needs opset {MIN_OPSET} or newer, got {opset.version}")


def step_graph(graph: onnx.GraphProto) -> Graph:
    """A step graph's nodes (each keeping its proto as ``origin``) and initializer names."""
    return Graph(
        graph.name,
        [_spec_node(node) for node in graph.node],
        [],
        [],
        [Tensor(t.name, t.data_type, tuple(t.dims), None) for t in graph.initializer],
    )


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
