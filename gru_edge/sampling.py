"""`gru-edge sample` behind its options: load, generate, stream or write. Runtime only.

Memory stays bounded in every mode. One sample (-n 1) is streamed, whatever --length: to stdout
character by character, into --output's temporary file (renamed into place when complete), or
as a JSON document written piece by piece. Several samples run as one batch, so every sample is
finished only at the last step: their ids are held (one byte per character) within the
Generator's budget, which refuses more before any work, and are then decoded and written in
pieces.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gru_edge.cli_common import err
from gru_edge.memory import peak_rss_mb
from gru_edge.runtime.errors import GruEdgeError, UsageError
from gru_edge.runtime.files import atomic_path, check_output, signals_raise
from gru_edge.runtime.options import GenerationOptions
from gru_edge.runtime.results import Prepared
from gru_edge.runtime.text import read_text_file

WRITE_GROUP = 1 << 12  # characters of a stream gathered per write to a file


class Terminated(GruEdgeError):
    """SIGTERM or SIGHUP arrived while --output was being written; its temporary file is
    removed, and the exit code is what a shell reports for a process the signal ended."""

    def __init__(self, signum: int, output: Path) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name}; --output {output} was not written")
        self.exit_code = 128 + signum


@dataclass(frozen=True)
class SampleRequest:
    """Everything `gru-edge sample` was asked to do, built once by the CLI."""

    model: Path
    options: GenerationOptions
    prime: str | None = None
    prime_file: Path | None = None  # read the prime from this file instead
    num_samples: int = 1  # run as one batch
    output: Path | None = None  # None: stdout
    as_json: bool = False
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # onnxruntime intra-op threads; None: runtime.loader.DEFAULT_THREADS
    verbose: bool = False  # seed, provider, time and peak memory on stderr

    def check(self) -> None:
        """Raise UsageError for combinations that make no sense, before any work."""
        if self.prime is not None and self.prime_file is not None:
            raise UsageError("pass --prime or --prime-file, not both")
        if self.num_samples < 1:
            raise UsageError(f"--num-samples must be at least 1, got {self.num_samples}")
        if self.output is not None:
            check_output(self.output, "--output")


class _Sink:
    """Where the text goes, counting the generated characters that got there."""

    def __init__(self, out: IO[str], streaming: bool):
        self.out = out
        self.streaming = streaming  # flush each piece: stdout streams, a file is renamed at the end
        self.chars = 0
        self.pipe_closed = False

    def write(self, text: str) -> None:
        self.out.write(text)

    def pieces(self, pieces: Iterable[str], form: Callable[[str], str] = str) -> None:
        """Write generated text piece by piece; ``chars`` counts only what got out. A file gets
        it in groups of about WRITE_GROUP characters: one character at a time, ``form`` and
        ``write`` would cost as much as generating it."""
        write, flush = self.out.write, self.out.flush
        if self.streaming:
            for piece in pieces:
                write(form(piece))
                flush()
                self.chars += len(piece)
            return
        for group in _groups(pieces, WRITE_GROUP):
            write(form(group))
            self.chars += len(group)


def _groups(pieces: Iterable[str], size: int) -> Iterator[str]:
    """``pieces`` joined into strings of at least ``size`` characters (the last may be shorter)."""
    held: list[str] = []
    count = 0
    for piece in pieces:
        held.append(piece)
        count += len(piece)
        if count >= size:
            yield "".join(held)
            held, count = [], 0
    if held:
        yield "".join(held)


def run_sample(request: SampleRequest) -> None:
    """Everything `gru-edge sample` does after parsing; raises GruEdgeError subclasses.

    The runtime's session code is imported here, not at module level, so the CLI starts without
    onnxruntime for commands that do not sample.
    """
    from gru_edge.runtime.generator import Generator

    request.check()
    prime = request.prime
    if request.prime_file is not None:
        prime = read_text_file(request.prime_file, "prime file")
    started = time.perf_counter()
    generator = Generator.load(request.model, device=request.device, threads=request.threads)
    for warning in generator.model.warnings:
        err(f"Warning: {warning}")
    n = request.num_samples
    if n == 1:
        stream = generator.start(prime, options=request.options)
        info = stream.info
        samples: list[Iterable[str]] = [stream.pieces]
    else:
        batch = generator.start_batch(n, prime, options=request.options)
        info = batch.info
        samples = [batch.pieces(row) for row in range(n)]
    _report_prime(generator, info, request)
    with _destination(request.output) as sink:
        if request.as_json:
            _write_json(sink, _document(request, generator, info), samples)
        else:
            _write_text(sink, info.prime, samples)
    if request.verbose:
        seconds = time.perf_counter() - started
        closed = "; stopped early: the reader closed the pipe" if sink.pipe_closed else ""
        err(
            f"{sink.chars:,} characters written in {seconds:.2f} s since loading the model"
            f"{closed}; peak RSS {peak_rss_mb():.0f} MB"
        )


def _report_prime(generator: Any, info: Prepared, request: SampleRequest) -> None:
    if info.skipped:
        skipped = ", ".join(repr(c) for c in info.skipped[:20])
        note = "" if info.prime else "; nothing is left, so sampling starts after a newline"
        err(f"Warning: skipped prime characters the model lacks: {skipped}{note}")
    if request.verbose:
        err(
            f"model {request.model}: {_shape(generator)}, {len(generator.vocab)} characters, "
            f"on {generator.provider}, {info.engine} engine; seed {info.seed}"
        )


def _write_text(sink: _Sink, fed: str, samples: list[Iterable[str]]) -> None:
    """The prime and each sample, a '----- sample i/N' line before each when there are several."""
    n = len(samples)
    for number, pieces in enumerate(samples, 1):
        if n > 1:
            sink.write(f"----- sample {number}/{n}\n")
        sink.write(fed)
        sink.pieces(pieces)
        sink.write("\n")


def _document(request: SampleRequest, generator: Any, info: Prepared) -> dict[str, Any]:
    settings = request.options.to_dict()
    settings.update(seed=info.seed, num_samples=request.num_samples)
    return {
        "model": str(request.model),
        "provider": generator.provider,
        "engine": info.engine,
        "seed": info.seed,
        "prime": info.prime,
        "skipped": list(info.skipped),
        "settings": settings,
    }


def _write_json(sink: _Sink, document: dict[str, Any], samples: list[Iterable[str]]) -> None:
    """``json.dumps({**document, "texts": [...]}, ensure_ascii=False, indent=2)`` and a
    newline, written as the texts are produced rather than built whole."""
    head = json.dumps(document, ensure_ascii=False, indent=2)
    sink.write(head[: head.rindex("\n}")] + ',\n  "texts": [\n')
    for number, pieces in enumerate(samples, 1):
        sink.write('    "')
        sink.pieces(pieces, _json_escape)
        sink.write('"\n' if number == len(samples) else '",\n')
    sink.write("  ]\n}\n")


def _json_escape(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


@contextlib.contextmanager
def _destination(output: Path | None) -> Iterator[_Sink]:
    """stdout, or a temporary file renamed onto ``output`` once everything is written."""
    if output is None:
        with _stdout() as sink:
            yield sink
        return
    try:
        with (
            # SIGTERM/SIGHUP unwind (exit 143/129) like Ctrl-C (130): the temporary file goes
            signals_raise(lambda signum: Terminated(signum, output)),
            atomic_path(output) as tmp,
            open(tmp, "w", encoding="utf-8", newline="") as out,
        ):
            yield _Sink(out, streaming=False)
    except OSError as exc:
        raise UsageError(f"cannot write --output {output}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _stdout() -> Iterator[_Sink]:
    out = sys.stdout
    if hasattr(out, "reconfigure"):
        # A console that cannot show a character gets '?' rather than a traceback mid-text.
        out.reconfigure(errors="replace")
    sink = _Sink(out, streaming=True)
    try:
        yield sink
        out.flush()
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, and keep Python's exit-time flush quiet.
        sink.pipe_closed = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())


def _shape(generator: Any) -> str:
    """The model's size for --verbose: units, and layers when stacked."""
    layers = generator.model.layers
    return (
        f"{layers} layers of {generator.units} units" if layers > 1 else f"{generator.units} units"
    )
