"""Refuse a generator that is not the one gru-edge writes for the file's step.

A gru-edge/2 file carries its generator (runtime.generator_build) beside its step graph. The
step is the model (any weights, checked against Keras when it was exported); the generator is
specified text: derived from the step, it either writes what the specification gives or the
file was edited. So the loader takes the file's step nodes (every top-level node whose name
does not start with the generator's prefix; from version 4 a one-layer file's step is the
generator's cell, whose weights runtime.generator_cell.source_in_file finds), builds the
generator for them again, and compares it with the file's: nodes, names, inputs, outputs,
attributes and constants at every depth, the defaults of the generator's inputs and the
outputs' declared types. The first difference is
named in a one-line ModelFileError.

The step itself cannot be derived, so it is limited instead: only the operators a tf2onnx
step is made of (STEP_OPS: no control flow, nothing that allocates from a value such as
ConstantOfShape, Range or Tile), no subgraphs, and it reads only ``ids``, ``state``, its own
initializers and its own outputs (never the generator's inputs, which the host loop leaves at
their defaults).
"""

from __future__ import annotations

import numpy as np

from gru_edge.runtime import contract
from gru_edge.runtime.errors import ModelFileError, shown
from gru_edge.runtime.generator_build import (
    DEFAULT_NAMES,
    META_GENERATOR,
    VERSION_1,
    VERSION_4,
    VERSIONS,
    build_generator,
    since,
)
from gru_edge.runtime.generator_cell import source_in_file
from gru_edge.runtime.generator_compare import differences, structure_differs
from gru_edge.runtime.generator_pick import PREFIX
from gru_edge.runtime.generator_spec import (
    Graph,
    Tensor,
    has_subgraphs,
)
from gru_edge.runtime.generator_structure import Defaults

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
    width = _state_width(graph, where)
    vocab_size = _logits_width(graph, vocab_size)
    step = _step(graph, vocab_size, where)
    source = source_in_file(graph, width) if since(version, VERSION_4) else None
    expected = build_generator(step, vocab_size, width, version, source)
    if defaults is None:
        problem = differences(graph, step, expected)
    else:
        problem = structure_differs(graph, step, expected, defaults)
    if problem:
        raise ModelFileError(
            f"{where}: its generator is not the one gru-edge writes for its step ({problem}); "
            "the file was edited after export: re-export it from its run directory"
        )


def _step(graph: Graph, vocab_size: int, where: str, generator: bool = True) -> Graph:
    """The step's nodes and initializers, refused if they do what a step cannot (a OneHot's
    depth, which sizes what it allocates, must be the vocabulary's size). Without a
    ``generator`` what the step reads is left to the contract check, which names it better."""
    nodes = [n for n in graph.nodes if not n.name.startswith(PREFIX)]
    inits = [
        t
        for t in graph.initializers
        if not t.name.startswith(PREFIX) and t.name not in DEFAULT_NAMES
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
        if unknown and generator:
            raise ModelFileError(
                f"{where}: {label} reads {shown(unknown[0])}, which is not ids, state, a weight "
                "or another step node's output; re-export the model"
            )
        if node.op_type == "OneHot" and not _holds(inits, node.inputs[1:2], vocab_size):
            raise ModelFileError(
                f"{where}: {label} one-hot encodes to another depth than the vocabulary's "
                f"{vocab_size} characters; re-export the model"
            )
        bad = [n for n in node.outputs if n.startswith(PREFIX) or n in DEFAULT_NAMES]
        if bad:
            raise ModelFileError(f"{where}: {label} writes {shown(bad[0])}; re-export the model")
        known.update(node.outputs)
    return Graph(graph.name, nodes, [], [], inits)


def _logits_width(graph: Graph, vocab_size: int) -> int:
    """The logits' declared width where the file states one, else ``vocab_size``: a vocabulary
    of another size is refused later, by the contract check, in its own words."""
    logits = next((o for o in graph.outputs if o.name == contract.OUTPUT_LOGITS), None)
    declared = logits.shape if logits is not None else None
    if declared and len(declared) == 2 and isinstance(declared[1], int) and declared[1] > 0:
        return declared[1]
    return vocab_size


def _holds(inits: list[Tensor], names: tuple[str, ...], value: int) -> bool:
    """Whether ``names`` is one initializer holding the single number ``value``."""
    tensor = next((t for t in inits if names and t.name == names[0]), None)
    return tensor is not None and tensor.holds(np.array([value]))


def _state_width(graph: Graph, where: str) -> int:
    state = next((i for i in graph.inputs if i.name == contract.INPUT_STATE), None)
    dims = state.shape if state is not None else None
    if not dims or len(dims) != 2 or not isinstance(dims[1], int) or dims[1] < 1:
        raise ModelFileError(
            f"{where}: its state input has no fixed width ({shown(dims)}); re-export the model"
        )
    return dims[1]


def check_file_generator(
    data: bytes, metadata: dict[str, str], vocab_size: int, opset: int, where: str
) -> None:
    """check_generator for a file's bytes (ONNX or ORT format) when the file has a generator
    (any of its inputs, outputs or nodes); a step-only file (gru-edge/1) gets the step's
    limits alone."""
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
        names & (DEFAULT_NAMES | set(contract.GENERATOR_OUTPUTS))
        or any(n.name.startswith(PREFIX) for n in graph.nodes)
        or META_GENERATOR in metadata
    ):
        defaults = schema_defaults(opset) if ort_format else None
        check_generator(graph, vocab_size, metadata.get(META_GENERATOR), where, defaults)
    else:
        _step(graph, _logits_width(graph, vocab_size), where, generator=False)
