"""`gru-edge sample` behind its options: load, generate, stream or write. Runtime only."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from gru_edge.memory import peak_rss_mb


def _err(message: str) -> None:
    typer.echo(message, err=True)


def run_sample(
    model: Path,
    prime: str | None,
    prime_file: Path | None,
    length: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    seed: int | None,
    mode: str,
    unknown: str,
    num_samples: int,
    output: Path | None,
    as_json: bool,
    device: str,
    threads: int | None,
    verbose: bool,
) -> None:
    """Everything `gru-edge sample` does after parsing; raises GruEdgeError subclasses.

    The runtime is imported here, not at module level, so the CLI starts without onnxruntime
    for commands that do not sample.
    """
    import json
    import time

    from runtime.errors import UsageError
    from runtime.files import atomic_write
    from runtime.generator import Generator
    from runtime.text import read_text_file

    if prime is not None and prime_file is not None:
        raise UsageError("pass --prime or --prime-file, not both")
    for name, value in (("--length", length), ("--num-samples", num_samples)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}; omit it for the default")
    if output is not None and (output.is_dir() or not output.parent.is_dir()):
        what = "is a directory" if output.is_dir() else "is in a folder that does not exist"
        raise UsageError(f"--output {output} {what}; pass a file path in an existing folder")
    if prime_file is not None:
        prime = read_text_file(prime_file, "prime file")

    started = time.perf_counter()
    generator = Generator.load(model, device=device, threads=threads)
    options = {
        "length": length,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "seed": seed,
        "mode": mode,
        "unknown": unknown,
    }
    for warning in generator.model.warnings:
        _err(f"Warning: {warning}")
    streaming = num_samples == 1 and output is None and not as_json
    if num_samples == 1:
        chars = generator.stream(prime, **options)
    else:
        texts = generator.generate_batch(num_samples, prime, **options)
    fed = generator.last_prime
    if generator.last_skipped:
        skipped = ", ".join(repr(c) for c in generator.last_skipped[:20])
        note = "" if fed else "; nothing is left, so sampling starts after a newline"
        _err(f"Warning: skipped prime characters the model lacks: {skipped}{note}")
    if verbose:
        _err(
            f"model {model}: {generator.units} units, {len(generator.vocab)} characters, "
            f"on {generator.provider}; seed {generator.last_seed}"
        )
    if streaming:
        _stream_stdout(fed, chars)
    else:
        if num_samples == 1:
            texts = ["".join(chars)]
        if as_json:
            result = (
                json.dumps(
                    {
                        "model": str(model),
                        "provider": generator.provider,
                        "seed": generator.last_seed,
                        "prime": fed,
                        "skipped": generator.last_skipped,
                        "settings": {
                            **options,
                            "seed": generator.last_seed,
                            "num_samples": num_samples,
                        },
                        "texts": texts,
                    },
                    ensure_ascii=False,
                    indent=2,
                )
                + "\n"
            )
        else:
            result = _join_samples(fed, texts)
        if output is None:
            typer.echo(result, nl=False)
        else:
            try:
                atomic_write(output, result)
            except OSError as exc:
                raise UsageError(f"cannot write --output {output}: {exc.strerror or exc}") from None
    if verbose:
        seconds = time.perf_counter() - started
        _err(
            f"{length * num_samples:,} characters in {seconds:.2f} s since loading the model; "
            f"peak RSS {peak_rss_mb():.0f} MB"
        )


def _join_samples(fed: str, texts: list[str]) -> str:
    if len(texts) == 1:
        return fed + texts[0] + "\n"
    return "".join(
        f"----- sample {i}/{len(texts)}\n{fed}{text}\n" for i, text in enumerate(texts, 1)
    )


def _stream_stdout(fed: str, chars: Iterator[str]) -> None:
    """Write the prime, then each character as it is generated."""
    import os

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
