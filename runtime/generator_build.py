"""The generator inside the model file (gru-edge/2): what a step graph gains so that one call
writes text. The exporter adds it to the file (exporter.generator_graph); the loader derives it
again from a file's step and refuses a file whose generator differs (runtime.generator_check).
Both use this one builder, which needs no ``onnx`` package (runtime.generator_spec).

The step graph (ids, state -> logits, state_out) stays as it is, so a gru-edge/1 client keeps
working. Added beside it:

    inputs, each with a default (an initializer of the same name, so a client may leave it out):
      steps int64 [] = 0, temperature float32 [] = 1, top_k int64 [] = 0 (off),
      top_p float32 [] = 1 (off), seed int64 [] = 0, offset int64 [] = 0
    outputs:
      generated int64 [batch, steps]    the ids picked, one row per sample
      gen_state float32 [batch, width]  the state to feed generated[:, -1:] with next time
      logit_sums float32 [batch, steps] each step's logits summed: non-finite = broken model

One call feeds ``ids`` (the prime's last id, or the whole prime) from ``state``, then picks
``steps`` characters with runtime.sampler's rule and runtime.randomness' stream, both computed
here exactly as the host loop computes them. The first character comes from a copy of the step
graph's own nodes on ``ids`` (any length), the others from a Scan whose body is another copy
(the same kernels on the same values, so the same logits as a host loop stepping the file),
kept in the GRU's own layout where the step is tf2onnx's one-layer graph, plus the pick. With
``steps`` 0 an If skips all of it. Which body runs is chosen once per call by If nodes outside
the Scan: greedy (no noise at all), plain (noise, no filter), or filtered (top-k and/or top-p),
so a call pays only for what it asked. Per character the body costs 8 nodes for the quickstart
model (Gather GRU Squeeze MatMul Add Add ArgMax Unsqueeze); measured on it, a Loop over the
step's own layout with a per-step noise Gather and logits ReduceSum (13 nodes) ran at 82,000
chars/s, this at 96,000.

Versions: a file's metadata key ``generator`` names the generator it was written with; absent
means VERSION_1 (files exported before 2026-12-05). VERSION_2 adds ``row_temperature``,
``row_top_k``, ``row_top_p``, ``row_seed`` and ``row_offset``, [rows] each, empty by default:
fed, row b uses its own entry (a row seed is the stream key itself); empty, the scalar applies
to every row as in VERSION_1, on the same arithmetic. New inputs rather than scalars that may
also be vectors: the ONNX checker requires a main-graph input to state its rank, and
onnxruntime checks a fed tensor's rank against it. VERSION_3 (exports from 2026-12-05 evening
on) is VERSION_2 with the same noise values from cheaper nodes: the table from a float64 Range,
16-bit parts by Cast instead of a broadcast shift and mask (generator_pick.noise); batch 256 ~7%
faster, a session ~1.7 ms quicker to open and ~3 MB smaller at its peak. VERSION_4 (exports
from 2026-12-06 on) is VERSION_3 with a GRU cell of plain nodes where the step is tf2onnx's
one-layer graph (runtime.generator_cell): the cell replaces the step itself (a Scan of it over the
ids' time axis, so a window and single ids round alike), the first character is the step's own
output, and the Scan body is the cell plus the pick (15 nodes); elsewhere it is VERSION_3.
Figures in docs/benchmarks.md. Old versions stay buildable so that older files keep
verifying.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gru_edge.runtime import contract
from gru_edge.runtime.generator_cell import (
    CellSource,
    CellWeights,
    cell_weights,
    find_cell,
    rows,
    step,
)
from gru_edge.runtime.generator_pick import PREFIX, Builder, noise, row_filters, row_settings
from gru_edge.runtime.generator_spec import (
    DOUBLE,
    FLOAT,
    INT64,
    Graph,
    Node,
    Tensor,
    ValueInfo,
    has_subgraphs,
)
from gru_edge.runtime.generator_step import cell_body, pick, step_and_pick, step_body, time_major

MIN_OPSET = 18  # BitwiseXor (the random stream's SplitMix64)
META_GENERATOR = "generator"  # metadata key naming the body's version; absent = VERSION_1
VERSION_1 = "1"
VERSION_2 = "2"  # seed, offset, temperature, top_k and top_p per row: a scalar or [batch]
VERSION_3 = "3"  # version 2, the same values from cheaper noise nodes (generator_pick.noise)
VERSION_4 = "4"  # version 3, a one-layer step and body as a GRU cell of plain nodes
VERSIONS = (VERSION_1, VERSION_2, VERSION_3, VERSION_4)
LATEST = VERSION_4

# (name, element type, default)
GENERATOR_INPUTS = (
    (contract.INPUT_STEPS, INT64, 0),
    (contract.INPUT_TEMPERATURE, FLOAT, 1.0),
    (contract.INPUT_TOP_K, INT64, 0),
    (contract.INPUT_TOP_P, FLOAT, 1.0),
    (contract.INPUT_SEED, INT64, 0),
    (contract.INPUT_OFFSET, INT64, 0),
)
# Version 2: (name, element type, default), each [rows]; empty = the scalar for every row
ROW_INPUTS = tuple(
    (row, elem, [])
    for row, name in contract.ROW_INPUTS.items()
    for other, elem, _ in GENERATOR_INPUTS
    if other == name
)
DEFAULT_NAMES = frozenset(name for name, _, _ in GENERATOR_INPUTS + ROW_INPUTS)
_SCAN_TYPES = (INT64, FLOAT, FLOAT)  # a branch's outputs: ids, state, logit sums


@dataclass
class Generator:
    """What the generator adds to the step graph's top level, in the order it is added."""

    inputs: list[ValueInfo]  # steps, temperature, ... (scalars)
    defaults: list[Tensor]  # their initializers
    nodes: list[Node]  # Greater(steps, 0) and the If that runs the rest
    constants: list[Tensor]  # top-level initializers the nodes read
    outputs: list[ValueInfo]  # generated, gen_state, logit_sums
    moved: list[Node]  # the step's nodes the cell replaces (version 4): the exporter drops them


def build_generator(
    step_graph: Graph,
    vocab_size: int,
    state_width: int,
    version: str = VERSION_1,
    source: CellSource | None = None,
) -> Generator:
    """The generator for a contract step graph (its nodes and initializers; see the module
    docstring). From version 4 the cell's ``source`` is found in the step's nodes unless
    given (a loaded file's step is already the cell's). Raises ValueError for a step graph
    that already holds subgraphs."""
    if version not in VERSIONS:
        raise ValueError(f"unknown generator version {version!r}")
    if any(has_subgraphs(node) for node in step_graph.nodes):
        raise ValueError("the step graph already holds subgraphs; expected a plain step graph")
    per_row = version != VERSION_1
    inputs, defaults = [], []
    for name, elem, default in GENERATOR_INPUTS + (ROW_INPUTS if per_row else ()):
        shape = ("rows",) if name in contract.ROW_INPUTS else ()
        inputs.append(ValueInfo(name, elem, shape))
        defaults.append(Tensor.of(name, default, np.int64 if elem == INT64 else np.float32))

    top = Builder(PREFIX)
    step_nodes = _per_step(step_graph)
    if VERSIONS.index(version) < VERSIONS.index(VERSION_4):
        source = None
    elif source is None:
        source = find_cell(step_graph, step_nodes, vocab_size)
    weights = None if source is None else cell_weights(top, source)
    if weights is not None:
        step(top, weights)
    has_steps = top.op("Greater", [contract.INPUT_STEPS, top.const(0, np.int64)])
    outputs = [contract.OUTPUT_GENERATED, contract.OUTPUT_GEN_STATE, contract.OUTPUT_LOGIT_SUMS]
    lean = VERSIONS.index(version) >= VERSIONS.index(VERSION_3)
    run = _run_branch(step_nodes, vocab_size, per_row, lean, weights)
    top.add("If", [has_steps], outputs, PREFIX + "If_steps", then_branch=run, else_branch=_none())
    return Generator(
        inputs=inputs,
        defaults=defaults,
        nodes=top.nodes,
        constants=top.constants,
        outputs=[
            ValueInfo(contract.OUTPUT_GENERATED, INT64, ("batch", "steps")),
            ValueInfo(contract.OUTPUT_GEN_STATE, FLOAT, ("batch", state_width)),
            ValueInfo(contract.OUTPUT_LOGIT_SUMS, FLOAT, ("batch", "steps")),
        ],
        moved=list(source.nodes) if source is not None else [],
    )


def _per_step(step: Graph) -> list[Node]:
    """The step's nodes the Scan body repeats: all but those computed from initializers alone
    (a float16 weight's Cast), whose outputs the body reads from the outer graph instead."""
    constant = {t.name for t in step.initializers}
    repeated = []
    for node in step.nodes:
        if all(name in constant for name in node.inputs if name):
            constant.update(node.outputs)
        else:
            repeated.append(node)
    return repeated


def _infos(names: list[str]) -> list[ValueInfo]:
    return [ValueInfo(n, t) for n, t in zip(names, _SCAN_TYPES, strict=True)]


def _identities(b: Builder, sources: tuple[str, ...], names: list[str]) -> list[ValueInfo]:
    for source, name in zip(sources, names, strict=True):
        b.add("Identity", [source], [name], name + "_id")
    return _infos(names)


def _none() -> Graph:
    """steps = 0: nothing generated, the state handed back as it came."""
    b = Builder(PREFIX + "n/")
    zero = b.const([0], np.int64)
    empty = b.op("Slice", [contract.INPUT_IDS, zero, zero, b.const([1], np.int64)])
    sums = b.op("Cast", [empty], to=FLOAT)
    names = [f"{b.prefix}generated", f"{b.prefix}gen_state", f"{b.prefix}logit_sums"]
    outs = _identities(b, (empty, contract.INPUT_STATE, sums), names)
    return b.graph("gen_none", [], outs)


def _run_branch(
    step_nodes: list[Node], vocab: int, per_row: bool, lean: bool, cell: CellWeights | None
) -> Graph:
    """steps > 0: choose the body, run it, lay its scan outputs out as [batch, steps]."""
    b = Builder(PREFIX + "r/")
    temperature, rows = contract.INPUT_TEMPERATURE, None
    if per_row:  # greedy only when every row is: a row with T = 0 adds noise 0 * g = 0
        rows = row_settings(b)
        temperature = b.op("ReduceMax", [rows[temperature]], keepdims=0)
    greedy = b.op("Equal", [temperature, b.const(0.0, np.float32)])
    outs = [b.name("ids_scan"), b.name("state"), b.name("sums_scan")]
    sample = _sample_branch(step_nodes, vocab, rows, lean, cell)
    greedy_graph = _chars_graph(step_nodes, vocab, "greedy", None, None, cell)
    b.add("If", [greedy], outs, b.name("If_greedy"), then_branch=greedy_graph, else_branch=sample)
    ids_scan, state, sums_scan = outs
    ids = b.op("Squeeze", [ids_scan, b.const([2], np.int64)])  # [steps, batch]
    generated = b.op("Transpose", [ids], perm=[1, 0])
    sums = b.op("Transpose", [sums_scan], perm=[1, 0])
    names = [f"{b.prefix}generated", f"{b.prefix}gen_state", f"{b.prefix}logit_sums"]
    return b.graph("gen_run", [], _identities(b, (generated, state, sums), names))


def _sample_branch(
    step_nodes: list[Node],
    vocab: int,
    rows: dict[str, str] | None,
    lean: bool,
    cell: CellWeights | None,
) -> Graph:
    """temperature > 0: the chunk's noise once, then the plain or the filtered body."""
    b = Builder(PREFIX + "s/")
    gumbel = noise(b, vocab, rows, lean)
    if rows is not None:
        filtering, filters = row_filters(b, vocab, rows)
    else:
        filtering, filters = _filters(b, vocab)
    outs = [b.name("ids_scan"), b.name("state"), b.name("sums_scan")]
    filtered = _chars_graph(step_nodes, vocab, "filtered", gumbel, filters, cell)
    plain = _chars_graph(step_nodes, vocab, "plain", gumbel, None, cell)
    b.add("If", [filtering], outs, b.name("If_filter"), then_branch=filtered, else_branch=plain)
    return b.graph("gen_sample", [], _infos(outs))


def _filters(b: Builder, vocab: int) -> tuple[str, dict[str, str]]:
    """Version 1's filter settings, one for every row: whether any filter applies, and the
    outer-scope values the filtered body reads."""
    k = contract.INPUT_TOP_K
    top_k_on = b.op(
        "And",
        [b.op("Greater", [k, b.const(0, np.int64)]), b.op("Less", [k, b.const(vocab, np.int64)])],
    )
    top_p_on = b.op("Less", [contract.INPUT_TOP_P, b.const(1.0, np.float32)])
    filtering = b.op("Or", [top_k_on, top_p_on])
    # Outer-scope values the filtered body reads: k as TopK wants it ([1]; V when off), and
    # temperature and top-p in float64.
    filters = {
        "k": b.op(
            "Reshape",
            [b.op("Where", [top_k_on, k, b.const(vocab, np.int64)]), b.const([1], np.int64)],
        ),
        "t64": b.op("Cast", [contract.INPUT_TEMPERATURE], to=DOUBLE),
        "p64": b.op("Cast", [contract.INPUT_TOP_P], to=DOUBLE),
    }
    return filtering, filters


def _chars_graph(
    step_nodes: list[Node],
    vocab: int,
    kind: str,
    gumbel: str | None,
    filters: dict[str, str] | None,
    cell: CellWeights | None,
) -> Graph:
    """A branch graph that writes ``steps`` characters with the ``kind`` pick: the first step
    on ``ids`` (any length: the prime), then a Scan over the rest, one id per iteration. With
    the ``cell`` (version 4) the first step is the step graph's own output, read from the
    outer scope, and the Scan body is the cell.

    A Scan rather than a Loop: it hands each iteration its slice of the noise without a Gather
    and has no condition to pass on, two nodes fewer per character (~9% faster, measured). It
    cannot run zero iterations, hence the If around it for ``steps`` 1.
    """
    b = Builder(f"{PREFIX}{kind[0]}/")
    axis0 = b.const([0], np.int64)
    row0 = gumbel and b.op("Gather", [gumbel, b.const(0, np.int64)], axis=0)
    if cell is None:
        first = step_and_pick(
            b, step_nodes, vocab, kind, contract.INPUT_IDS, contract.INPUT_STATE, row0, filters
        )
        nxt0, state1, logits0 = first
    else:
        state1, logits0 = contract.OUTPUT_STATE, contract.OUTPUT_LOGITS
        nxt0 = pick(b, logits0, vocab, kind, row0, filters, keepdims=1)
    sums0 = b.op("ReduceSum", [logits0, b.const([1], np.int64)], keepdims=0)
    ids0 = b.op("Unsqueeze", [nxt0, axis0])  # [1, batch, 1]
    sums0 = b.op("Unsqueeze", [sums0, axis0])  # [1, batch]
    outs = [b.name("ids_scan"), b.name("state"), b.name("sums_scan")]
    more = b.op("Greater", [contract.INPUT_STEPS, b.const(1, np.int64)])
    first_step = (ids0, sums0, nxt0, state1)
    scan = _scan_graph(step_nodes, vocab, kind, gumbel, filters, first_step, cell)
    one = _one_step_graph(kind, ids0, sums0, state1)
    b.add("If", [more], outs, b.name("If_more"), then_branch=scan, else_branch=one)
    return b.graph(f"gen_{kind}", [], _infos(outs))


def _one_step_graph(kind: str, ids0: str, sums0: str, state1: str) -> Graph:
    """steps = 1: the first step's id is all there is."""
    b = Builder(f"{PREFIX}{kind[0]}/o/")
    outs = [b.name("ids_scan"), b.name("state"), b.name("sums_scan")]
    return b.graph(f"gen_{kind}_one", [], _identities(b, (ids0, state1, sums0), outs))


def _scan_graph(
    step_nodes: list[Node],
    vocab: int,
    kind: str,
    gumbel: str | None,
    filters: dict[str, str] | None,
    first: tuple[str, str, str, str],
    cell: CellWeights | None,
) -> Graph:
    """steps > 1: Scan the other steps - 1 characters, then put the first in front."""
    ids0, sums0, nxt0, state1 = first
    b = Builder(f"{PREFIX}{kind[0]}/c/")
    i64 = np.int64
    if gumbel is not None:
        start, end, axis = b.const([1], i64), b.const([1 << 62], i64), b.const([0], i64)
        rest = b.op("Slice", [gumbel, start, end, axis])
    else:  # greedy reads no noise, but a Scan needs something to scan: steps - 1 zeros
        count = b.op(
            "Reshape", [b.op("Sub", [contract.INPUT_STEPS, b.const(1, i64)]), b.const([1], i64)]
        )
        rest = b.op("ConstantOfShape", [count])
    layout = None if cell is not None else time_major(step_nodes)
    if cell is not None:
        body = cell_body(cell, vocab, kind, gumbel is not None, filters)
    else:
        body = step_body(step_nodes, vocab, kind, gumbel is not None, filters, layout)
    last, state, ids_scan, logits_scan = (b.name(n) for n in ("last", "state", "ids", "logits"))
    carried, st0 = [nxt0], state1
    if cell is not None:  # the body carries the id's rows of the cell's tables
        carried = list(rows(b, cell, b.op("Squeeze", [nxt0, b.const([1], i64)])))
    elif layout is not None:  # the body carries ids [1, batch] and the GRU's [1, batch, units]
        carried = [b.op("Transpose", [nxt0], perm=[1, 0])]
        st0 = b.op("Unsqueeze", [state1, b.const([0], i64)])
    lasts = [last, *(b.name("last") for _ in carried[1:])]
    b.add(
        "Scan",
        [*carried, st0, rest],
        [*lasts, state, ids_scan, logits_scan],
        b.name("Scan"),
        num_scan_inputs=1,
        body=body,
    )
    sums_scan = b.op("ReduceSum", [logits_scan, b.const([2], i64)], keepdims=0)
    if layout is not None:
        state = b.op("Squeeze", [state, b.const([0], i64)])
    if layout is not None or cell is not None:
        ids_scan = b.op("Unsqueeze", [ids_scan, b.const([2], i64)])
    outs = [b.name("ids_all"), b.name("state_out"), b.name("sums_all")]
    b.add("Concat", [ids0, ids_scan], [outs[0]], outs[0] + "_cat", axis=0)
    b.add("Identity", [state], [outs[1]], outs[1] + "_id")
    b.add("Concat", [sums0, sums_scan], [outs[2]], outs[2] + "_cat", axis=0)
    return b.graph(f"gen_{kind}_scan", [], _infos(outs))
