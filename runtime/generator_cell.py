"""Generator version 4's GRU cell: a one-layer step as plain matrix products and gates, in
place of onnxruntime's fused GRU kernel, wherever the step is tf2onnx's one-layer graph.

For one id the fused kernel multiplies a one-hot row by W (a GEMM that only selects a row),
allocates scratch and combines the biases on every call. The cell instead gathers the id's rows
of a table computed once from the step's own weights (XT = W^T plus the biases that add
linearly), multiplies the state by R (two Gemms) and applies the gates (linear_before_reset, as
the step's GRU):

    xzr, xn = XT[id]    z, r = sigmoid(h Rzr^T + xzr)    n = tanh(xn + r * (h Rn^T + Rbn))
    h' = n + z * (h - n)

Its rounding differs from the fused kernel's, so the cell replaces the file's step too (a Scan of
it over the ids' time axis, ``step``): the host loop, every client that steps the file and the
generator's body compute the same bits, and a window ends where its ids fed one at a time end.
Everything here is derived from the step's weights; the loader finds them again in the file
(``source_in_file``), derives it all again and compares (runtime.generator_check). Figures in
docs/benchmarks.md."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gru_edge.runtime import contract
from gru_edge.runtime.generator_pick import PREFIX, Builder
from gru_edge.runtime.generator_spec import FLOAT, Graph, Node, Tensor, ValueInfo
from gru_edge.runtime.generator_structure import UNIT_GEMM

_GRU_DEFAULTS = {"direction": b"forward", "layout": 0, "activations": (b"Sigmoid", b"Tanh")}


@dataclass(frozen=True)
class CellSource:
    """The names in a one-layer step that the cell is derived from."""

    units: int
    w: str  # GRU W [1, 3 units, vocab]
    table: str  # "": ids one-hot encoded (the cell's table is W^T); else projected rows gathered
    r: str  # GRU R [1, 3 units, units]
    b: str  # GRU B [1, 6 units]
    dense_w: str  # [units, vocab]
    dense_b: str  # [vocab]
    nodes: tuple[Node, ...]  # the step's nodes that read ids or state, in order


@dataclass(frozen=True)
class CellWeights:
    """Top-level values the cell reads (computed once from the step's weights)."""

    tables: tuple[str, str]  # XT split [vocab, 2 units], [vocab, units]: W^T, Wb, Rb's z and r
    r_zr: str  # R^T's z and r columns [units, 2 units]
    r_n: str  # R^T's n columns [units, units]
    bias_n: str  # Rb's n part [units] (multiplied by r)
    dense_w: str
    dense_b: str
    gates: str  # split sizes [units, units]


def find_cell(step: Graph, step_nodes: list[Node], vocab: int) -> CellSource | None:
    """The cell's sources in ``step_nodes`` (the nodes of ``step`` that read ids or state, as
    generator_build._per_step gives them), or None unless the step is exactly tf2onnx's
    one-layer graph: a one-hot encoding of ids (OneHot, or Gather from an identity table),
    Transpose, Unsqueeze of the state, one GRU with linear_before_reset and default gates,
    Squeeze of its final state into state_out, and a Dense (MatMul + Add, or Gemm) into logits."""
    made = {out: node for node in step_nodes for out in node.outputs}
    gru = made.get(_input(made.get(contract.OUTPUT_STATE), 0, "Squeeze"))
    if gru is None or gru.op_type != "GRU" or len(gru.inputs) != 6 or gru.inputs[4]:
        return None
    values = {a.name: a.value for a in gru.attrs}
    units = values.pop("hidden_size", None)
    if values.pop("linear_before_reset", 0) != 1 or not isinstance(units, int):
        return None
    if any(_GRU_DEFAULTS.get(k, object()) != v for k, v in values.items()):
        return None
    if gru.outputs[1:2] != (made[contract.OUTPUT_STATE].inputs[0],):
        return None
    transpose, unsqueeze = made.get(gru.inputs[0]), made.get(gru.inputs[5])
    encode = made.get(_input(transpose, 0, "Transpose"))
    w, r, b = gru.inputs[1:4]
    table = _table(encode, _constants(step), vocab, w, units)
    if (
        transpose is None
        or transpose.attr("perm") != (1, 0, 2)
        or _input(unsqueeze, 0, "Unsqueeze") != contract.INPUT_STATE
        or table is None
    ):
        return None
    dense = _dense(made, made.get(contract.OUTPUT_LOGITS))
    used = {id(n) for n in (encode, transpose, unsqueeze, gru, made[contract.OUTPUT_STATE])}
    if dense is None or len(step_nodes) != len(used) + len(dense[2]):
        return None
    return CellSource(units, w, table, r, b, dense[0], dense[1], tuple(step_nodes))


def _input(node: Node | None, index: int, op_type: str) -> str | None:
    if node is None or node.op_type != op_type or len(node.inputs) <= index:
        return None
    return node.inputs[index]


def _constants(step: Graph) -> dict[str, Tensor]:
    """The step's initializers by name, and a float16 weight's Cast (exporter.precision) by its
    output's name as the initializer it reads (the values compared below are exact in both)."""
    inits = {t.name: t for t in step.initializers}
    for node in step.nodes:
        cast = node.op_type == "Cast" and node.attr("to") == FLOAT and node.inputs[:1]
        if cast and node.inputs[0] in inits:
            inits.setdefault(node.outputs[0], inits[node.inputs[0]])
    return inits


def _table(
    node: Node | None, inits: dict[str, Tensor], vocab: int, w: str, units: int
) -> str | None:
    """How ``node`` encodes ids, as the cell's table source: "" for one-hot (OneHot(ids, vocab,
    [0, 1]) on the last axis, or a Gather of ids from an identity table), the table's name for a
    Gather of projected rows [vocab, 3 units] into a GRU whose W is the identity (the trainer's
    large vocabularies, trainer.model.projects_input), None for anything else. Either way the
    cell's table holds the very values the GRU multiplied by."""
    if node is None:
        return None
    if node.op_type == "OneHot":
        one_hot = (
            node.inputs[:1] == (contract.INPUT_IDS,)
            and node.attr("axis") in (None, -1)
            and _values(inits, node.inputs[1:2], np.array([vocab]))
            and _values(inits, node.inputs[2:3], np.array([0.0, 1.0]))
        )
        return "" if one_hot else None
    if not (
        node.op_type == "Gather"
        and node.inputs[1:] == (contract.INPUT_IDS,)
        and node.attr("axis") in (None, 0)
    ):
        return None
    if _values(inits, node.inputs[:1], np.eye(vocab)):
        return ""
    rows = inits.get(node.inputs[0])
    projected = rows is not None and tuple(rows.dims) == (vocab, 3 * units)
    return node.inputs[0] if projected and _values(inits, (w,), np.eye(3 * units)) else None


def _values(inits: dict[str, Tensor], names: tuple[str, ...], want: np.ndarray) -> bool:
    tensor = inits.get(names[0]) if names else None
    return tensor is not None and tensor.holds(want)


def _dense(made: dict[str, Node], last: Node | None) -> tuple[str, str, tuple[Node, ...]] | None:
    """(weights, bias, nodes) of the Dense layer that writes logits from state_out."""
    if last is not None and last.op_type == "Gemm" and len(last.inputs) == 3:
        unit = all(UNIT_GEMM.get(a.name, object()) == a.value for a in last.attrs)
        if unit and last.inputs[0] == contract.OUTPUT_STATE:
            return last.inputs[1], last.inputs[2], (last,)
    if last is None or last.op_type != "Add" or len(last.inputs) != 2:
        return None
    for product, bias in (last.inputs, last.inputs[::-1]):
        matmul = made.get(product)
        is_matmul = matmul is not None and matmul.op_type == "MatMul"
        if is_matmul and matmul.inputs[0] == contract.OUTPUT_STATE:
            return matmul.inputs[1], bias, (matmul, last)
    return None


def cell_weights(top: Builder, src: CellSource) -> CellWeights:
    """The top-level nodes that compute the cell's tables, R and bias from the step's weights
    (they read weights alone: onnxruntime computes them once, when it loads the file). B and R
    come first, then W (absent for projected rows): source_in_file reads them in that order."""
    u, i64 = src.units, np.int64
    axis0, halves = top.const([0], i64), top.const([2 * u, u], i64)
    w_b, r_zr, r_n = top.op(
        "Split", [top.op("Squeeze", [src.b, axis0]), top.const([3 * u, 2 * u, u], i64)], 3
    )
    zeros = top.const(np.zeros(u), np.float32)
    linear = top.op("Add", [w_b, top.op("Concat", [r_zr, zeros], axis=0)])
    r_t = top.op("Transpose", [top.op("Squeeze", [src.r, axis0])], perm=[1, 0])
    r_t_zr, r_t_n = top.op("Split", [r_t, halves], 2, axis=1)
    x = src.table or top.op("Transpose", [top.op("Squeeze", [src.w, axis0])], perm=[1, 0])
    return CellWeights(
        tables=top.op("Split", [top.op("Add", [x, linear]), halves], 2, axis=1),
        r_zr=r_t_zr,
        r_n=r_t_n,
        bias_n=r_n,
        dense_w=src.dense_w,
        dense_b=src.dense_b,
        gates=top.const([u, u], i64),
    )


def rows(b: Builder, w: CellWeights, ids: str) -> tuple[str, str]:
    """The rows of the cell's tables for ``ids`` [batch]: the input projections of the ids."""
    return (b.op("Gather", [w.tables[0], ids], axis=0), b.op("Gather", [w.tables[1], ids], axis=0))


def gru(b: Builder, w: CellWeights, xp: tuple[str, str], h: str) -> str:
    """The GRU cell on ``xp`` (the ids' rows, ``rows``) and the state ``h`` [batch, units]: the
    next state. The z and r inputs enter as Gemm's C, one node fewer than adding them after."""
    z, r = b.op("Split", [b.op("Sigmoid", [b.op("Gemm", [h, w.r_zr, xp[0]])]), w.gates], 2, axis=1)
    h_n = b.op("Gemm", [h, w.r_n, w.bias_n])
    n = b.op("Tanh", [b.op("Add", [xp[1], b.op("Mul", [r, h_n])])])
    return b.op("Add", [n, b.op("Mul", [z, b.op("Sub", [h, n])])])


def dense(b: Builder, w: CellWeights, h: str, name: str | None = None) -> str:
    """The logits [batch, vocab] of the state ``h``."""
    if name is None:
        return b.op("Gemm", [h, w.dense_w, w.dense_b])
    b.add("Gemm", [h, w.dense_w, w.dense_b], [name], b.name("Gemm"))
    return name


def step(top: Builder, w: CellWeights) -> None:
    """The file's step as version 4 writes it, in place of tf2onnx's: the ids' rows gathered
    time-major, a Scan of the cell over them from ``state`` (its final state is
    ``state_out``), and the logits of that state. One id and a window are the same cell, so a
    prime fed whole or one id at a time ends in the same bits, as the generator's body does."""
    u = Builder(PREFIX + "step/b/")
    h, x_zr, x_n = (u.name(n) for n in ("h", "xzr", "xn"))
    body = u.graph(
        "step_body",
        [ValueInfo(h, FLOAT), ValueInfo(x_zr, FLOAT), ValueInfo(x_n, FLOAT)],
        [ValueInfo(gru(u, w, (x_zr, x_n), h), FLOAT)],
    )
    by_time = rows(top, w, top.op("Transpose", [contract.INPUT_IDS], perm=[1, 0]))
    top.add(
        "Scan",
        [contract.INPUT_STATE, *by_time],
        [contract.OUTPUT_STATE],
        PREFIX + "step_Scan",
        num_scan_inputs=2,
        body=body,
    )
    dense(top, w, contract.OUTPUT_STATE, contract.OUTPUT_LOGITS)


def source_in_file(graph: Graph, units: int) -> CellSource | None:
    """A version 4 file's cell source, read from the nodes ``cell_weights`` wrote (its Squeezes
    read B, R and then W; the last Add adds the projected rows, where W is not read; the Gemm
    that writes logits reads the Dense layer), or None where there are none. Whatever it
    returns, the loader derives the whole generator from it and compares it with the file's,
    so a wrong guess is a refusal, never a file let through."""
    top = [n for n in graph.nodes if n.name.startswith(PREFIX) and n.inputs]
    squeezes = [n.inputs[0] for n in top if n.op_type == "Squeeze"]
    adds = [n.inputs[0] for n in top if n.op_type == "Add"]
    logits = [n for n in graph.nodes if contract.OUTPUT_LOGITS in n.outputs]
    if len(squeezes) < 2 or not adds or len(logits) != 1 or logits[0] not in top:
        return None
    if logits[0].op_type != "Gemm" or len(logits[0].inputs) != 3:
        return None
    b, r = squeezes[:2]
    w, table = (squeezes[2], "") if len(squeezes) > 2 else ("", adds[-1])
    dense_w, dense_b = logits[0].inputs[1:]
    return CellSource(units, w, table, r, b, dense_w, dense_b, ())
