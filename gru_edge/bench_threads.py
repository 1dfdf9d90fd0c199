"""`gru-edge bench`'s thread rows: the defaults (no --threads) against 1, 2 and all cores, for
one stream and for a batch of 256, with the machine as it is and with every core already busy
(one CPU-bound process per core, started and stopped here).

What users get is the default, and a default that spins threads on a busy device loses to one
thread (measured: 29-40k against 106k chars/s on 2 cores), so both conditions are shown.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gru_edge.runtime.generator import Generator

STREAM_CHARS = 5000
BATCH, BATCH_LENGTH = 256, 100
_BUSY = "while True: pass"
SETTLE_S = 0.05  # a pause before each timing, for threads a previous run left spinning


@dataclass
class ThreadRow:
    setting: str  # "default" or a thread count
    load: str  # "idle" (the machine as it is) or "loaded" (every core busy)
    stream_chars_per_s: float
    batch_chars_per_s: float
    stream_vs_best: float = 1.0  # to the best setting under the same load
    batch_vs_best: float = 1.0


def settings() -> list[tuple[str, int | None]]:
    """The default, then 1, 2 and all cores (each once)."""
    cores = os.cpu_count() or 1
    counts = sorted({1, min(2, cores), cores})
    return [("default", None)] + [(str(n), n) for n in counts]


@contextmanager
def busy_cores(count: int) -> Iterator[list[subprocess.Popen]]:
    """``count`` CPU-bound processes for the duration of the block."""
    hogs = [subprocess.Popen([sys.executable, "-S", "-c", _BUSY]) for _ in range(count)]
    try:
        time.sleep(0.5)  # let them get going
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def _actions(generator: Generator) -> tuple[Callable[[], object], Callable[[], object]]:
    def stream() -> int:
        return sum(len(p) for p in generator.stream_pieces(length=STREAM_CHARS, seed=1))

    def batch() -> object:
        return generator.generate_batch(BATCH, length=BATCH_LENGTH, seed=1)

    return stream, batch


def _time(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure_threads(
    model_path: Path, repeats: int, log: Callable[[str], None] = lambda _m: None
) -> list[ThreadRow]:
    """Every setting, idle then loaded, rounds interleaved (each round times every setting
    once, so a change in the machine's other work hits them alike); medians of ``repeats``."""
    actions = {}
    for label, threads in settings():
        generator = Generator.load(model_path, device="cpu", threads=threads)
        actions[label] = _actions(generator)
        for action in actions[label]:
            action()  # warm-up: the first calls allocate
    rows = []
    for load in ("idle", "loaded"):
        log(f"measuring thread settings, {load}")
        cores = (os.cpu_count() or 1) if load == "loaded" else 0
        times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in actions}
        labels = list(actions)
        with busy_cores(cores):
            for round_ in range(repeats):
                # Each round starts at another setting: onnxruntime's pool threads spin for a
                # while after a multi-threaded run, which slows whatever runs right after it.
                for label in labels[round_ % len(labels) :] + labels[: round_ % len(labels)]:
                    stream, batch = actions[label]
                    time.sleep(SETTLE_S)
                    times[label][0].append(_time(stream))
                    time.sleep(SETTLE_S)
                    times[label][1].append(_time(batch))
        measured = [
            ThreadRow(
                label,
                load,
                STREAM_CHARS / statistics.median(streams),
                BATCH * BATCH_LENGTH / statistics.median(batches),
            )
            for label, (streams, batches) in times.items()
        ]
        best_stream = max(r.stream_chars_per_s for r in measured)
        best_batch = max(r.batch_chars_per_s for r in measured)
        for row in measured:
            row.stream_vs_best = row.stream_chars_per_s / best_stream
            row.batch_vs_best = row.batch_chars_per_s / best_batch
        rows += measured
    return rows


def format_threads(rows: list[ThreadRow]) -> list[str]:
    """The thread rows as a Markdown table."""
    if not rows:
        return []
    lines = [
        "",
        f"| threads | load | 1 stream, chars/s | vs best | batch {BATCH}, chars/s | vs best |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.setting} | {r.load} | {r.stream_chars_per_s:,.0f} | {r.stream_vs_best:.2f}x "
        f"| {r.batch_chars_per_s:,.0f} | {r.batch_vs_best:.2f}x |"
        for r in rows
    ]
    return lines
