"""`gru-edge bench`: the notebook's generation loop and the ONNX runtime, side by side, in one run.

Figures are medians of a few repeats in one process (this machine is shared and noisy), and every
row is also shown as a ratio to the first row, which is what the targets are stated in. The peers
(LiteRT, a numpy loop: gru_edge.bench_peers), every contender's start-up and memory as a whole
process, and the thread settings (gru_edge.bench_threads) follow; a peer's ratio is to the
in-graph generator measured in its own harness, in rounds interleaved with it.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from gru_edge.bench_peers import ProcessFigures, measure_process, peer_section
from gru_edge.bench_threads import ThreadRow, format_threads, measure_threads
from gru_edge.runtime.errors import MissingExtraError, UsageError
from gru_edge.runtime.generator import Generator
from gru_edge.runtime.ortstep import OrtStep
from gru_edge.runtime.randomness import NoiseStream
from gru_edge.runtime.sampler import SamplingSettings, sample_ids

DEFAULT_REPEATS = 5
HOST_STREAM = "host loop, 1 stream, end to end (sampling + decoding)"
GRAPH_STREAM = "in-graph, 1 stream, end to end (sampling + decoding)"


@dataclass
class Row:
    name: str
    chars_per_s: float
    ratio: float = 1.0  # to the first row
    batch: int = 1
    vs_ingraph: float | None = None  # to gru-edge's in-graph row of the same batch


@dataclass
class BenchReport:
    model: str
    provider: str
    file_size: int
    threads: int | None
    repeats: int
    rows: list[Row] = field(default_factory=list)
    load_s: float = 0.0  # Generator.load, median
    first_char_s: float | None = None  # `gru-edge sample` in a fresh process, median
    sampler_peak_rss_mb: float | None = None  # of those `gru-edge sample` processes
    processes: list[ProcessFigures] = field(default_factory=list)  # every contender's start-up
    defaults: list[ThreadRow] = field(default_factory=list)  # thread settings, idle and loaded
    graph_vs_host: float | None = None  # in-graph / host loop, single stream end to end
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def run_bench(
    model_path: Path,
    run_dir: Path | None = None,
    *,
    device: str = "cpu",
    threads: int | None = 1,
    repeats: int = DEFAULT_REPEATS,
    log: Callable[[str], None] = lambda _m: None,
) -> BenchReport:
    """Measure every row; the Keras row only when TF is installed and ``run_dir`` is given."""
    model_path = Path(model_path)
    if repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {repeats}")
    loads = []
    for _ in range(repeats):
        started = time.perf_counter()
        generator = Generator.load(model_path, device=device, threads=threads)
        loads.append(time.perf_counter() - started)
    report = BenchReport(
        str(model_path),
        generator.provider,
        generator.model.file_size,
        threads,
        repeats,
        load_s=statistics.median(loads),
    )
    if run_dir is not None:
        try:
            report.rows.append(
                Row(
                    f"notebook loop: Keras predict, {generator.seq_len}-char window per char",
                    _notebook_rate(Path(run_dir), generator, repeats, log),
                )
            )
        except MissingExtraError as exc:
            report.notes.append(f"Keras row skipped: {exc}")
    else:
        report.notes.append("Keras row skipped: pass --run-dir RUN_DIR (needs the [train] extra)")

    report.rows += _runtime_rows(generator, repeats, log)
    if not generator.model.has_generator:
        report.notes.append("in-graph rows skipped: a gru-edge/1 file has no generator")
    log("measuring `gru-edge sample` start-up in fresh processes")
    ours = _fresh_process(model_path, threads, repeats)
    report.processes.append(ours)
    report.first_char_s, report.sampler_peak_rss_mb = ours.first_char_s, ours.peak_rss_mb
    if generator.model.has_generator and device == "cpu":
        with tempfile.TemporaryDirectory(prefix="gru-edge-bench-") as folder:
            rows, processes, notes = peer_section(
                model_path,
                None if run_dir is None else Path(run_dir),
                list(generator.vocab),
                Path(folder),
                threads=threads or 1,
                repeats=repeats,
                log=log,
            )
        report.rows += [Row(name, rate, batch=batch) for name, batch, rate in rows]
        report.processes += processes
        report.notes += notes
        log("measuring the default thread settings, idle and with every core busy")
        report.defaults = measure_threads(model_path, repeats, log)
    first = report.rows[0].chars_per_s
    graph = {r.batch: r.chars_per_s for r in report.rows if r.name.startswith("in-graph")}
    for row in report.rows:
        row.ratio = row.chars_per_s / first
        if row.batch in graph:
            row.vs_ingraph = row.chars_per_s / graph[row.batch]
    rates = {row.name: row.chars_per_s for row in report.rows}
    if GRAPH_STREAM in rates:
        report.graph_vs_host = rates[GRAPH_STREAM] / rates[HOST_STREAM]
    return report


def _runtime_rows(generator: Generator, repeats: int, log: Callable[[str], None]) -> list[Row]:
    """The onnxruntime rows: the host loop (window mode, one stream end to end and bare steps,
    batches), then the same through the file's own generator when it has one."""

    def row(name: str, chars: int, action: Callable[[], object]) -> Row:
        return Row(name, _rate(repeats, chars, action))

    def stream(engine: str) -> Callable[[], object]:
        # `gru-edge sample`'s path: decoded text as it comes, a character at a time from the
        # host loop, a call's worth at a time from the graph.
        pieces = generator.stream_pieces
        return lambda: sum(len(p) for p in pieces(length=20000, seed=1, engine=engine))

    log("measuring ONNX window mode")
    rows = [
        row(
            f"ONNX window mode ({generator.seq_len}-char window per char)",
            1000,
            lambda: generator.generate(length=1000, mode="window", seed=1),
        )
    ]
    log("measuring the host loop, single stream")
    rows.append(row(HOST_STREAM, 20000, stream("host")))
    rows.append(
        row(
            "host loop, 1 stream, model step only (no sampling)",
            20000,
            lambda: _steps_only(generator, 20000),
        )
    )
    engines = ["host", "graph"] if generator.model.has_generator else ["host"]
    for engine in engines:
        if engine == "graph":
            log("measuring the in-graph generator, single stream")
            rows.append(row(GRAPH_STREAM, 20000, stream("graph")))
        for batch in (64, 256):
            log(f"measuring the {engine} engine, batch {batch}")
            measured = row(
                f"{'in-graph' if engine == 'graph' else 'host loop'}, batch {batch}, aggregate",
                batch * 500,
                lambda b=batch, e=engine: generator.generate_batch(b, length=500, seed=1, engine=e),
            )
            measured.batch = batch
            rows.append(measured)
    return rows


def _rate(repeats: int, chars: int, action: Callable[[], object]) -> float:
    """chars / the median time of ``repeats`` calls of ``action``."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return chars / statistics.median(times)


def _steps_only(generator: Generator, steps: int) -> None:
    """The floor under the end-to-end row: onnxruntime steps with the state carried, no sampling."""
    step = OrtStep(
        generator.model.session,
        batch=1,
        state_width=generator.state_width,
        vocab_size=len(generator.vocab),
    )
    ids = step.ids_buffer
    _, state = step(ids, np.zeros((1, generator.state_width), dtype=np.float32))
    for _ in range(steps):
        _, state = step(ids, state)


def _notebook_rate(
    run_dir: Path, generator: Generator, repeats: int, log: Callable[[str], None]
) -> float:
    """The notebook's loop: model.predict on the one-hot seq_len window, once per character."""
    from gru_edge.trainer.keras_files import load_best_model
    from gru_edge.trainer.rundir import load_run
    from gru_edge.trainer.tf_env import load_tf

    load_tf("the Keras row of gru-edge bench")
    run = load_run(run_dir)
    model = load_best_model(
        run, "pass --run-dir only for a run directory written by gru-edge train"
    )
    seq_len, vocab = run.info["config"]["seq_len"], len(run.vocab)
    eye = np.eye(vocab, dtype=np.float32)
    window = list(np.random.default_rng(0).integers(0, vocab, seq_len))
    settings = SamplingSettings(temperature=1.0)
    noise = NoiseStream(0, 1, vocab, settings.t32)
    model.predict(eye[window][None], verbose=0)  # warm-up: the first call builds the graph
    log("measuring the notebook loop (Keras predict per character)")
    chars, times = 20, []
    for _ in range(repeats):
        started = time.perf_counter()
        for position in range(chars):
            probs = model.predict(eye[window][None], verbose=0)
            with np.errstate(divide="ignore"):
                new = int(sample_ids(np.log(probs), settings, noise(position))[0])
            window = window[1:] + [new]
        times.append(time.perf_counter() - started)
    return chars / statistics.median(times)


def _fresh_process(model_path: Path, threads: int | None, repeats: int) -> ProcessFigures:
    """`gru-edge sample` as a whole process: median time from spawn to its first character,
    and its largest peak RSS (bench_peers.run_process)."""
    name = "`gru-edge sample`"
    script = shutil.which("gru-edge", path=os.path.dirname(sys.executable)) or shutil.which(
        "gru-edge"
    )
    if script is None:
        return ProcessFigures(name, None, None, "the gru-edge script is not on PATH")
    command = [script, "sample", str(model_path), "--length", "2000", "--seed", "1"]
    command += ["--device", "cpu"]
    if threads:
        command += ["--threads", str(threads)]
    return measure_process(name, command, repeats)


def format_report(report: BenchReport) -> str:
    """A Markdown table plus the start-up and memory figures."""
    lines = [
        f"model {report.model} ({report.file_size:,} bytes), provider {report.provider}, "
        "intra-op threads "
        f"{report.threads or 'default'}, medians of {report.repeats}",
        "",
        "| mode | chars/s | ratio to first row | to in-graph, same batch |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r.name} | {r.chars_per_s:,.0f} | {r.ratio:,.1f}x | "
        + ("" if r.vs_ingraph is None else f"{r.vs_ingraph:.2f}x")
        + " |"
        for r in report.rows
    ]
    if report.processes:
        lines += ["", "| whole process | first character, s | peak RSS, MB |", "|---|---:|---:|"]
        lines += [
            f"| {p.name} | "
            + (p.note if p.first_char_s is None else f"{p.first_char_s:.3f}")
            + " | "
            + ("" if p.peak_rss_mb is None else f"{p.peak_rss_mb:.0f}")
            + " |"
            for p in report.processes
        ]
    lines += format_threads(report.defaults)
    lines += [""]
    if report.graph_vs_host is not None:
        lines.append(
            f"- in-graph against the host loop, 1 stream end to end: {report.graph_vs_host:.2f}x"
        )
    lines.append(f"- model load (Generator.load): {report.load_s * 1000:.1f} ms")
    if report.first_char_s is not None:
        lines.append(
            f"- first character of `gru-edge sample`, fresh process: {report.first_char_s:.3f} s"
        )
    if report.sampler_peak_rss_mb is not None:
        lines.append(f"- `gru-edge sample` peak RSS: {report.sampler_peak_rss_mb:.0f} MB")
    lines += [f"- note: {note}" for note in report.notes]
    return "\n".join(lines)


def format_comparison(reports: list[BenchReport]) -> str:
    """The models side by side: file size, then chars/s of every row they share."""
    names = [Path(r.model).name for r in reports]
    lines = [
        "side by side (each measured in its own pass above)",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(reports),
        "| file size, bytes | " + " | ".join(f"{r.file_size:,}" for r in reports) + " |",
    ]
    rates = [{row.name: row.chars_per_s for row in r.rows} for r in reports]
    for row in reports[0].rows:
        if all(row.name in rate for rate in rates):
            lines.append(
                f"| {row.name} | " + " | ".join(f"{rate[row.name]:,.0f}" for rate in rates) + " |"
            )
    return "\n".join(lines)
