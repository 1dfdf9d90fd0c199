"""Refuse a generator that is not the one gru-edge writes for the file's step.

A gru-edge/2 file carries its generator (runtime.generator_build) beside its step graph. The
step is the model (any weights, checked against Keras when it was exported); the generator is
specified text: derived from the step, it either writes what the specification gives or the
file was edited. So the loader takes the file's step nodes (every top-level node whose name
does not start with the generator's prefix), builds the generator for them again, and compares
it with the file's: nodes, names, inputs, outputs, attributes and constants at every depth,
the defaults of the generator's inputs and the outputs' declared types. The first difference is
named in a one-line ModelFileError.

The step itself cannot be derived, so it is limited instead: only the operators a tf2onnx
step is made of (STEP_OPS: no control flow, nothing that allocates from a value such as
ConstantOfShape, Range or Tile), no subgraphs, and it reads only ``ids``, ``state``, its own
initializers and its own outputs (never the generator's inputs, which the host loop leaves at
their defaults).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gru_edge.runtime import contract
from gru_edge.runtime.errors import ModelFileError, shown
from gru_edge.runtime.generator_build import (
    GENERATOR_INPUTS,
    META_GENERATOR,
    VERSION_1,
    VERSIONS,
    build_generator,
)
from gru_edge.runtime.generator_pick import PREFIX
from gru_edge.runtime.generator_spec import Attr, Graph, Node, Tensor, has_subgraphs
from gru_edge.runtime.generator_structure import Structure

# What tf2onnx makes of a tf-keras Embedding/one-hot input, GRU layers (fused GRU, or a
# Keras 3 GRU's pieces outside a Loop), Dropout at inference, Dense and their glue, plus the
# float16 weights' Casts. Anything else in a step is refused: it could iterate or allocate
# without bound before any check of ours runs.
_OPS = (
    "Add Cast Concat Constant Div Flatten Gather GRU Identity MatMul Gemm Mul OneHot Relu Reshape"
)
STEP_OPS = frozenset(
    f"{_OPS} Sigmoid Slice Split Softmax Squeeze Sub Tanh Transpose Unsqueeze".split()
)
_DEFAULT_NAMES = {name for name, _, _ in GENERATOR_INPUTS}
Defaults = Callable[[str], dict[str, Attr]]


def _no_defaults(op_type: str) -> dict[str, Attr]:
    return {}


def check_generator(
    graph: Graph,
    vocab_size: int,
    version: str | None,
    where: str,
    defaults: Defaults | None = None,
) -> None:
    """Raise ModelFileError unless ``graph`` (a file's main graph) holds exactly the generator
    gru-edge writes for its step; ``version`` is the file's ``generator`` metadata (None when
    absent: the first version). ``defaults(op_type)`` gives the attribute values an operator
    has when a node leaves them out, which onnxruntime writes into the nodes of a `.ort` file:
    such an attribute is accepted where gru-edge writes none."""
    version = VERSION_1 if version is None else version
    if version not in VERSIONS:
        raise ModelFileError(
            f"{where}: generator version {shown(version)} (metadata {META_GENERATOR!r}) is not "
            f"one this gru-edge knows ({', '.join(VERSIONS)}); upgrade gru-edge or re-export"
        )
    step = _step(graph, where)
    width = _state_width(graph, where)
    # The logits' declared width where the file states one: a vocabulary of another size is
    # refused later, by the contract check, in its own words.
    logits = next((o for o in graph.outputs if o.name == contract.OUTPUT_LOGITS), None)
    declared = logits.shape if logits is not None else None
    if declared and len(declared) == 2 and isinstance(declared[1], int) and declared[1] > 0:
        vocab_size = declared[1]
    expected = build_generator(step, vocab_size, width, version)
    if defaults is None:
        problem = _differences(graph, step, expected, _no_defaults)
    else:
        problem = _differences(graph, step, expected, defaults, structural=True)
    if problem:
        raise ModelFileError(
            f"{where}: its generator is not the one gru-edge writes for its step ({problem}); "
            "the file was edited after export: re-export it from its run directory"
        )


def _step(graph: Graph, where: str) -> Graph:
    """The step's nodes and initializers, refused if they do what a step cannot."""
    nodes = [n for n in graph.nodes if not n.name.startswith(PREFIX)]
    inits = [
        t
        for t in graph.initializers
        if not t.name.startswith(PREFIX) and t.name not in _DEFAULT_NAMES
    ]
    known = {contract.INPUT_IDS, contract.INPUT_STATE, ""} | {t.name for t in inits}
    for node in nodes:
        label = f"step node {shown(node.name or node.op_type)}"
        if (
            node.op_type not in STEP_OPS
            or node.domain not in ("", "ai.onnx")
            or has_subgraphs(node)
        ):
            raise ModelFileError(
                f"{where}: {label} is a {shown(node.op_type)}, which no gru-edge step holds "
                "(a step is a GRU, a Dense layer and their glue); re-export the model"
            )
        unknown = [name for name in node.inputs if name not in known]
        if unknown:
            raise ModelFileError(
                f"{where}: {label} reads {shown(unknown[0])}, which is not ids, state, a weight "
                "or another step node's output; re-export the model"
            )
        bad = [n for n in node.outputs if n.startswith(PREFIX) or n in _DEFAULT_NAMES]
        if bad:
            raise ModelFileError(f"{where}: {label} writes {shown(bad[0])}; re-export the model")
        known.update(node.outputs)
    return Graph(graph.name, nodes, [], [], inits)


def _state_width(graph: Graph, where: str) -> int:
    state = next((i for i in graph.inputs if i.name == contract.INPUT_STATE), None)
    dims = state.shape if state is not None else None
    if not dims or len(dims) != 2 or not isinstance(dims[1], int) or dims[1] < 1:
        raise ModelFileError(
            f"{where}: its state input has no fixed width ({shown(dims)}); re-export the model"
        )
    return dims[1]


def _differences(
    graph: Graph, step: Graph, expected: Any, defaults: Defaults, structural: bool = False
) -> str:
    """The first difference between the file's generator and ``expected``, or ""."""
    infos = {i.name: i for i in graph.inputs}
    for want in expected.inputs:
        got = infos.get(want.name)
        if got is None or (got.elem, got.shape) != (want.elem, want.shape):
            return f"input {shown(want.name)}"
    outputs = {o.name: o for o in graph.outputs}
    for want in expected.outputs:
        got = outputs.get(want.name)
        if got is None or (got.elem, got.shape) != (want.elem, want.shape):
            return f"output {shown(want.name)}"
    inits = {t.name: t for t in graph.initializers}
    for want in expected.defaults:
        if want.name not in inits:
            return f"input {shown(want.name)} has no default"
        if _tensor_key(inits[want.name]) != _tensor_key(want):
            return f"the default of input {shown(want.name)} differs"
    if structural:
        return _structure_differs(graph, step, expected, defaults)
    step_inits = {t.name for t in step.initializers} | _DEFAULT_NAMES
    got_consts = {name: t for name, t in inits.items() if name not in step_inits}
    want_consts = {t.name: t for t in expected.constants}
    problem = _compare_constants(got_consts, want_consts, "")
    if problem:
        return problem
    generated = [n for n in graph.nodes if n.name.startswith(PREFIX)]
    return _compare_nodes(generated, expected.nodes, "", defaults)


def _structure_differs(graph: Graph, step: Graph, expected: Any, defaults: Defaults) -> str:
    """runtime.generator_structure's comparison (for `.ort` files, which onnxruntime optimised
    when it wrote them): what the generator's outputs are computed from, and every node."""
    derived = Graph(
        graph.name,
        step.nodes + expected.nodes,
        graph.inputs,
        graph.outputs,
        [*step.initializers, *expected.defaults, *expected.constants],
    )
    missing = _missing
    try:
        mine = Structure(graph, defaults, missing, top_level=True)
        want = Structure(derived, defaults, missing, top_level=True)
        for out in expected.outputs:
            if mine.value(out.name) != want.value(out.name):
                return f"what output {shown(out.name)} is computed from"
        generated = [n for n in graph.nodes if n.name.startswith(PREFIX)]
        if mine.nodes(generated) != want.nodes(expected.nodes):
            return "the nodes of its generator"
    except RecursionError:
        return "a chain of nodes too long to compare"
    return ""


def _missing(name: str) -> str:
    return f"missing {name}"


def _compare_constants(got: dict[str, Tensor], want: dict[str, Tensor], where: str) -> str:
    for name, tensor in want.items():
        if name not in got:
            return f"constant {shown(name)}{where} is missing"
        if _tensor_key(got[name]) != _tensor_key(tensor):
            return f"constant {shown(name)}{where} differs"
    extra = sorted(set(got) - set(want))
    return f"unexpected constant {shown(extra[0])}{where}" if extra else ""


def _compare_nodes(got: list[Node], want: list[Node], where: str, defaults: Defaults) -> str:
    by_name: dict[str, Node] = {}
    for node in got:
        if node.name in by_name:
            return f"two nodes named {shown(node.name)}{where}"
        by_name[node.name] = node
    names = {n.name for n in want}
    extra = [n.name for n in got if n.name not in names]
    if extra:
        return f"unexpected node {shown(extra[0])}{where}"
    for node in want:
        other = by_name.get(node.name)
        if other is None:
            return f"node {shown(node.name)}{where} is missing"
        label = f"node {shown(node.name)}{where}"
        for field in ("op_type", "domain", "inputs", "outputs"):
            if getattr(other, field) != getattr(node, field):
                return f"{label}: its {field.replace('_', ' ')} differs"
        problem = _compare_attrs(other.attrs, node.attrs, label, defaults(node.op_type), defaults)
        if problem:
            return problem
    return ""


def _compare_attrs(
    got: tuple[Attr, ...],
    want: tuple[Attr, ...],
    label: str,
    implied: dict[str, Attr],
    defaults: Defaults,
) -> str:
    wanted = {a.name for a in want}
    got = tuple(a for a in got if a.name in wanted or implied.get(a.name, a) != a)
    if sorted(a.name for a in got) != sorted(wanted):
        return f"{label}: its attributes differ"
    mine = {a.name: a for a in got}
    for attr in want:
        other = mine[attr.name]
        what = f"{label}: attribute {shown(attr.name)} differs"
        if other.kind != attr.kind:
            return what
        if attr.kind == "graph":
            where = f" in {attr.name} of {label[5:]}"
            problem = _compare_graphs(other.value, attr.value, where, defaults)
            if problem:
                return problem
        elif attr.kind == "tensor":
            if _tensor_key(other.value) != _tensor_key(attr.value):
                return what
        elif attr.kind in ("graphs", "tensors") or other.value != attr.value:
            return what  # the generator uses neither; a step copy's are refused in the step
    return ""


def _compare_graphs(got: Graph, want: Graph, where: str, defaults: Defaults) -> str:
    """Subgraphs: inputs and outputs by name, constants (Constant nodes or initializers, which
    onnxruntime turns them into) by value, the other nodes as _compare_nodes."""
    if [i.name for i in got.inputs] != [i.name for i in want.inputs]:
        return f"the inputs{where} differ"
    if [o.name for o in got.outputs] != [o.name for o in want.outputs]:
        return f"the outputs{where} differ"
    got_consts, got_nodes = _split_constants(got)
    want_consts, want_nodes = _split_constants(want)
    return _compare_constants(got_consts, want_consts, where) or _compare_nodes(
        got_nodes, want_nodes, where, defaults
    )


def _split_constants(graph: Graph) -> tuple[dict[str, Tensor], list[Node]]:
    consts = {t.name: t for t in graph.initializers}
    nodes = []
    for node in graph.nodes:
        value = node.attrs[0] if len(node.attrs) == 1 else Attr("", "", None)
        if (
            node.op_type == "Constant"
            and node.domain in ("", "ai.onnx")
            and (value.name, value.kind, len(node.outputs)) == ("value", "tensor", 1)
        ):
            consts[node.outputs[0]] = value.value
            continue
        nodes.append(node)
    return consts, nodes


def _tensor_key(tensor: Tensor | None) -> tuple:
    if tensor is None:
        return ()
    return (tensor.elem, tuple(tensor.dims), tensor.data)


def check_file_generator(
    data: bytes, metadata: dict[str, str], vocab_size: int, opset: int, where: str
) -> None:
    """check_generator for a file's bytes (ONNX or ORT format), when the file has a generator
    (any of its inputs, outputs or nodes); a step-only file (gru-edge/1) passes."""
    from gru_edge.runtime.onnx_graph import read_main_graph
    from gru_edge.runtime.onnx_proto import ProtoError
    from gru_edge.runtime.ort_format import is_ort_format
    from gru_edge.runtime.ort_graph import read_ort_main_graph, schema_defaults

    ort_format = is_ort_format(data)
    try:
        graph = read_ort_main_graph(data) if ort_format else read_main_graph(data)
    except ProtoError as exc:
        raise ModelFileError(f"{where}: cannot read its graph ({exc}); re-export it") from None
    names = {i.name for i in graph.inputs} | {o.name for o in graph.outputs}
    if (
        names & (_DEFAULT_NAMES | set(contract.GENERATOR_OUTPUTS))
        or any(n.name.startswith(PREFIX) for n in graph.nodes)
        or META_GENERATOR in metadata
    ):
        defaults = schema_defaults(opset) if ort_format else None
        check_generator(graph, vocab_size, metadata.get(META_GENERATOR), where, defaults)
