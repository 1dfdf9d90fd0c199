"""The step inside the generator: copies of the step graph's nodes plus the pick, and the Scan
body made of them. Where the step is tf2onnx's one-layer graph, the body skips the step's
Transpose and Unsqueeze and carries the GRU's own time-major layout between characters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gru_edge.runtime import contract
from gru_edge.runtime.generator_cell import CellWeights, dense, gru, rows
from gru_edge.runtime.generator_pick import PREFIX, Builder, top_filter
from gru_edge.runtime.generator_spec import FLOAT, INT64, Graph, Node, ValueInfo


@dataclass(frozen=True)
class Layout:
    """Where a one-layer step graph turns ids into the GRU's time-major input and the state
    into its [1, batch, units] initial state, and the GRU's final state."""

    transpose: Node  # [batch, time, vocab] -> [time, batch, vocab]
    unsqueeze: Node  # state -> initial_h
    final_state: str  # the GRU's Y_h, [1, batch, units]


def time_major(step_nodes: list[Node]) -> Layout | None:
    """The layout of tf2onnx's one-layer step (Gather or OneHot of ids, Transpose, Unsqueeze of
    the state into a GRU, Squeeze of its Y_h into state_out), or None for any other graph,
    whose body then keeps the step's own layout."""
    made_by = {out: node for node in step_nodes for out in node.outputs}
    grus = [node for node in step_nodes if node.op_type == "GRU"]
    if len(grus) != 1 or len(grus[0].inputs) < 6 or len(grus[0].outputs) < 2:
        return None
    gru = grus[0]
    transpose, unsqueeze = made_by.get(gru.inputs[0]), made_by.get(gru.inputs[5])
    squeeze = made_by.get(contract.OUTPUT_STATE)
    encode = transpose and transpose.inputs and made_by.get(transpose.inputs[0])
    perm = transpose.attr("perm") if transpose is not None else None
    if not (
        transpose is not None
        and transpose.op_type == "Transpose"
        and list(perm or []) == [1, 0, 2]
        and encode
        and contract.INPUT_IDS in encode.inputs
        and unsqueeze is not None
        and unsqueeze.op_type == "Unsqueeze"
        and unsqueeze.inputs[:1] == (contract.INPUT_STATE,)
        and squeeze is not None
        and squeeze.op_type == "Squeeze"
        and squeeze.inputs[:1] == (gru.outputs[1],)
    ):
        return None
    uses = [
        n for n in step_nodes for i in n.inputs if i in (transpose.outputs[0], unsqueeze.outputs[0])
    ]
    if len(uses) != 2:  # something else reads them in the step's layout
        return None
    return Layout(transpose, unsqueeze, gru.outputs[1])


def step_and_pick(
    b: Builder,
    step_nodes: list[Node],
    vocab: int,
    kind: str,
    ids: str,
    state: str,
    noise_row: str | None,
    filters: dict[str, str] | None,
    layout: Layout | None = None,
) -> tuple[str, str, str]:
    """The step graph's nodes on (ids, state), then the pick: (next id [batch, 1], state after
    ``ids``, the step's logits [batch, vocab] as computed, before any filter). With ``layout``,
    ``ids`` is time-major [1, batch] and ``state`` the GRU's [1, batch, units], and so are the id
    ([batch], scanned out as it is) and the state returned."""
    renamed = {contract.INPUT_IDS: ids, contract.INPUT_STATE: state}
    for node in step_nodes:
        for name in node.outputs:
            if name:
                renamed[name] = b.name("s")  # short: the step is copied six times
    skipped: tuple = ()
    if layout is not None:
        skipped = (layout.transpose, layout.unsqueeze)
        renamed[layout.transpose.outputs[0]] = renamed[layout.transpose.inputs[0]]
        renamed[layout.unsqueeze.outputs[0]] = state
    for node in step_nodes:
        if any(node is other for other in skipped):
            continue
        b.nodes.append(
            Node(
                node.op_type,
                tuple(renamed.get(n, n) for n in node.inputs),
                tuple(renamed.get(n, n) for n in node.outputs),
                b.name(node.op_type),
                node.attrs,
                node.domain,
                node.origin,
            )
        )
    logits = renamed[contract.OUTPUT_LOGITS]
    if layout is not None:  # the id as [batch]
        nxt = pick(b, logits, vocab, kind, noise_row, filters, keepdims=0)
        return nxt, renamed[layout.final_state], logits
    nxt = pick(b, logits, vocab, kind, noise_row, filters, keepdims=1)
    return nxt, renamed[contract.OUTPUT_STATE], logits


def pick(
    b: Builder,
    logits: str,
    vocab: int,
    kind: str,
    noise_row: str | None,
    filters: dict[str, str] | None,
    keepdims: int,
) -> str:
    """The ``kind`` pick on ``logits`` [batch, vocab]: the first of equal maxima of the
    (filtered) logits plus this character's noise, as [batch, 1] or (``keepdims`` 0) [batch]."""
    if kind != "greedy":
        if kind == "filtered":
            logits = top_filter(b, logits, vocab, filters or {})
        logits = b.op("Add", [logits, noise_row])
    return b.op("ArgMax", [logits], axis=1, keepdims=keepdims)


def step_body(
    step_nodes: list[Node],
    vocab: int,
    kind: str,
    with_noise: bool,
    filters: dict[str, str] | None,
    layout: Layout | None = None,
) -> Graph:
    """The Scan body, one character: states (cur, st), scan input this character's noise.

    With ``layout`` the states are kept as the GRU reads and writes them (ids [1, batch], state
    [1, batch, units]), which drops the step's Transpose and Unsqueeze, and the id scanned out
    is the ArgMax itself: three nodes fewer per character than the step graph's own layout.
    """
    b = Builder(f"{PREFIX}{kind[0]}/b/")
    cur, st, n_i = (b.name(n) for n in ("cur", "st", "noise"))
    # The logits are scanned out as they are (a copy, no node) and summed once per call.
    nxt, state_out, sums = step_and_pick(
        b, step_nodes, vocab, kind, cur, st, n_i if with_noise else None, filters, layout
    )
    if layout is not None:
        nxt_scan, nxt = nxt, b.op("Unsqueeze", [nxt, b.const([0], np.int64)])
    else:
        nxt_scan = b.name("ids")
        b.add("Identity", [nxt], [nxt_scan], nxt_scan + "_id")
    return b.graph(
        f"gen_{kind}_body",
        [ValueInfo(cur, INT64), ValueInfo(st, FLOAT), ValueInfo(n_i, FLOAT)],
        [
            ValueInfo(nxt, INT64),
            ValueInfo(state_out, FLOAT),
            ValueInfo(nxt_scan, INT64),
            ValueInfo(sums, FLOAT),
        ],
    )


def cell_body(
    weights: CellWeights,
    vocab: int,
    kind: str,
    with_noise: bool,
    filters: dict[str, str] | None,
) -> Graph:
    """Version 4's Scan body, one character through the cell (runtime.generator_cell): states
    (the id's rows of the cell's two tables, the state [batch, units]), scan input this
    character's noise; the id is scanned out as ArgMax writes it and its rows are gathered for
    the next."""
    b = Builder(f"{PREFIX}{kind[0]}/b/")
    xzr, xn, st, n_i = (b.name(n) for n in ("xzr", "xn", "st", "noise"))
    state_out = gru(b, weights, (xzr, xn), st)
    logits = dense(b, weights, state_out)
    nxt = pick(b, logits, vocab, kind, n_i if with_noise else None, filters, keepdims=0)
    following = rows(b, weights, nxt)
    return b.graph(
        f"gen_{kind}_body",
        [ValueInfo(name, FLOAT) for name in (xzr, xn, st, n_i)],
        [
            *(ValueInfo(name, FLOAT) for name in following),
            ValueInfo(state_out, FLOAT),
            ValueInfo(nxt, INT64),
            ValueInfo(logits, FLOAT),
        ],
    )
