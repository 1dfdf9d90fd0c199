"""The comparisons behind runtime.generator_check: a file's generator against the one derived
from its step, exactly (names, attributes, constants at every depth: `.onnx` files) or by what
it computes (runtime.generator_structure: `.ort` files, which onnxruntime optimised). Each
returns the first difference in words, or "" when there is none."""

from __future__ import annotations

from gru_edge.runtime.errors import shown
from gru_edge.runtime.generator_build import DEFAULT_NAMES, Generator
from gru_edge.runtime.generator_pick import PREFIX
from gru_edge.runtime.generator_spec import Attr, Graph, Node, Tensor
from gru_edge.runtime.generator_structure import Defaults, Structure


def differences(graph: Graph, step: Graph, expected: Generator) -> str:
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
    step_inits = {t.name for t in step.initializers} | DEFAULT_NAMES
    got_consts = {name: t for name, t in inits.items() if name not in step_inits}
    want_consts = {t.name: t for t in expected.constants}
    problem = _compare_constants(got_consts, want_consts, "")
    if problem:
        return problem
    generated = [n for n in graph.nodes if n.name.startswith(PREFIX)]
    return _compare_nodes(generated, expected.nodes, "")


def structure_differs(graph: Graph, step: Graph, expected: Generator, defaults: Defaults) -> str:
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


def _compare_nodes(got: list[Node], want: list[Node], where: str) -> str:
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
        problem = _compare_attrs(other.attrs, node.attrs, label)
        if problem:
            return problem
    return ""


def _compare_attrs(got: tuple[Attr, ...], want: tuple[Attr, ...], label: str) -> str:
    if sorted(a.name for a in got) != sorted(a.name for a in want):
        return f"{label}: its attributes differ"
    mine = {a.name: a for a in got}
    for attr in want:
        other = mine[attr.name]
        what = f"{label}: attribute {shown(attr.name)} differs"
        if other.kind != attr.kind:
            return what
        if attr.kind == "graph":
            where = f" in {attr.name} of {label[5:]}"
            problem = _compare_graphs(other.value, attr.value, where)
            if problem:
                return problem
        elif attr.kind == "tensor":
            if _tensor_key(other.value) != _tensor_key(attr.value):
                return what
        elif attr.kind in ("graphs", "tensors") or other.value != attr.value:
            return what  # the generator uses neither; a step copy's are refused in the step
    return ""


def _compare_graphs(got: Graph, want: Graph, where: str) -> str:
    """Subgraphs: inputs and outputs by name, constants (Constant nodes or initializers, which
    onnxruntime turns them into) by value, the other nodes as _compare_nodes."""
    if [i.name for i in got.inputs] != [i.name for i in want.inputs]:
        return f"the inputs{where} differ"
    if [o.name for o in got.outputs] != [o.name for o in want.outputs]:
        return f"the outputs{where} differ"
    got_consts, got_nodes = _split_constants(got)
    want_consts, want_nodes = _split_constants(want)
    return _compare_constants(got_consts, want_consts, where) or _compare_nodes(
        got_nodes, want_nodes, where
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
