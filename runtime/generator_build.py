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
from gru_edge.runtime.generator_cell import CellSource, cell_weights, find_cell, step
from gru_edge.runtime.generator_chars import none_branch, run_branch
from gru_edge.runtime.generator_pick import PREFIX, Builder
from gru_edge.runtime.generator_spec import (
    FLOAT,
    INT64,
    Graph,
    Node,
    Tensor,
    ValueInfo,
    has_subgraphs,
)

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
    if not since(version, VERSION_4):
        source = None
    elif source is None:
        source = find_cell(step_graph, step_nodes, vocab_size)
    weights = None if source is None else cell_weights(top, source)
    if weights is not None:
        step(top, weights)
    has_steps = top.op("Greater", [contract.INPUT_STEPS, top.const(0, np.int64)])
    outputs = [contract.OUTPUT_GENERATED, contract.OUTPUT_GEN_STATE, contract.OUTPUT_LOGIT_SUMS]
    run = run_branch(step_nodes, vocab_size, per_row, since(version, VERSION_3), weights)
    top.add(
        "If", [has_steps], outputs, PREFIX + "If_steps", then_branch=run, else_branch=none_branch()
    )
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


def since(version: str, first: str) -> bool:
    """Whether generator ``version`` is ``first`` or a later one."""
    return VERSIONS.index(version) >= VERSIONS.index(first)


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
