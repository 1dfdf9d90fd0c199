"""The generator's arithmetic: the random stream's noise and the top-k/top-p filter, as graph
nodes (runtime.generator_spec) that compute exactly what runtime.randomness and
runtime.sampler compute on the host."""

from __future__ import annotations

from typing import Any

import numpy as np

from gru_edge.runtime import contract
from gru_edge.runtime.generator_spec import (
    DOUBLE,
    FLOAT,
    INT32,
    INT64,
    UINT16,
    UINT64,
    Graph,
    Node,
    Tensor,
    ValueInfo,
    attrs,
)
from gru_edge.runtime.randomness import (
    GOLDEN,
    MIX1,
    MIX2,
    PARTS,
    TABLE_BITS,
    hashes_per_position,
)

PREFIX = "gen/"  # prefix of every name the generator adds


class Builder:
    """Nodes and constants of one graph, with fresh names under a prefix."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.nodes: list[Node] = []
        self.constants: list[Tensor] = []
        self._count = 0

    def name(self, hint: str) -> str:
        """A fresh name: the prefix, ``hint`` and a counter."""
        self._count += 1
        return f"{self.prefix}{hint}{self._count}"

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **values: Any) -> Any:
        """Add a node; its output name (a list of ``n_out`` names when more than one)."""
        outputs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.add(op_type, inputs, outputs, self.name(op_type), **values)
        return outputs[0] if n_out == 1 else outputs

    def add(self, op_type: str, inputs: list[str], outputs: list[str], name: str, **values: Any):
        """Add a node with the given output names."""
        self.nodes.append(Node(op_type, tuple(inputs), tuple(outputs), name, attrs(**values)))

    def const(self, value: Any, dtype: Any, hint: str = "c") -> str:
        """A constant's name."""
        name = self.name(hint)
        self.constants.append(Tensor.of(name, value, dtype))
        return name

    def graph(self, name: str, inputs: list[ValueInfo], outputs: list[ValueInfo]) -> Graph:
        """The subgraph: its constants as Constant nodes first (initializers of subgraphs are
        legal but less widely supported by other runtimes), then its nodes."""
        consts = [
            Node("Constant", (), (c.name,), f"{c.name}_const", attrs(value=c))
            for c in self.constants
        ]
        return Graph(name, consts + self.nodes, inputs, outputs)


def row_settings(b: Builder) -> dict[str, str]:
    """Version 2: each setting as a [batch] vector, from its row input when that is fed (not
    empty) and from the scalar otherwise. ``seed`` is already the stream's uint64 key: a row
    seed as it is, a scalar seed s plus the row's index b, as in version 1."""
    i64 = np.int64
    batch, scalar_keys = _batch_and_keys(b)
    settings = {}
    for row_name, name in contract.ROW_INPUTS.items():
        row, every = row_name, b.op("Expand", [name, batch])
        if name == contract.INPUT_SEED:
            row, every = b.op("Cast", [row_name], to=UINT64), scalar_keys
        # [row values..., scalar values...][:batch]: the row input when fed, else the scalar
        both = b.op("Concat", [row, every], axis=0)
        settings[name] = b.op("Slice", [both, b.const([0], i64), batch])
    return settings


def _batch_and_keys(b: Builder) -> tuple[str, str]:
    """The batch size as int64 [1], and each row's stream key for the scalar seed s: s + b,
    uint64 [batch] (version 1's node order, which its files were written with)."""
    i64 = np.int64
    shape = b.op("Shape", [contract.INPUT_IDS])
    batch = b.op("Slice", [shape, b.const([0], i64), b.const([1], i64)])
    count = b.op("Squeeze", [batch])
    rows = b.op("Cast", [b.op("Range", [b.const(0, i64), count, b.const(1, i64)])], to=UINT64)
    return batch, b.op("Add", [rows, b.op("Cast", [contract.INPUT_SEED], to=UINT64)])


def noise(b: Builder, vocab: int, rows: dict[str, str] | None = None, lean: bool = False) -> str:
    """float32 [steps, batch, vocab]: float32(T * gumbel) for positions offset..offset+steps-1,
    computed as runtime.randomness specifies; with ``rows`` (row_settings) each row has its
    own seed, offset and temperature. ``lean`` (version 3) takes the same values by cheaper
    nodes: see _quarters and _gumbel_table."""
    u64, i64 = np.uint64, np.int64
    h = hashes_per_position(vocab)
    if rows is not None:
        count = b.op("Range", [b.const(0, i64), contract.INPUT_STEPS, b.const(1, i64)])
        first = b.op("Unsqueeze", [rows[contract.INPUT_OFFSET], b.const([0], i64)])
        positions = b.op("Add", [b.op("Unsqueeze", [count, b.const([1], i64)]), first])
        positions = b.op("Unsqueeze", [b.op("Cast", [positions], to=UINT64), b.const([2], i64)])
        hashes = np.arange(1, h + 1)[None, None, :]  # positions: [steps, batch, 1]
    else:
        first = contract.INPUT_OFFSET
        end = b.op("Add", [first, contract.INPUT_STEPS])
        positions = b.op("Cast", [b.op("Range", [first, end, b.const(1, i64)])], to=UINT64)
        positions = b.op("Unsqueeze", [positions, b.const([1], i64)])  # [steps, 1]
        hashes = np.arange(1, h + 1)[None, :]
    counters = b.op(
        "Add", [b.op("Mul", [positions, b.const(h, u64)]), b.const(hashes, u64)]
    )  # the counter + 1: [steps, H], per row [steps, batch, H]
    spread = b.op("Mul", [counters, b.const(GOLDEN, u64)])
    if rows is not None:
        keys = rows[contract.INPUT_SEED]
    else:
        spread = b.op("Unsqueeze", [spread, b.const([1], i64)])  # [steps, 1, H]
        keys = _batch_and_keys(b)[1]
    keys = b.op("Unsqueeze", [keys, b.const([0, 2], i64)])  # [1, batch, 1]
    z = b.op("Add", [spread, keys])  # [steps, batch, H]
    for shift, mul in ((30, MIX1), (27, MIX2), (31, None)):
        z = b.op("BitwiseXor", [z, b.op("BitShift", [z, b.const(shift, u64)], direction="RIGHT")])
        if mul is not None:
            z = b.op("Mul", [z, b.const(mul, u64)])
    if lean:
        parts = _quarters(b, z)
    else:
        z = b.op("Unsqueeze", [z, b.const([3], i64)])  # [steps, batch, H, 1]
        parts = b.op("BitShift", [z, b.const([48, 32, 16, 0], u64)], direction="RIGHT")
        parts = b.op("BitwiseAnd", [parts, b.const(0xFFFF, u64)])
        parts = b.op("Cast", [parts], to=INT64)  # [steps, batch, H, 4]
    flat = b.op("Concat", [b.op("Shape", [parts], end=2), b.const([h * PARTS], i64)], axis=0)
    parts = b.op("Reshape", [parts, flat])
    if h * PARTS != vocab:
        parts = b.op("Slice", [parts, b.const([0], i64), b.const([vocab], i64), b.const([2], i64)])
    gumbel = b.op("Gather", [_gumbel_table(b, lean), parts], axis=0)
    temperature = contract.INPUT_TEMPERATURE
    if rows is not None:  # [1, batch, 1]
        temperature = b.op("Unsqueeze", [rows[temperature], b.const([0, 2], i64)])
    return b.op("Mul", [gumbel, temperature])


def _quarters(b: Builder, z: str) -> str:
    """Each uint64 [steps, batch, H] value's four 16-bit parts, high to low, as int32 table
    indices [steps, batch, H, 4]. A Cast to uint16 keeps the low 16 bits (onnxruntime's Cast is
    C++'s static_cast, modular for unsigned types), so each part is one shift by a scalar and
    one Cast: about 3x faster than version 2's broadcast shift and mask on uint64 (measured at
    batch 256), and the indices take half the bytes."""
    axis3 = b.const([3], np.int64)
    quarters = []
    for shift in (48, 32, 16, 0):
        part = b.op("BitShift", [z, b.const(shift, np.uint64)], direction="RIGHT") if shift else z
        quarters.append(b.op("Unsqueeze", [b.op("Cast", [part], to=UINT16), axis3]))
    return b.op("Cast", [b.op("Concat", quarters, axis=3)], to=INT32)


def _gumbel_table(b: Builder, lean: bool = False) -> str:
    """runtime.randomness' TABLE, computed from constants (onnxruntime folds it at load).
    ``lean``: the bin centres (2m + 1) / 2^17 straight from a float64 Range (exact: dyadic
    fractions), four nodes fewer for onnxruntime to fold: ~1.7 ms less to open a session and
    ~3 MB less peak memory (each folded node's 512 KiB output is held until folding ends)."""
    if lean:
        half = 2.0 ** -(TABLE_BITS + 1)
        f64 = np.float64
        u = b.op("Range", [b.const(half, f64), b.const(1.0, f64), b.const(2 * half, f64)])
        gumbel = b.op("Neg", [b.op("Log", [b.op("Neg", [b.op("Log", [u])])])])
        return b.op("Cast", [gumbel], to=FLOAT)
    m = b.op(
        "Cast",
        [b.op("Range", [b.const(0, np.int64), b.const(1 << 16, np.int64), b.const(1, np.int64)])],
        to=DOUBLE,
    )
    u = b.op(
        "Div",
        [
            b.op("Add", [b.op("Mul", [m, b.const(2.0, np.float64)]), b.const(1.0, np.float64)]),
            b.const(2.0**17, np.float64),
        ],
    )
    gumbel = b.op("Neg", [b.op("Log", [b.op("Neg", [b.op("Log", [u])])])])
    return b.op("Cast", [gumbel], to=FLOAT)


def row_filters(b: Builder, vocab: int, rows: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Version 2's filter settings, from row_settings: whether any row filters, and the
    outer-scope [batch, 1] values the filtered body reads. A row filters when its temperature
    is above 0 (rule 1 comes first) and its k is in [1, vocab) or its p below 1; the other
    rows get k = vocab, p = 1 and T = 1 there, which keep every character that could win."""
    i64, f32 = np.int64, np.float32
    k, t, p = (
        b.op("Unsqueeze", [rows[name], b.const([1], i64)])
        for name in (contract.INPUT_TOP_K, contract.INPUT_TEMPERATURE, contract.INPUT_TOP_P)
    )
    k_on = b.op(
        "And", [b.op("Greater", [k, b.const(0, i64)]), b.op("Less", [k, b.const(vocab, i64)])]
    )
    t_on = b.op("Greater", [t, b.const(0.0, f32)])
    k_on = b.op("And", [k_on, t_on])
    p_on = b.op("And", [b.op("Less", [p, b.const(1.0, f32)]), t_on])
    rows_on = b.op("Cast", [b.op("Or", [k_on, p_on])], to=INT64)
    filtering = b.op("Greater", [b.op("ReduceMax", [rows_on], keepdims=0), b.const(0, i64)])
    filters = {
        "k_row": b.op("Where", [k_on, k, b.const(vocab, i64)]),
        "t64": b.op("Cast", [b.op("Where", [t_on, t, b.const(1.0, f32)])], to=DOUBLE),
        "p64": b.op("Cast", [b.op("Where", [p_on, p, b.const(1.0, f32)])], to=DOUBLE),
    }
    return filtering, filters


def top_filter(b: Builder, logits: str, vocab: int, filters: dict[str, str]) -> str:
    """runtime.sampler's rules 2 (top-k) and 3 (top-p, float64) on [batch, vocab] logits."""
    axis1 = b.const([1], np.int64)
    minus_inf = b.const(-np.inf, np.float32)
    if "k_row" in filters:  # per row: every row's k-th largest from one full sort
        values = b.op("TopK", [logits, b.const([vocab], np.int64)], n_out=2, axis=1)[0]
        k_index = b.op("Sub", [filters["k_row"], b.const(1, np.int64)])
        kth = b.op("GatherElements", [values, k_index], axis=1)
    else:
        values = b.op("TopK", [logits, filters["k"]], n_out=2, axis=1, largest=1, sorted=1)[0]
        kth = b.op("ReduceMin", [values, axis1], keepdims=1)
    logits = b.op("Where", [b.op("Less", [logits, kth]), minus_inf, logits])
    d = b.op("Cast", [logits], to=DOUBLE)
    shifted = b.op("Sub", [d, b.op("ReduceMax", [d, axis1], keepdims=1)])
    w = b.op("Exp", [b.op("Div", [shifted, filters["t64"]])])
    s = b.op("TopK", [w, b.const([vocab], np.int64)], n_out=2, axis=1, largest=1, sorted=1)[0]
    c = b.op("CumSum", [s, b.const(1, np.int64)])
    total = b.op("Gather", [c, b.const([vocab - 1], np.int64)], axis=1)  # [batch, 1]
    keep = b.op("Less", [b.op("Sub", [c, s]), b.op("Mul", [filters["p64"], total])])
    count = b.op("ReduceSum", [b.op("Cast", [keep], to=INT64), axis1], keepdims=1)
    smallest = b.op("GatherElements", [s, b.op("Sub", [count, b.const(1, np.int64)])], axis=1)
    return b.op("Where", [b.op("GreaterOrEqual", [w, smallest]), logits, minus_inf])
