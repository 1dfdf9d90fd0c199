"""The generator inside the model file (gru-edge/2): a step graph gains a Scan that writes text.

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

Only the exporter and the tests build graphs (this module needs the ``onnx`` package); the
runtime just runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from gru_edge.runtime import contract
from gru_edge.runtime.randomness import GOLDEN, MIX1, MIX2, PARTS, hashes_per_position

MIN_OPSET = 18  # BitwiseXor (the random stream's SplitMix64)
_P = "gen/"  # prefix of every name this module adds
_INT64, _FLOAT, _DOUBLE, _UINT64, _BOOL = (
    TensorProto.INT64,
    TensorProto.FLOAT,
    TensorProto.DOUBLE,
    TensorProto.UINT64,
    TensorProto.BOOL,
)

# (name, element type, default)
GENERATOR_INPUTS = (
    (contract.INPUT_STEPS, _INT64, 0),
    (contract.INPUT_TEMPERATURE, _FLOAT, 1.0),
    (contract.INPUT_TOP_K, _INT64, 0),
    (contract.INPUT_TOP_P, _FLOAT, 1.0),
    (contract.INPUT_SEED, _INT64, 0),
    (contract.INPUT_OFFSET, _INT64, 0),
)


class _Builder:
    """Nodes and constants of one graph, with fresh names under a prefix."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.constants: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}{self._count}"

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs: Any) -> Any:
        outputs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(
            helper.make_node(op_type, inputs, outputs, name=self.name(op_type), **attrs)
        )
        return outputs[0] if n_out == 1 else outputs

    def const(self, value: Any, dtype: Any, hint: str = "c") -> str:
        name = self.name(hint)
        self.constants.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name

    def graph(self, name: str, inputs: list, outputs: list) -> onnx.GraphProto:
        # Constants of a subgraph are Constant nodes (initializers of subgraphs are legal but
        # less widely supported by other runtimes).
        consts = [
            helper.make_node("Constant", [], [c.name], value=c, name=f"{c.name}_const")
            for c in self.constants
        ]
        return helper.make_graph(consts + self.nodes, name, inputs, outputs)


def _info(name: str, elem: int, shape: list | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def add_generator(model: onnx.ModelProto, vocab_size: int, state_width: int) -> None:
    """Add the generator to a contract step model, in place (see the module docstring)."""
    graph = model.graph
    step_nodes = list(graph.node)
    if any(attr.type in (5, 10) for node in step_nodes for attr in node.attribute):
        raise ValueError("the step graph already holds subgraphs; expected a plain step graph")
    for name, elem, default in GENERATOR_INPUTS:
        graph.input.append(_info(name, elem, []))
        dtype = np.int64 if elem == _INT64 else np.float32
        graph.initializer.append(numpy_helper.from_array(np.array(default, dtype=dtype), name))

    top = _Builder(_P)
    has_steps = top.op("Greater", [contract.INPUT_STEPS, top.const(0, np.int64)])
    outputs = [contract.OUTPUT_GENERATED, contract.OUTPUT_GEN_STATE, contract.OUTPUT_LOGIT_SUMS]
    run = _run_branch(_per_step(step_nodes, graph), vocab_size, state_width)
    none = _none_branch()
    top.nodes.append(
        helper.make_node(
            "If", [has_steps], outputs, name=_P + "If_steps", then_branch=run, else_branch=none
        )
    )
    graph.node.extend(top.nodes)
    graph.initializer.extend(top.constants)
    graph.output.extend(
        [
            _info(contract.OUTPUT_GENERATED, _INT64, ["batch", "steps"]),
            _info(contract.OUTPUT_GEN_STATE, _FLOAT, ["batch", state_width]),
            _info(contract.OUTPUT_LOGIT_SUMS, _FLOAT, ["batch", "steps"]),
        ]
    )
    opset = next(o for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset.version < MIN_OPSET:
        raise ValueError(f"the generator needs opset {MIN_OPSET} or newer, got {opset.version}")


def _per_step(step_nodes: list, graph: onnx.GraphProto) -> list:
    """The step's nodes the Loop body repeats: all but those computed from initializers alone
    (a float16 weight's Cast), whose outputs the body reads from the outer graph instead."""
    constant = {t.name for t in graph.initializer}
    repeated = []
    for node in step_nodes:
        if all(name in constant for name in node.input if name):
            constant.update(node.output)
        else:
            repeated.append(node)
    return repeated


def _branch_outputs(b: _Builder, generated: str, state: str, sums: str) -> list:
    names = [f"{b.prefix}generated", f"{b.prefix}gen_state", f"{b.prefix}logit_sums"]
    for source, name in zip((generated, state, sums), names, strict=True):
        b.nodes.append(helper.make_node("Identity", [source], [name], name=name + "_id"))
    return [
        _info(names[0], _INT64, None),
        _info(names[1], _FLOAT, None),
        _info(names[2], _FLOAT, None),
    ]


def _none_branch() -> onnx.GraphProto:
    """steps = 0: nothing generated, the state handed back as it came."""
    b = _Builder(_P + "n/")
    zero = b.const([0], np.int64)
    empty = b.op("Slice", [contract.INPUT_IDS, zero, zero, b.const([1], np.int64)])
    sums = b.op("Cast", [empty], to=_FLOAT)
    outs = _branch_outputs(b, empty, contract.INPUT_STATE, sums)
    return b.graph("gen_none", [], outs)


def _run_branch(step_nodes: list, vocab: int, width: int) -> onnx.GraphProto:
    """steps > 0: choose the body, run the Loop, lay its scan outputs out as [batch, steps]."""
    b = _Builder(_P + "r/")
    greedy = b.op("Equal", [contract.INPUT_TEMPERATURE, b.const(0.0, np.float32)])
    loop_outs = [b.name("ids_scan"), b.name("state"), b.name("sums_scan")]
    sample = _sample_branch(step_nodes, vocab)
    greedy_graph = _loop_graph(step_nodes, vocab, "greedy", None)
    b.nodes.append(
        helper.make_node(
            "If",
            [greedy],
            loop_outs,
            name=b.name("If_greedy"),
            then_branch=greedy_graph,
            else_branch=sample,
        )
    )
    ids_scan, state, sums_scan = loop_outs
    ids = b.op("Squeeze", [ids_scan, b.const([2], np.int64)])  # [steps, batch]
    generated = b.op("Transpose", [ids], perm=[1, 0])
    sums = b.op("Transpose", [sums_scan], perm=[1, 0])
    outs = _branch_outputs(b, generated, state, sums)
    return b.graph("gen_run", [], outs)


def _sample_branch(step_nodes: list, vocab: int) -> onnx.GraphProto:
    """temperature > 0: the chunk's noise once, then the plain or the filtered body."""
    b = _Builder(_P + "s/")
    noise = _noise(b, vocab)
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
        "t64": b.op("Cast", [contract.INPUT_TEMPERATURE], to=_DOUBLE),
        "p64": b.op("Cast", [contract.INPUT_TOP_P], to=_DOUBLE),
    }
    outs = [b.name("ids_scan"), b.name("state"), b.name("sums_scan")]
    b.nodes.append(
        helper.make_node(
            "If",
            [filtering],
            outs,
            name=b.name("If_filter"),
            then_branch=_loop_graph(step_nodes, vocab, "filtered", noise, filters),
            else_branch=_loop_graph(step_nodes, vocab, "plain", noise),
        )
    )
    return b.graph(
        "gen_sample", [], [_info(n, t, None) for n, t in zip(outs, _LOOP_TYPES, strict=False)]
    )


_LOOP_TYPES = (_INT64, _FLOAT, _FLOAT)


def _noise(b: _Builder, vocab: int) -> str:
    """float32 [steps, batch, vocab]: float32(T * gumbel) for positions offset..offset+steps-1,
    computed as runtime.randomness specifies."""
    u64, i64 = np.uint64, np.int64
    h = hashes_per_position(vocab)
    first = contract.INPUT_OFFSET
    end = b.op("Add", [first, contract.INPUT_STEPS])
    positions = b.op("Cast", [b.op("Range", [first, end, b.const(1, i64)])], to=_UINT64)
    positions = b.op("Unsqueeze", [positions, b.const([1], i64)])  # [steps, 1]
    counters = b.op(
        "Add",
        [b.op("Mul", [positions, b.const(h, u64)]), b.const(np.arange(1, h + 1)[None, :], u64)],
    )  # [steps, H]: the counter + 1
    spread = b.op("Mul", [counters, b.const(GOLDEN, u64)])
    spread = b.op("Unsqueeze", [spread, b.const([1], i64)])  # [steps, 1, H]
    shape = b.op("Shape", [contract.INPUT_IDS])
    batch = b.op("Squeeze", [b.op("Slice", [shape, b.const([0], i64), b.const([1], i64)])])
    rows = b.op("Cast", [b.op("Range", [b.const(0, i64), batch, b.const(1, i64)])], to=_UINT64)
    keys = b.op("Add", [rows, b.op("Cast", [contract.INPUT_SEED], to=_UINT64)])
    keys = b.op("Unsqueeze", [keys, b.const([0, 2], i64)])  # [1, batch, 1]
    z = b.op("Add", [spread, keys])  # [steps, batch, H]
    for shift, mul in ((30, MIX1), (27, MIX2), (31, None)):
        z = b.op("BitwiseXor", [z, b.op("BitShift", [z, b.const(shift, u64)], direction="RIGHT")])
        if mul is not None:
            z = b.op("Mul", [z, b.const(mul, u64)])
    z = b.op("Unsqueeze", [z, b.const([3], i64)])  # [steps, batch, H, 1]
    parts = b.op("BitShift", [z, b.const([48, 32, 16, 0], u64)], direction="RIGHT")
    parts = b.op("BitwiseAnd", [parts, b.const(0xFFFF, u64)])
    parts = b.op("Cast", [parts], to=_INT64)  # [steps, batch, H, 4]
    flat = b.op("Concat", [b.op("Shape", [parts], end=2), b.const([h * PARTS], i64)], axis=0)
    parts = b.op("Reshape", [parts, flat])
    if h * PARTS != vocab:
        parts = b.op("Slice", [parts, b.const([0], i64), b.const([vocab], i64), b.const([2], i64)])
    gumbel = b.op("Gather", [_gumbel_table(b), parts], axis=0)
    return b.op("Mul", [gumbel, contract.INPUT_TEMPERATURE])


def _gumbel_table(b: _Builder) -> str:
    """runtime.randomness' TABLE, computed from constants (onnxruntime folds it at load)."""
    m = b.op(
        "Cast",
        [b.op("Range", [b.const(0, np.int64), b.const(1 << 16, np.int64), b.const(1, np.int64)])],
        to=_DOUBLE,
    )
    u = b.op(
        "Div",
        [
            b.op("Add", [b.op("Mul", [m, b.const(2.0, np.float64)]), b.const(1.0, np.float64)]),
            b.const(2.0**17, np.float64),
        ],
    )
    gumbel = b.op("Neg", [b.op("Log", [b.op("Neg", [b.op("Log", [u])])])])
    return b.op("Cast", [gumbel], to=_FLOAT)


def _loop_graph(
    step_nodes: list,
    vocab: int,
    kind: str,
    noise: str | None,
    filters: dict[str, str] | None = None,
) -> onnx.GraphProto:
    """A branch graph that writes ``steps`` characters with the ``kind`` pick: the first step
    on ``ids`` (any length: the prime), then a Scan over the rest, one id per iteration.

    A Scan rather than a Loop: it hands each iteration its slice of the noise without a Gather
    and has no condition to pass on, two nodes fewer per character (~9% faster, measured). It
    cannot run zero iterations, hence the If around it for ``steps`` 1.
    """
    b = _Builder(f"{_P}{kind[0]}/")
    axis0 = b.const([0], np.int64)
    first = _step_and_pick(
        b,
        step_nodes,
        vocab,
        kind,
        contract.INPUT_IDS,
        contract.INPUT_STATE,
        noise and b.op("Gather", [noise, b.const(0, np.int64)], axis=0),
        filters,
    )
    nxt0, state1, logits0 = first
    sums0 = b.op("ReduceSum", [logits0, b.const([1], np.int64)], keepdims=0)
    ids0 = b.op("Unsqueeze", [nxt0, axis0])  # [1, batch, 1]
    sums0 = b.op("Unsqueeze", [sums0, axis0])  # [1, batch]
    outs = [b.name("ids_scan"), b.name("state"), b.name("sums_scan")]
    more = b.op("Greater", [contract.INPUT_STEPS, b.const(1, np.int64)])
    b.nodes.append(
        helper.make_node(
            "If",
            [more],
            outs,
            name=b.name("If_more"),
            then_branch=_scan_graph(
                step_nodes, vocab, kind, noise, filters, ids0, sums0, nxt0, state1
            ),
            else_branch=_one_step_graph(kind, ids0, sums0, state1),
        )
    )
    return b.graph(
        f"gen_{kind}", [], [_info(n, t, None) for n, t in zip(outs, _LOOP_TYPES, strict=True)]
    )


def _one_step_graph(kind: str, ids0: str, sums0: str, state1: str) -> onnx.GraphProto:
    """steps = 1: the first step's id is all there is."""
    b = _Builder(f"{_P}{kind[0]}/o/")
    outs = [b.name("ids_scan"), b.name("state"), b.name("sums_scan")]
    for source, name in zip((ids0, state1, sums0), outs, strict=True):
        b.nodes.append(helper.make_node("Identity", [source], [name], name=name + "_id"))
    return b.graph(
        f"gen_{kind}_one", [], [_info(n, t, None) for n, t in zip(outs, _LOOP_TYPES, strict=True)]
    )


def _scan_graph(
    step_nodes: list,
    vocab: int,
    kind: str,
    noise: str | None,
    filters: dict[str, str] | None,
    ids0: str,
    sums0: str,
    nxt0: str,
    state1: str,
) -> onnx.GraphProto:
    """steps > 1: Scan the other steps - 1 characters, then put the first in front."""
    b = _Builder(f"{_P}{kind[0]}/c/")
    i64 = np.int64
    if noise is not None:
        rest = b.op("Slice", [noise, b.const([1], i64), b.const([1 << 62], i64), b.const([0], i64)])
    else:  # greedy reads no noise, but a Scan needs something to scan: steps - 1 zeros
        count = b.op(
            "Reshape", [b.op("Sub", [contract.INPUT_STEPS, b.const(1, i64)]), b.const([1], i64)]
        )
        rest = b.op("ConstantOfShape", [count])
    layout = _time_major(step_nodes)
    body = _body(step_nodes, vocab, kind, noise is not None, filters, layout)
    last, state, ids_scan, logits_scan = (b.name(n) for n in ("last", "state", "ids", "logits"))
    cur0, st0 = nxt0, state1
    if layout is not None:  # the body carries ids [1, batch] and the GRU's [1, batch, units]
        cur0 = b.op("Transpose", [nxt0], perm=[1, 0])
        st0 = b.op("Unsqueeze", [state1, b.const([0], i64)])
    b.nodes.append(
        helper.make_node(
            "Scan",
            [cur0, st0, rest],
            [last, state, ids_scan, logits_scan],
            name=b.name("Scan"),
            num_scan_inputs=1,
            body=body,
        )
    )
    sums_scan = b.op("ReduceSum", [logits_scan, b.const([2], i64)], keepdims=0)
    if layout is not None:
        state = b.op("Squeeze", [state, b.const([0], i64)])
        ids_scan = b.op("Unsqueeze", [ids_scan, b.const([2], i64)])
    outs = [b.name("ids_all"), b.name("state_out"), b.name("sums_all")]
    b.nodes += [
        helper.make_node("Concat", [ids0, ids_scan], [outs[0]], axis=0, name=outs[0] + "_cat"),
        helper.make_node("Identity", [state], [outs[1]], name=outs[1] + "_id"),
        helper.make_node("Concat", [sums0, sums_scan], [outs[2]], axis=0, name=outs[2] + "_cat"),
    ]
    return b.graph(
        f"gen_{kind}_scan", [], [_info(n, t, None) for n, t in zip(outs, _LOOP_TYPES, strict=True)]
    )


@dataclass(frozen=True)
class _Layout:
    """Where a one-layer step graph turns ids into the GRU's time-major input and the state
    into its [1, batch, units] initial state, and the GRU's final state."""

    transpose: onnx.NodeProto  # [batch, time, vocab] -> [time, batch, vocab]
    unsqueeze: onnx.NodeProto  # state -> initial_h
    final_state: str  # the GRU's Y_h, [1, batch, units]


def _time_major(step_nodes: list) -> _Layout | None:
    """The layout of tf2onnx's one-layer step (Gather or OneHot of ids, Transpose, Unsqueeze of
    the state into a GRU, Squeeze of its Y_h into state_out), or None for any other graph,
    whose body then keeps the step's own layout."""
    made_by = {out: node for node in step_nodes for out in node.output}
    grus = [node for node in step_nodes if node.op_type == "GRU"]
    if len(grus) != 1 or len(grus[0].input) < 6 or len(grus[0].output) < 2:
        return None
    gru = grus[0]
    transpose, unsqueeze = made_by.get(gru.input[0]), made_by.get(gru.input[5])
    squeeze = made_by.get(contract.OUTPUT_STATE)
    encode = transpose and made_by.get(transpose.input[0])
    perm = transpose and next((a.ints for a in transpose.attribute if a.name == "perm"), None)
    if not (
        transpose is not None
        and transpose.op_type == "Transpose"
        and list(perm or []) == [1, 0, 2]
        and encode is not None
        and contract.INPUT_IDS in encode.input
        and unsqueeze is not None
        and unsqueeze.op_type == "Unsqueeze"
        and unsqueeze.input[0] == contract.INPUT_STATE
        and squeeze is not None
        and squeeze.op_type == "Squeeze"
        and squeeze.input[0] == gru.output[1]
    ):
        return None
    uses = [
        n for n in step_nodes for i in n.input if i in (transpose.output[0], unsqueeze.output[0])
    ]
    if len(uses) != 2:  # something else reads them in the step's layout
        return None
    return _Layout(transpose, unsqueeze, gru.output[1])


def _step_and_pick(
    b: _Builder,
    step_nodes: list,
    vocab: int,
    kind: str,
    ids: str,
    state: str,
    noise_row: str | None,
    filters: dict[str, str] | None,
    layout: _Layout | None = None,
) -> tuple[str, str, str]:
    """The step graph's nodes on (ids, state), then the pick: (next id [batch, 1], state after
    ``ids``, the step's logits [batch, vocab] as computed, before any filter). With ``layout``,
    ``ids`` is time-major [1, batch] and ``state`` the GRU's [1, batch, units], and so are the id
    ([batch], scanned out as it is) and the state returned."""
    renamed = {contract.INPUT_IDS: ids, contract.INPUT_STATE: state}
    for node in step_nodes:
        for name in node.output:
            if name:
                renamed[name] = b.name("s")  # short: the step is copied six times
    skipped: tuple = ()
    if layout is not None:
        skipped = (layout.transpose, layout.unsqueeze)
        renamed[layout.transpose.output[0]] = renamed[layout.transpose.input[0]]
        renamed[layout.unsqueeze.output[0]] = state
    for node in step_nodes:
        if any(node is other for other in skipped):
            continue
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = b.name(node.op_type)
        copy.input[:] = [renamed.get(n, n) for n in node.input]
        copy.output[:] = [renamed.get(n, n) for n in node.output]
        b.nodes.append(copy)
    logits = raw = renamed[contract.OUTPUT_LOGITS]
    if kind == "greedy":
        score = logits
    else:
        if kind == "filtered":
            logits = _filter(b, logits, vocab, filters or {})
        score = b.op("Add", [logits, noise_row])
    if layout is not None:
        nxt = b.op("ArgMax", [score], axis=1, keepdims=0)  # [batch]
        return nxt, renamed[layout.final_state], raw
    nxt = b.op("ArgMax", [score], axis=1, keepdims=1)  # [batch, 1], the first of equal maxima
    return nxt, renamed[contract.OUTPUT_STATE], raw


def _body(
    step_nodes: list,
    vocab: int,
    kind: str,
    with_noise: bool,
    filters: dict[str, str] | None,
    layout: _Layout | None = None,
) -> onnx.GraphProto:
    """The Scan body, one character: states (cur, st), scan input this character's noise.

    With ``layout`` the states are kept as the GRU reads and writes them (ids [1, batch], state
    [1, batch, units]), which drops the step's Transpose and Unsqueeze, and the id scanned out
    is the ArgMax itself: three nodes fewer per character than the step graph's own layout.
    """
    b = _Builder(f"{_P}{kind[0]}/b/")
    cur, st, n_i = (b.name(n) for n in ("cur", "st", "noise"))
    # The logits are scanned out as they are (a copy, no node) and summed once per call.
    nxt, state_out, sums = _step_and_pick(
        b, step_nodes, vocab, kind, cur, st, n_i if with_noise else None, filters, layout
    )
    if layout is not None:
        nxt_scan, nxt = nxt, b.op("Unsqueeze", [nxt, b.const([0], np.int64)])
    else:
        nxt_scan = b.name("ids")
        b.nodes.append(helper.make_node("Identity", [nxt], [nxt_scan], name=nxt_scan + "_id"))
    return b.graph(
        f"gen_{kind}_body",
        [
            _info(cur, _INT64, None),
            _info(st, _FLOAT, None),
            _info(n_i, _FLOAT, None),
        ],
        [
            _info(nxt, _INT64, None),
            _info(state_out, _FLOAT, None),
            _info(nxt_scan, _INT64, None),
            _info(sums, _FLOAT, None),
        ],
    )


def _filter(b: _Builder, logits: str, vocab: int, filters: dict[str, str]) -> str:
    """runtime.sampler's rules 2 (top-k) and 3 (top-p, float64) on [batch, vocab] logits."""
    axis1 = b.const([1], np.int64)
    minus_inf = b.const(-np.inf, np.float32)
    values = b.op("TopK", [logits, filters["k"]], n_out=2, axis=1, largest=1, sorted=1)[0]
    kth = b.op("ReduceMin", [values, axis1], keepdims=1)
    logits = b.op("Where", [b.op("Less", [logits, kth]), minus_inf, logits])
    d = b.op("Cast", [logits], to=_DOUBLE)
    shifted = b.op("Sub", [d, b.op("ReduceMax", [d, axis1], keepdims=1)])
    w = b.op("Exp", [b.op("Div", [shifted, filters["t64"]])])
    s = b.op("TopK", [w, b.const([vocab], np.int64)], n_out=2, axis=1, largest=1, sorted=1)[0]
    c = b.op("CumSum", [s, b.const(1, np.int64)])
    total = b.op("Gather", [c, b.const([vocab - 1], np.int64)], axis=1)  # [batch, 1]
    keep = b.op("Less", [b.op("Sub", [c, s]), b.op("Mul", [filters["p64"], total])])
    count = b.op("ReduceSum", [b.op("Cast", [keep], to=_INT64), axis1], keepdims=1)
    smallest = b.op("GatherElements", [s, b.op("Sub", [count, b.const(1, np.int64)])], axis=1)
    return b.op("Where", [b.op("GreaterOrEqual", [w, smallest]), logits, minus_inf])
