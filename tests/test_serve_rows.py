"""The scheduler's batching promise on the GRU(128) test model, where a batch of 1 and a batch of
64 split within ~50 characters (onnxruntime rounds B=1 differently): every row equals the same
row of `gru-edge sample -n N` (N >= 2) whoever else is in the batch, a row alone included, and
rows join and leave between rounds without changing anyone's text."""

from __future__ import annotations

import asyncio

import pytest

from gru_edge.runtime.generator import Generator
from gru_edge.runtime.sampler import SamplingSettings
from gru_edge.serve.scheduler import BatchScheduler, RowSpec

LONG_PRIME = "The woods are lovely, dark and deep. " * 40  # fed in other pieces than -n 64's


@pytest.fixture(scope="module")
def gen128(bench_model) -> Generator:
    return Generator.load(bench_model, device="cpu", threads=1)


async def _texts(gen, requests, in_graph):
    """requests: [(prime, length, settings, [seeds], delay_rounds)] -> texts per request."""
    scheduler = BatchScheduler(
        gen.model.session,
        gen.vocab,
        gen.state_width,
        max_batch=256,
        max_queue=256,
        in_graph=in_graph,
    )
    task = asyncio.create_task(scheduler.run())
    results = []
    for prime, length, settings, seeds, delay in requests:
        while scheduler.rounds < delay:
            await asyncio.sleep(0.001)
        ids = gen.encode_prime(prime)[0]
        rows = scheduler.submit([RowSpec(ids, length, settings, s) for s in seeds])
        results.append(rows)
    texts = []
    for rows in results:
        got, left = [""] * len(rows), len(rows)
        while left:
            index, text, finish = await rows[0].queue.get()
            got[index] += text
            left -= finish is not None
        texts.append(got)
    task.cancel()
    return texts, scheduler.peak_rows


@pytest.mark.parametrize("in_graph", [True, False], ids=["generator calls", "host steps"])
def test_rows_equal_sample_n_rows_whoever_shares_the_batch(gen128, in_graph):
    # In-graph: one call of the file's version-2 generator per round, each row with its own
    # settings; host: a file whose generator takes one setting for every row (version 1).
    assert gen128.model.takes_row_settings
    hot = SamplingSettings(1.0)
    nucleus = SamplingSettings(0.8, 20, 0.9)
    (many, alone, late, mixed), peak = asyncio.run(
        _texts(
            gen128,
            [
                ("The ", 600, hot, list(range(10000, 10064)), 0),
                ("The ", 600, hot, [10011], 0),
                (LONG_PRIME, 300, hot, [7, 8], 3),  # joins mid-way
                ("Fire ", 400, nucleus, [5], 5),
            ],
            in_graph,
        )
    )
    assert peak >= 64
    assert many == gen128.generate_batch(64, "The ", 600, seed=10000)
    assert alone[0] == many[11] == gen128.generate_batch(2, "The ", 600, seed=10011)[0]
    assert late == gen128.generate_batch(2, LONG_PRIME, 300, seed=7)
    assert (
        mixed[0]
        == gen128.generate_batch(3, "Fire ", 400, seed=5, temperature=0.8, top_k=20, top_p=0.9)[0]
    )
