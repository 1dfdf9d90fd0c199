"""Model files whose generator was edited after export (issue 19 item 2), built from a small
contract model: each edit is what a hand or a tool could do to a file, and each changes what
the in-graph engine writes (or how it runs) while the step, and so the host loop, is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx_models import DEFAULT_VOCAB, make_model

from gru_edge.exporter.generator_graph import add_generator, graphs
from gru_edge.runtime.generator_build import VERSION_3
from gru_edge.runtime.randomness import GOLDEN


def _constant(graph: onnx.GraphProto, value: float, dtype: type) -> onnx.NodeProto:
    """The first Constant node in ``graph`` or below holding exactly ``value``."""
    for sub in graphs(graph):
        for node in sub.node:
            if node.op_type == "Constant":
                array = numpy_helper.to_array(node.attribute[0].t)
                if array.dtype == dtype and array.shape == () and array == value:
                    return node
    raise LookupError(value)


def _set_constant(node: onnx.NodeProto, value: float, dtype: type) -> None:
    tensor = node.attribute[0].t
    tensor.CopyFrom(numpy_helper.from_array(np.array(value, dtype=dtype), tensor.name))


def _node(graph: onnx.GraphProto, name: str) -> tuple[onnx.GraphProto, onnx.NodeProto]:
    for sub in graphs(graph):
        for node in sub.node:
            if node.name == name:
                return sub, node
    raise LookupError(name)


def golden_constant(model: onnx.ModelProto) -> None:
    """One constant of the random stream: SplitMix64's golden ratio, one bit off."""
    node = _constant(model.graph, GOLDEN, np.uint64)
    _set_constant(node, GOLDEN ^ 1, np.uint64)


def greedy_test(model: onnx.ModelProto) -> None:
    """``temperature == 0`` becomes ``temperature == -1``: temperature 0 no longer greedy."""
    sub, equal = _first(model.graph, lambda n: n.op_type == "Equal" and n.name.startswith("gen/r/"))
    const = next(n for n in sub.node if n.output[0] == equal.input[1])
    _set_constant(const, -1.0, np.float32)


def _first(graph: onnx.GraphProto, match: Callable) -> tuple[onnx.GraphProto, onnx.NodeProto]:
    """The first node ``match`` accepts, and the graph it is in (names depend on the version)."""
    for sub in graphs(graph):
        for node in sub.node:
            if match(node):
                return sub, node
    raise LookupError("no such node")


def _output_edit(model: onnx.ModelProto, output: str, make: Callable) -> None:
    """Route the run branch's ``output`` through nodes made by ``make(sub, source)``."""
    sub, identity = _node(model.graph, f"gen/r/{output}_id")
    moved = onnx.NodeProto()
    moved.CopyFrom(identity)
    sub.node.remove(identity)
    moved.input[0] = make(sub, moved.input[0])
    sub.node.append(moved)  # after the nodes ``make`` added: still topologically sorted


def _add_const(sub: onnx.GraphProto, name: str, array: np.ndarray) -> str:
    value = numpy_helper.from_array(array, name)
    sub.node.insert(0, helper.make_node("Constant", [], [name], value=value, name=name + "_c"))
    return name


def scaled_noise(model: onnx.ModelProto) -> None:
    """``T * g`` becomes ``2 * g``: the noise no longer follows the temperature."""
    sub, gumbel = _first(model.graph, lambda n: n.op_type == "Gather" and "/s/" in n.name)
    mul = next(n for n in sub.node if n.op_type == "Mul" and gumbel.output[0] in n.input)
    mul.input[1] = _add_const(sub, "tamper/two", np.array(2.0, dtype=np.float32))


def one_wide(model: onnx.ModelProto) -> None:
    """``generated`` keeps only its first column, whatever ``steps`` asks."""

    def make(sub, source):
        starts = _add_const(sub, "tamper/s", np.array([0], dtype=np.int64))
        ends = _add_const(sub, "tamper/e", np.array([1], dtype=np.int64))
        axes = _add_const(sub, "tamper/a", np.array([1], dtype=np.int64))
        sub.node.append(helper.make_node("Slice", [source, starts, ends, axes], ["tamper/o"]))
        return "tamper/o"

    _output_edit(model, "generated", make)


def ids_shifted(model: onnx.ModelProto, by: int = 1000) -> None:
    """Every generated id moved by ``by``: outside the vocabulary."""

    def make(sub, source):
        shift = _add_const(sub, "tamper/by", np.array(by, dtype=np.int64))
        sub.node.append(helper.make_node("Add", [source, shift], ["tamper/o"]))
        return "tamper/o"

    _output_edit(model, "generated", make)


def five_thousand_wide(model: onnx.ModelProto) -> None:
    """``generated`` tiled 5,000 times along its steps."""

    def make(sub, source):
        reps = _add_const(sub, "tamper/reps", np.array([1, 5000], dtype=np.int64))
        sub.node.append(helper.make_node("Tile", [source, reps], ["tamper/o"]))
        return "tamper/o"

    _output_edit(model, "generated", make)


def failing_reshape(model: onnx.ModelProto) -> None:
    """A Reshape inside the generator that cannot reshape: onnxruntime fails at run time."""

    def make(sub, source):
        shape = _add_const(sub, "tamper/shape", np.array([7, 3, 5], dtype=np.int64))
        sub.node.append(helper.make_node("Reshape", [source, shape], ["tamper/o"]))
        return "tamper/o"

    _output_edit(model, "generated", make)


def steps_default(model: onnx.ModelProto, steps: int = 10**12) -> None:
    """The ``steps`` default (0: the generator skipped) becomes ``steps``."""
    init = next(t for t in model.graph.initializer if t.name == "steps")
    init.CopyFrom(numpy_helper.from_array(np.array(steps, dtype=np.int64), "steps"))


def allocating_step(model: onnx.ModelProto) -> None:
    """A ConstantOfShape of 2 GiB in the step, added to the logits as zero."""
    g = model.graph
    g.initializer.append(numpy_helper.from_array(np.array([1 << 29], dtype=np.int64), "big"))
    add = next(n for n in g.node if n.output[0] == "logits")
    add.output[0] = "logits_pre"
    g.node.extend(
        [
            helper.make_node("ConstantOfShape", ["big"], ["zeros"], name="alloc"),
            helper.make_node("ReduceSum", ["zeros"], ["zero"], keepdims=0, name="alloc_sum"),
            helper.make_node("Add", ["logits_pre", "zero"], ["logits"], name="alloc_add"),
        ]
    )


def deep_one_hot(model: onnx.ModelProto) -> None:
    """The step's OneHot made 10**12 deep (the GRU would refuse it, after the allocation)."""
    depth = next(t for t in model.graph.initializer if t.name == "depth")
    depth.CopyFrom(numpy_helper.from_array(np.array([10**12], dtype=np.int64), "depth"))


def step_reads_temperature(model: onnx.ModelProto) -> None:
    """The step's logits scaled by the generator's temperature input: the host loop, which
    leaves it at its default, would differ from the graph."""
    g = model.graph
    add = next(n for n in g.node if n.output[0] == "logits")
    add.output[0] = "logits_pre"
    g.node.append(helper.make_node("Mul", ["temperature", "logits_pre"], ["logits"], name="t"))


def cell_tanh(model: onnx.ModelProto) -> None:
    """The Tanh of the cell that is version 4's step made a Sigmoid: the step (the host loop's)
    no longer computes what the generator's Scan body computes."""
    _, node = _first(model.graph, lambda n: n.op_type == "Tanh" and "/step/b/" in n.name)
    node.op_type = "Sigmoid"


def cell_table(model: onnx.ModelProto) -> None:
    """The Add that folds the biases into the cell's input table made a Sub."""
    _, table = _first(
        model.graph, lambda n: n.op_type == "Add" and n.input[0].startswith("gen/transpose")
    )
    table.op_type = "Sub"


def renamed_node(model: onnx.ModelProto) -> None:
    """Only a name changed: still not the generator gru-edge writes."""
    _, node = _first(model.graph, lambda n: n.name.startswith("gen/r/Squeeze"))
    node.name = "gen/r/Squeezed"


EDITS: dict[str, tuple[Callable[[onnx.ModelProto], None], str]] = {
    # name: (edit, what the refusal names)
    "random stream constant": (golden_constant, "constant 'gen/s/c"),
    "temperature == 0 test": (greedy_test, "constant 'gen/r/c"),
    "T * g with a constant": (scaled_noise, "unexpected constant 'tamper/two'"),
    "generated 1 wide": (one_wide, "unexpected constant 'tamper/"),
    "ids out of range": (ids_shifted, "unexpected constant 'tamper/by'"),
    "failing Reshape": (failing_reshape, "unexpected constant 'tamper/shape'"),
    "steps default 10**12": (steps_default, "the default of input 'steps' differs"),
    "a renamed node": (renamed_node, "unexpected node 'gen/r/Squeezed'"),
    "ConstantOfShape in the step": (allocating_step, "step node 'alloc' is a 'ConstantOfShape'"),
    "OneHot 10**12 deep in the step": (
        deep_one_hot,
        "one-hot encodes to another depth than the vocabulary's",
    ),
    "step reads temperature": (step_reads_temperature, "step node 't' reads 'temperature'"),
    "the cell's Tanh a Sigmoid": (cell_tanh, "in body of 'gen/step_Scan': its op type"),
    "the cell table's Add a Sub": (cell_table, "its op type differs"),
}


def tampered(edit: Callable[[onnx.ModelProto], None], **kwargs) -> onnx.ModelProto:
    """A small contract model (GRU(8) unless told) with ``edit`` applied; an edit of the step's
    one-hot gets generator version 3, whose step is still tf2onnx's (version 4 replaces it)."""
    kwargs = {"units": 8, "seed": 3, **kwargs}
    if edit is deep_one_hot:
        model = make_model(generator=False, **kwargs)
        add_generator(model, len(DEFAULT_VOCAB), kwargs["units"], VERSION_3)
    else:
        model = make_model(**kwargs)
    edit(model)
    return model
