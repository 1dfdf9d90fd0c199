"""`gru-edge sample` behind its options: load, generate, stream or write. Runtime only."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import typer

from gru_edge.cli_common import err
from gru_edge.memory import peak_rss_mb
from gru_edge.runtime.errors import UsageError
from gru_edge.runtime.files import atomic_write
from gru_edge.runtime.options import GenerationOptions
from gru_edge.runtime.text import read_text_file


@dataclass(frozen=True)
class SampleRequest:
    """Everything `gru-edge sample` was asked to do, built once by the CLI."""

    model: Path
    options: GenerationOptions
    prime: str | None = None
    prime_file: Path | None = None  # read the prime from this file instead
    num_samples: int = 1  # run as one batch
    output: Path | None = None  # None: stdout, streamed when there is one sample
    as_json: bool = False
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # onnxruntime intra-op threads; None: its default
    verbose: bool = False  # seed, provider, time and peak memory on stderr

    def check(self) -> None:
        """Raise UsageError for combinations that make no sense, before any work."""
        if self.prime is not None and self.prime_file is not None:
            raise UsageError("pass --prime or --prime-file, not both")
        if self.num_samples < 1:
            raise UsageError(f"--num-samples must be at least 1, got {self.num_samples}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(
                f"--threads must be at least 1, got {self.threads}; omit it for the default"
            )
        output = self.output
        if output is not None and (output.is_dir() or not output.parent.is_dir()):
            what = "is a directory" if output.is_dir() else "is in a folder that does not exist"
            raise UsageError(f"--output {output} {what}; pass a file path in an existing folder")


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
        chars = generator.stream(prime, options=request.options)
    else:
        texts = generator.generate_batch(n, prime, options=request.options)
    fed = generator.last_prime
    if generator.last_skipped:
        skipped = ", ".join(repr(c) for c in generator.last_skipped[:20])
        note = "" if fed else "; nothing is left, so sampling starts after a newline"
        err(f"Warning: skipped prime characters the model lacks: {skipped}{note}")
    if request.verbose:
        err(
            f"model {request.model}: {generator.units} units, {len(generator.vocab)} characters, "
            f"on {generator.provider}; seed {generator.last_seed}"
        )
    if n == 1 and request.output is None and not request.as_json:
        _stream_stdout(fed, chars)
    else:
        if n == 1:
            texts = ["".join(chars)]
        if request.as_json:
            result = _as_json(request, generator, texts)
        else:
            result = _join_samples(fed, texts)
        _write(request.output, result)
    if request.verbose:
        seconds = time.perf_counter() - started
        err(
            f"{request.options.length * n:,} characters in {seconds:.2f} s since loading the "
            f"model; peak RSS {peak_rss_mb():.0f} MB"
        )


def _as_json(request: SampleRequest, generator, texts: list[str]) -> str:
    settings = request.options.to_dict()
    settings.update(seed=generator.last_seed, num_samples=request.num_samples)
    document = {
        "model": str(request.model),
        "provider": generator.provider,
        "seed": generator.last_seed,
        "prime": generator.last_prime,
        "skipped": generator.last_skipped,
        "settings": settings,
        "texts": texts,
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _join_samples(fed: str, texts: list[str]) -> str:
    if len(texts) == 1:
        return fed + texts[0] + "\n"
    return "".join(
        f"----- sample {i}/{len(texts)}\n{fed}{text}\n" for i, text in enumerate(texts, 1)
    )


def _write(output: Path | None, result: str) -> None:
    if output is None:
        typer.echo(result, nl=False)
        return
    try:
        atomic_write(output, result)
    except OSError as exc:
        raise UsageError(f"cannot write --output {output}: {exc.strerror or exc}") from None


def _stream_stdout(fed: str, chars: Iterator[str]) -> None:
    """Write the prime, then each character as it is generated."""
    out = sys.stdout
    if hasattr(out, "reconfigure"):
        # A console that cannot show a character gets '?' rather than a traceback mid-text.
        out.reconfigure(errors="replace")
    write, flush = out.write, out.flush
    try:
        write(fed)
        for char in chars:
            write(char)
            flush()
        write("\n")
        flush()
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, and keep Python's exit-time flush quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
